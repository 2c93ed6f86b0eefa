#!/usr/bin/env python3
"""Benchmark: an ATLAS-scale collect cycle into a real, private InfluxDB.

Prints: encode+write points per second through qmonit's InfluxStore, the same
pre-encoded line protocol posted by a bare HTTP loop (the reference limit), their
ratio, the whole collect cycle's time, and peak memory.
Targets: ratio >= 0.8, collect cycle < 5 s, peak memory < 300 MB.
Run from the repository root: python3 benchmarks/collect.py [--repeat N]
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.collect.components import build  # noqa: E402
from qmonit.collect.cycle import collect  # noqa: E402
from qmonit.collect.enrich import enrich_jobs  # noqa: E402
from qmonit.core import config  # noqa: E402
from qmonit.stores.state import schema  # noqa: E402
from qmonit.stores.timeseries.lineprotocol import encode_lines  # noqa: E402
from tests.servers import InfluxServer  # noqa: E402

SLOT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # outside the simulated outage
SLOT_STEP = timedelta(minutes=10)


def bare_loop(url: str, database: str, lines: list[str], batch_size: int) -> float:
    """POST pre-encoded lines in batches (gzip, as qmonit does); return seconds."""
    session = requests.Session()
    start = time.perf_counter()
    for first in range(0, len(lines), batch_size):
        body = gzip.compress(("\n".join(lines[first:first + batch_size]) + "\n").encode(), 1)
        response = session.post(f"{url}/write", params={"db": database, "rp": "autogen",
                                                        "precision": "s"},
                                data=body, headers={"Content-Encoding": "gzip"})
        response.raise_for_status()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--cycles", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--influx", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cycles:
        return cycles(args.influx, args.data, args.cycles)
    with tempfile.TemporaryDirectory(prefix="qmonit-bench-") as tmp:
        server = InfluxServer(Path(tmp) / "influxd").start()
        try:
            return run(server, Path(tmp), args.repeat)
        finally:
            server.stop()


def run(server: InfluxServer, tmp: Path, repeat: int) -> int:
    cfg = config.defaults({
        "qmonit": {"data_dir": str(tmp / "data")},
        "influxdb": {"url": server.url, "database": "bench"},
        "sources": {"enabled": "simulated", "simulated_scale": "atlas"},
    })
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    grid = parts.grid
    topology = parts.topology.load(SLOT)
    samples = enrich_jobs(parts.sources[0].collect(SLOT).samples, topology).samples
    lines = encode_lines(samples)
    print(f"ATLAS-scale cycle: {len(grid.queues)} PanDA queues, {len(samples):,} points, "
          f"{len(lines[0])} bytes in the first line")

    ours, bare = [], []
    for n in range(repeat):
        for rp_db in (f"ours{n}", f"bare{n}"):
            parts.store.query(f'CREATE DATABASE "{rp_db}"', method="POST", database=False)
        parts.store.database = f"ours{n}"
        start = time.perf_counter()
        result = parts.store.write(samples, "autogen")
        ours.append(time.perf_counter() - start)
        assert result.written == len(samples) and not result.unwritten and not result.rejected
        bare.append(bare_loop(server.url, f"bare{n}", lines, parts.store.batch_size))
    best_ours, best_bare = min(ours), min(bare)
    ratio = best_bare / best_ours
    print(f"qmonit encode+write : {len(samples) / best_ours:>10,.0f} points/s "
          f"({best_ours:.3f} s, best of {repeat})")
    print(f"bare HTTP loop      : {len(samples) / best_bare:>10,.0f} points/s "
          f"({best_bare:.3f} s, pre-encoded lines)")
    print(f"ratio               : {ratio:.2f}  (target >= 0.80)")

    child = subprocess.run([sys.executable, __file__, "--cycles", str(repeat), "--influx",
                            server.url, "--data", str(tmp / "cycle")],
                           capture_output=True, text=True, check=True)
    print(child.stdout, end="")
    return 0


def cycles(url: str, data_dir: Path, repeat: int) -> int:
    """In a fresh process: whole collect cycles (first one creates every series), then RSS."""
    cfg = config.defaults({
        "qmonit": {"data_dir": str(data_dir)},
        "influxdb": {"url": url, "database": "cycles"},
        "sources": {"enabled": "simulated", "simulated_scale": "atlas"},
        "downsample": {"buffer": os.environ.get("QMONIT_BENCH_BUFFER", "true")},
    })
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    times = []
    for n in range(repeat):
        start = time.perf_counter()
        report = collect(parts, SLOT + n * SLOT_STEP)
        times.append(time.perf_counter() - start)
        assert report.exit_code == 0, report
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"collect cycle       : first {times[0]:.2f} s (every series new), then "
          f"{', '.join(f'{t:.2f}' for t in times[1:])} s (target < 5 s; simulated PanDA+CRIC, "
          f"InfluxDB + SQLite state store)")
    print(f"peak memory         : {rss_mb:.0f} MB max RSS of the collecting process "
          f"(target < 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
