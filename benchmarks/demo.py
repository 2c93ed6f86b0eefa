#!/usr/bin/env python3
"""Benchmark: the embedded default, `qmonit demo`, as a user runs it.

1. The default demo: 24 h of the small grid into SQLite. Target: under 45 s.
2. `qmonit demo --scale atlas --hours 3`. Target: under 60 s.
Each run is its own process (`python3 -m qmonit demo`, a fresh directory); printed: wall
time, CPU time and peak resident size. The machines these run on differ by twice in speed
from one session to the next, so reference figures of the machine come first: a pure-Python
loop of 10 million additions, a million tuple keys into a dict and back, and 200,000 rows
into a SQLite table on disk (the work the demo is made of). A figure is comparable across
machines only beside them.
Run from the repository root: python3 benchmarks/demo.py [--skip-atlas] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = (("default", [], 45.0), ("atlas 3 h", ["--scale", "atlas", "--hours", "3"], 60.0))


def python_loop_s() -> float:
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - started


def dict_lookups_s() -> float:
    """A million tuple keys into a dict, then looked up: memory-bound, as most of a cycle."""
    keys = [(f"queue{n % 5000}", f"status{n % 7}", n) for n in range(1_000_000)]
    started = time.perf_counter()
    table = {key: n for n, key in enumerate(keys)}
    found = sum(table[key] for key in reversed(keys))
    assert found == sum(range(1_000_000))
    return time.perf_counter() - started


def sqlite_rows_per_s(rows: int = 200_000) -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "reference.sqlite")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE p (m TEXT, t INTEGER, s INTEGER, f TEXT, v REAL, "
                     "PRIMARY KEY (m, t, s, f)) WITHOUT ROWID")
        data = [("jobs", n // 2000, n % 2000, "jobs", float(n)) for n in range(rows)]
        started = time.perf_counter()
        conn.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?)", data)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.close()
    return rows / elapsed


def run_demo(arguments: list[str]) -> tuple[float, float, float]:
    """Wall s, CPU s and peak RSS MB of one `qmonit demo` in its own process."""
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "qmonit", "demo", "--dir", directory,
                                  *arguments], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if child.returncode:
        raise SystemExit(f"qmonit demo {' '.join(arguments)} exited with {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-atlas", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: a pure-Python loop of 10 million additions {python_loop_s():.2f} s; "
          f"a million tuple keys into a dict and back {dict_lookups_s():.2f} s; "
          f"SQLite {sqlite_rows_per_s():,.0f} rows/s")
    for name, arguments, target in RUNS:
        if args.skip_atlas and "--scale" in arguments:
            continue
        for _ in range(args.repeat):
            wall, cpu, rss = run_demo(arguments)
            verdict = "met" if wall < target else "NOT met"
            print(f"{name:10s} {wall:6.1f} s (CPU {cpu:.1f} s, peak RSS {rss:.0f} MB); "
                  f"target < {target:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
