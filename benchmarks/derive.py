#!/usr/bin/env python3
"""Benchmark: the derive job at ATLAS scale against QMonit's way, on a private InfluxDB.

History: 24 h of 10-minute points and 30 days of daily points for >= 20,000 `jobs`
series, and the SQL history collect keeps for derive (1h-24h windows and the robust
baseline: one query in SQL; a week per clock hour for the time-of-day baseline: one
more; 7d and 30d from "1d" in InfluxDB, once a day).
QMonit's way: fetch the raw points of the same windows and average them in Python.
Prints time and number of queries for both, and checks they agree.
Target: derive under 5 s. Run from the repository root: python3 benchmarks/derive.py
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.collect.components import build  # noqa: E402
from qmonit.core import config  # noqa: E402
from qmonit.core.model import HISTORY_STATUSES, PANDA_ALWAYS_PRESENT  # noqa: E402
from qmonit.core.sample import Sample  # noqa: E402
from qmonit.derive.job import derive  # noqa: E402
from qmonit.stores.state import history, schema  # noqa: E402
from qmonit.stores.state import queues as state_queues  # noqa: E402
from qmonit.stores.state.status import record_run_samples  # noqa: E402
from tests.servers import InfluxServer  # noqa: E402

SLOT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
STEP = timedelta(minutes=10)
LABELS = ("managed", "user")
RESOURCES = ("SCORE", "MCORE")


def series_tags(queues: int) -> list[tuple[tuple[str, str], ...]]:
    out = []
    for q in range(queues):
        for label in LABELS:
            for resource in RESOURCES:
                for status in PANDA_ALWAYS_PRESENT:
                    out.append(tuple(sorted({
                        "panda_queue": f"QUEUE_{q:04d}", "prod_source": label,
                        "resource": resource, "job_status": status, "cloud": f"C{q % 11}",
                        "atlas_site": f"SITE_{q // 2:04d}", "site_state": "online"}.items())))
    return out


def fill(parts, tags: list, rng: random.Random) -> int:
    level = {t: rng.uniform(10, 2000) for t in tags}
    written = 0
    for n in range(24 * 6, -1, -1):  # the last 24 h and the slot itself
        when = SLOT - n * STEP
        samples = [Sample("jobs", t, (("jobs", round(level[t] * rng.uniform(0.9, 1.1))),), when)
                   for t in tags]
        history.record_history(parts.engine, state_queues.counts_per_queue(samples), when,
                             timedelta(hours=25))  # as collect does
        samples.append(Sample("qmonit_run", (("job", "collect"), ("source", "panda"),
                                             ("status", "ok")), (("points", 1.0),), when))
        written += parts.store.write(samples).written
        record_run_samples(parts.engine, samples[-1:], when, when)  # source_status, as collect
    day = SLOT.replace(hour=0)
    jobs = samples[:-1]  # the last slot's, without its qmonit_run
    keys = {key: by_status for key, (_, by_status) in state_queues.counts_per_queue(jobs).items()}
    hours = range(int((day - timedelta(days=7)).timestamp()), int(day.timestamp()), 3600)
    with parts.engine.begin() as conn:  # a week per clock hour, as collect leaves queue_hourly
        conn.execute(history.queue_hourly.insert(), [
            {"panda_queue": key[0], "prod_source": key[1], "resource": key[2], "hour": hour,
             "slots": 6, **{s: 6 * by_status.get(s, 0.0) * rng.uniform(0.9, 1.1)
                            for s in HISTORY_STATUSES}}
            for key, by_status in keys.items() for hour in hours])
    written += len(keys) * len(hours)
    for d in range(1, 31):
        samples = [Sample("jobs", t, (("jobs", level[t]),), day - d * timedelta(days=1))
                   for t in tags]
        written += parts.store.write(samples, "1d").written
    return written


def qmonit_way_by_hand(store) -> tuple[dict, int]:
    """QMonit's way: raw points of every window into Python, averaged in loops."""
    means: dict = {}
    queries = 0
    day = SLOT.replace(hour=0)
    windows = {"1h": ("10m", SLOT - timedelta(hours=1), SLOT),
               "6h": ("10m", SLOT - timedelta(hours=6), SLOT),
               "12h": ("10m", SLOT - timedelta(hours=12), SLOT),
               "24h": ("10m", SLOT - timedelta(hours=24), SLOT),
               "7d": ("1d", day - timedelta(days=7), day),
               "30d": ("1d", day - timedelta(days=30), day)}
    for name, (rp, start, end) in windows.items():
        series = store.query(
            f'SELECT "jobs" FROM "{rp}"."jobs" WHERE time >= {int(start.timestamp())}s '
            f"AND time < {int(end.timestamp())}s GROUP BY panda_queue, prod_source, resource, "
            f"job_status")
        queries += 1
        sums: dict = defaultdict(float)
        counts: dict = defaultdict(int)
        for one in series:
            tags = one["tags"]
            key = (tags["panda_queue"], tags["prod_source"], tags["resource"],
                   tags["job_status"])
            for _, value in one["values"]:
                sums[key] += value
                counts[key] += 1
        means[name] = {k: sums[k] / counts[k] for k in sums}
    return means, queries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=1000,
                        help="queues; 20 series each (default 1000: 20,000 series)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qmonit-bench-") as tmp:
        server = InfluxServer(Path(tmp) / "influxd").start()
        try:
            cfg = config.defaults({
                "qmonit": {"data_dir": str(Path(tmp) / "data")},
                "influxdb": {"url": server.url, "database": "bench", "timeout_s": "120"},
                "sources": {"enabled": "simulated"},
            })
            parts = build(cfg)
            schema.create_tables(parts.engine)
            parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
            tags = series_tags(args.queues)
            start = time.perf_counter()
            written = fill(parts, tags, random.Random(1))
            elapsed = time.perf_counter() - start
            print(f"history: {len(tags):,} series, {written:,} points (24 h of 10-minute "
                  f"points, 30 days of daily points; a week of queue_hourly rows) written in "
                  f"{elapsed:.0f} s")
            times, queries = [], []
            for _ in range(4):
                start = time.perf_counter()
                report = derive(parts, SLOT)
                times.append(time.perf_counter() - start)
                queries.append(report.queries)
                assert report.error is None, report.error
            print(f"qmonit derive       : {min(times[1:]):.2f} s best of 3 in the 143 cycles a "
                  f"day, {queries[1]} aggregation queries; {times[0]:.2f} s in the first cycle "
                  f"of a day (+ 7d and 30d from \"1d\", {queries[0]} queries); "
                  f"{len(report.findings):,} findings (target < 5 s)")
            start = time.perf_counter()
            by_hand, queries = qmonit_way_by_hand(parts.store)
            elapsed = time.perf_counter() - start
            print(f"raw points in Python: {elapsed:.2f} s for the averages alone, {queries} "
                  f"queries returning every point ({elapsed / min(times):.1f}x slower)")
            with parts.engine.connect() as conn:
                from sqlalchemy import select
                row = conn.execute(select(state_queues.queue_stats).where(
                    state_queues.queue_stats.c.panda_queue == "QUEUE_0000",
                    state_queues.queue_stats.c.prod_source == "managed",
                    state_queues.queue_stats.c.resource == "SCORE")).one()
            key = ("QUEUE_0000", "managed", "SCORE", "running")
            for window in ("1h", "24h", "30d"):
                assert abs(getattr(row, f"running_avg_{window}") - by_hand[window][key]) < 1e-6
            print("check               : both ways give the same averages")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
