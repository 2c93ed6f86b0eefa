#!/usr/bin/env python3
"""Benchmark: `qmonit daemon`'s own memory over 1,000 cycles (about a week of slots),
driven by a fake clock, with the lease taken and renewed in a real SQLite state store
and jobs that do nothing (each real job is its own process: its memory is not the
daemon's). Prints the resident set size every 100 cycles and the growth after the first
100. Target: flat (growth < 1 MB).
Run from the repository root: python3 benchmarks/daemon.py [--cycles N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.app.daemon import Daemon, Run  # noqa: E402
from qmonit.core import config  # noqa: E402
from qmonit.stores.sql import make_engine  # noqa: E402
from qmonit.stores.state import schema  # noqa: E402
from tests.daemon_clock import FakeClock  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    args = parser.parse_args()
    clock = FakeClock(datetime(2026, 11, 1, 0, 0, 30, tzinfo=UTC))
    cycles = 0

    def job(name: str, at: datetime, deadline_s: float, tick) -> Run:
        nonlocal cycles
        clock.advance(15)
        tick()
        cycles += name == "collect"
        return Run(name, at, exit_code=0, duration_s=15)

    with tempfile.TemporaryDirectory(prefix="qmonit-bench-") as tmp:
        cfg = config.defaults({"qmonit": {"data_dir": tmp},
                               "sources": {"enabled": "simulated"}})
        engine = make_engine(cfg.sql_url)
        schema.create_tables(engine)
        engine.dispose()
        daemon = Daemon(lambda: cfg, lambda c: make_engine(c.sql_url), job, clock=clock,
                        holder="bench:1", keep_runs=50)
        seen: dict[int, float] = {}
        while cycles < args.cycles:
            daemon.step()
            clock.sleep(daemon.idle_s(), daemon.wake)
            if cycles % 100 == 0 and cycles and cycles not in seen:
                seen[cycles] = rss_mb()
                print(f"cycle {cycles:5d}  {clock.now():%Y-%m-%d %H:%M} UTC  "
                      f"RSS {seen[cycles]:.1f} MB")
        first = seen[min(seen)]
        print(f"growth from cycle {min(seen)} to {max(seen)}: {seen[max(seen)] - first:+.2f} MB "
              "(target < 1 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
