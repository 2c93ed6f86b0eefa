#!/usr/bin/env python3
"""Benchmark: roll-ups on a private InfluxDB.

1. One hour of an ATLAS-scale simulated grid (790 queues, ~52,000 `jobs` series, six
   10-minute cycles) rolled up into "1h": server path (SELECT ... INTO), client path
   (query the aggregates, write them) and, for the next hour, from the roll-up buffer
   (what the hourly job does in steady state). Target: under 3 s.
2. A 30-day backfill (hourly, then daily) at --backfill-series series, reported as
   measured; writing 30 days of ATLAS-scale raw data (220 million points) does not fit
   a benchmark run on this machine.
Run from the repository root: python3 benchmarks/downsample.py
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.collect.components import build  # noqa: E402
from qmonit.collect.enrich import enrich_jobs  # noqa: E402
from qmonit.core import config  # noqa: E402
from qmonit.core.sample import Sample  # noqa: E402
from qmonit.rollup.downsample import rollup  # noqa: E402
from qmonit.stores.state import schema  # noqa: E402
from tests.servers import InfluxServer  # noqa: E402

HOUR = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)


def quiesce(server: InfluxServer, limit_s: float = 120.0) -> float:
    """Wait until influxd is idle (under 10% of a core over a second): the hourly job runs at
    minute 7, when collect's writes and the compactions they start are over. Returns the wait."""
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{server.process.pid}/stat")

    def cpu_s() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        before = cpu_s()
        time.sleep(1)
        if cpu_s() - before < 0.1:
            break
    return time.perf_counter() - start


def parts_for(server: InfluxServer, tmp: Path, database: str, mode: str, scale: str = "atlas"):
    cfg = config.defaults({
        "qmonit": {"data_dir": str(tmp / database)},
        "influxdb": {"url": server.url, "database": database, "timeout_s": "600"},
        "sources": {"enabled": "simulated", "simulated_scale": scale},
        "downsample": {"mode": mode, "max_hourly_windows": "1000", "max_daily_windows": "100"},
    })
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    return parts


def one_hour(server: InfluxServer, tmp: Path) -> None:
    """Two hours of cycles written the way collect writes them (through the writer, so the
    roll-up buffer fills); the first hour, which the buffer began in, rolled up from the
    store by the server path, then again by the client path; the second from the buffer."""
    parts = parts_for(server, tmp, "hour", "server")
    source = parts.sources[0]
    points, with_buffer, store_only, buffer_only = 0, [], [], []
    for n in range(12):
        slot = HOUR + n * SLOT
        samples = enrich_jobs(source.collect(slot).samples, parts.topology.load(slot)).samples
        quiesce(server)
        start = time.perf_counter()
        points += parts.writer.write(samples).written  # as collect writes: store and buffer
        with_buffer.append(time.perf_counter() - start)
        if n % 2:  # the same points again, to the store alone and to the buffer alone
            quiesce(server)
            start = time.perf_counter()
            parts.store.write(samples)
            store_only.append(time.perf_counter() - start)
            start = time.perf_counter()
            parts.buffer.add(samples)
            buffer_only.append(time.perf_counter() - start)
    print(f"raw write of one ATLAS cycle ({points // 12:,} points), median: store and roll-up "
          f"buffer together {median(with_buffer):.2f} s, the store alone "
          f"{median(store_only):.2f} s, the buffer alone {median(buffer_only):.2f} s; buffer "
          f"file {parts.buffer.size_bytes() / 1e6:.0f} MB for two hours")
    for mode, since in (("server", None), ("client", HOUR)):
        parts = parts_for(server, tmp, "hour", mode)
        waited = quiesce(server)
        start = time.perf_counter()
        report = rollup(parts, "hourly", HOUR + timedelta(hours=1, minutes=7), since=since,
                        progress=False)
        elapsed = time.perf_counter() - start
        assert report.exit_code == 0 and report.buffered == 0, report.errors
        print(f"one ATLAS hour, {mode} path: {points // 2:,} raw points -> {report.points:,} "
              f"hourly points in {elapsed:.2f} s (target < 3 s; influxd idle after "
              f"{waited:.0f} s)")
    waited = quiesce(server)
    start = time.perf_counter()
    report = rollup(parts, "hourly", HOUR + timedelta(hours=2, minutes=7), progress=False)
    elapsed = time.perf_counter() - start
    assert report.exit_code == 0 and report.buffered == report.windows, report
    print(f"one ATLAS hour, from the roll-up buffer: {points // 2:,} raw points -> "
          f"{report.points:,} hourly points in {elapsed:.2f} s (target < 3 s; influxd idle "
          f"after {waited:.0f} s)")


def backfill(server: InfluxServer, tmp: Path, series: int) -> None:
    parts = parts_for(server, tmp, "backfill", "server")
    rng = random.Random(1)
    tags = [(("job_status", "running"), ("panda_queue", f"Q{n:04d}")) for n in range(series)]
    start_day = HOUR.replace(hour=0) - timedelta(days=30)
    written = 0
    for n in range(30 * 144):
        when = start_day + n * SLOT
        written += parts.store.write([Sample("jobs", t, (("jobs", float(rng.randint(0, 500))),),
                                             when) for t in tags]).written
    now = HOUR.replace(hour=0) + timedelta(minutes=30)
    for job in ("hourly", "daily"):
        start = time.perf_counter()
        report = rollup(parts, job, now, progress=False)
        elapsed = time.perf_counter() - start
        assert report.exit_code == 0, report.errors
        print(f"30-day backfill, {job}: {report.windows} windows, {report.points:,} points "
              f"from {written:,} raw points of {series} series in {elapsed:.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backfill-series", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qmonit-bench-") as tmp:
        server = InfluxServer(Path(tmp) / "influxd").start()
        try:
            one_hour(server, Path(tmp))
            backfill(server, Path(tmp), args.backfill_series)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
