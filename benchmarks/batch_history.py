#!/usr/bin/env python3
"""Benchmark: the Batch Clusters dashboard's SQL over a large batch site's job history.

The site is CC-IN2P3's as BBQ serves it: a Slurm cluster (423 nodes) and an HTCondor pool
(765 hosts, 48 slots each); 120,000 current Slurm jobs and 50,000 current HTCondor jobs
(45 % running); ~400 owners; and `--days` (90) of ended jobs at 171,000 Slurm and 51,000
HTCondor jobs a day (20 million rows at 90 days). The rows are generated inside MariaDB
(its Sequence engine) with these distributions, deterministic per row:
- owner rank: 400 * u^3 (u uniform): a few owners hold most jobs, as on a real site
  (rank 0 ~ 16 % of the jobs, rank 150 ~ 0.06 %);
- run time: 60 s + 24 h * u^3; queue wait 1 h * u^2; end times evenly over the days;
- Slurm partitions htc / hpc / gpu / flash (gpu: 1-4 GPUs), 1, 1, 1, 8 or 16 CPUs;
  HTCondor jobs in `grid` on `slot1_N@wnNNNN.in2p3.fr`;
- ended states: 90 % completed, 6 % failed, 4 % cancelled.
Then every SQL panel of the Batch Clusters dashboard, expanded as Grafana expands it, at
6 h, 24 h, 7 d, 30 d and 90 d, with every filter on All, one owner (rank 0 and rank 150), one
job id typed and one worker typed: each query's time and the rows MariaDB's plan reads
(EXPLAIN); every `qmonit jobs` form and `qmonit top`; one collect cycle's sync of the
job tables (120,000 Slurm jobs, their hosts: the first, then a steady one); and the cost
of one cycle's expiry at that volume. Target (issue 35): every query under 1 s at 20
million ended jobs.
With --sqlite, the same site in the embedded default's SQLite store (rows drawn in Python
with the same distributions), timed through `qmonit jobs` and `qmonit top` (Grafana reads
only MySQL/MariaDB).
Run from the repository root: python3 benchmarks/batch_history.py [--days 90]
[--scale 1.0: the share of the daily rates, e.g. 0.1 for a quick look] [--keep] [--sqlite]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmonit.app.jobs import JobQuery, find_jobs, top_owners, top_workers  # noqa: E402
from qmonit.core import config  # noqa: E402
from qmonit.core.batchjobs import BatchJob  # noqa: E402
from qmonit.grafana.build import build_all  # noqa: E402
from qmonit.stores.state import schema  # noqa: E402
from qmonit.stores.state.batch import (  # noqa: E402
    MARGIN_S,
    batch_job_hosts,
    batch_jobs_current,
    batch_jobs_ended,
    sync_jobs,
)
from tests.grafana_macros import ALL, View, expand_sql  # noqa: E402
from tests.servers import MariaDB  # noqa: E402

END = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DATABASE = "qmonit_bench_history"
SLURM_PER_DAY, CONDOR_PER_DAY = 171_000, 51_000
CHUNK = 1_000_000
SPANS = {"6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7),
         "30d": timedelta(days=30), "90d": timedelta(days=90)}
COLUMNS = ("cluster, job_id, scheduler, owner, group_name, state, native_state, cause, "
           "reason, `partition`, worker, submit_time, start_time, end_time, cpus, gpus, "
           "memory_mb, last_seen")


def _job_sql(table: str, first: int, last: int, slurm: bool, ended: bool, spread_s: int,
             end: datetime) -> str:
    """INSERT ... SELECT over MariaDB's seq_FIRST_to_LAST: one job a number."""
    u = "RAND(seq * {k})"  # uniform in [0, 1), the same for the same row and stream k
    owner = f"FLOOR(400 * POW({u.format(k=3)}, 3))"
    node = (f"CONCAT('node', LPAD(FLOOR({u.format(k=5)} * 423), 4, '0'))" if slurm else
            f"CONCAT('slot1_', 1 + FLOOR({u.format(k=13)} * 48), '@wn', "
            f"LPAD(FLOOR({u.format(k=5)} * 765), 4, '0'), '.in2p3.fr')")
    partition = (f"ELT(1 + FLOOR({u.format(k=17)} * 4), 'htc', 'hpc', 'gpu', 'flash')"
                 if slurm else "'grid'")
    end_at = f"TIMESTAMP('{end:%Y-%m-%d %H:%M:%S}') - INTERVAL (seq * {spread_s} DIV {last}) SECOND"
    run_s = f"(60 + FLOOR(86400 * POW({u.format(k=7)}, 3)))"
    wait_s = f"FLOOR(3600 * POW({u.format(k=11)}, 2))"
    if ended:
        roll = u.format(k=19)
        state = f"IF({roll} < 0.90, 'completed', IF({roll} < 0.96, 'failed', 'cancelled'))"
        native = (f"IF({roll} < 0.90, 'COMPLETED', IF({roll} < 0.96, 'FAILED', 'CANCELLED'))"
                  if slurm else f"IF({roll} < 0.90, 'Completed', 'Removed')")
        start, stop = f"{end_at} - INTERVAL {run_s} SECOND", end_at
        worker = node
    else:  # current: 45 % running on a worker, the rest pending
        running = f"{u.format(k=23)} < 0.45"
        state = f"IF({running}, 'running', 'pending')"
        native = (f"IF({running}, 'RUNNING', 'PENDING')" if slurm
                  else f"IF({running}, 'Running', 'Idle')")
        start = f"IF({running}, {end_at} - INTERVAL {run_s} SECOND, NULL)"
        stop, worker = "NULL", f"IF({running}, {node}, '')"
    cpus = f"ELT(1 + FLOOR({u.format(k=29)} * 5), 1, 1, 1, 8, 16)"
    gpus = (f"IF({partition} = 'gpu', 1 + FLOOR({u.format(k=31)} * 4), 0)" if slurm else "0")
    first_id = 10_000_000 if ended else 40_000_000  # ids are never reused (batch_job_hosts)
    job_id = f"CAST({first_id} + seq AS CHAR)" if slurm else \
        f"CONCAT({first_id // 2} + seq DIV 10, '.', seq MOD 10)"
    cluster, scheduler = ("ccin2p3-slurm", "slurm") if slurm else ("ccin2p3-condor",
                                                                    "htcondor")
    submit = f"COALESCE({start}, {end_at}) - INTERVAL {wait_s} SECOND"
    if table == "batch_job_hosts":  # the job's host: the node, or the HTCondor slot's host
        host = worker if slurm else f"SUBSTRING_INDEX({worker}, '@', -1)"
        return (f"INSERT INTO batch_job_hosts (cluster, job_id, host, share, start_time, "
                f"end_time) SELECT '{cluster}', {job_id}, {host}, 1, {start}, {stop} "
                f"FROM seq_{first}_to_{last} WHERE {worker} <> ''")
    return (f"INSERT INTO {table} ({COLUMNS}) SELECT '{cluster}', {job_id}, '{scheduler}', "
            f"CONCAT('user', LPAD({owner}, 3, '0')), CONCAT('grp', {owner} DIV 10), {state}, "
            f"{native}, '', '', {partition}, {worker}, {submit}, {start}, {stop}, {cpus}, "
            f"{gpus}, {cpus} * 2000, TIMESTAMP('{end:%Y-%m-%d %H:%M:%S}') "
            f"FROM seq_{first}_to_{last}")


def fill(engine: Engine, days: int, scale: float) -> dict[str, int]:
    """The current and ended jobs; returns the rows per table."""
    naive_end = END.replace(tzinfo=None)
    counts = {}
    with engine.begin() as conn:
        for table in ("batch_jobs_current", "batch_job_hosts"):
            conn.execute(text(_job_sql(table, 1, int(120_000 * scale), True, False,
                                       3 * 86400, naive_end)))
            conn.execute(text(_job_sql(table, 1, int(50_000 * scale), False, False,
                                       3 * 86400, naive_end)))
        for cluster in ("ccin2p3-slurm", "ccin2p3-condor"):  # what sync_jobs notes: the
            conn.execute(text(  # longest run (60 s + 24 h) plus the margin
                "INSERT INTO batch_clusters (cluster, longest_run_s, updated_at) VALUES "
                f"('{cluster}', {60 + 86400 + MARGIN_S}, '{naive_end:%Y-%m-%d %H:%M:%S}')"))
    for slurm, per_day in ((True, SLURM_PER_DAY), (False, CONDOR_PER_DAY)):
        total = int(per_day * days * scale)
        for first in range(1, total + 1, CHUNK):
            last = min(total, first + CHUNK - 1)
            with engine.begin() as conn:  # seq DIV total spreads each chunk over the days
                for table in ("batch_jobs_ended", "batch_job_hosts"):
                    conn.execute(text(_job_sql(table, first, last, slurm, True,
                                               days * 86400 * last // total, naive_end)))
            print(f"  {'slurm' if slurm else 'htcondor'} ended: {last:,} of {total:,}",
                  flush=True)
    with engine.connect() as conn:
        conn.execute(text("ANALYZE TABLE batch_jobs_current, batch_jobs_ended, "
                          "batch_job_hosts"))
    return {**counts, **counted(engine)}


def counted(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                for table in ("batch_jobs_current", "batch_jobs_ended", "batch_job_hosts")}


def plan_rows(engine: Engine, query: str) -> int:
    """The rows MariaDB's plan expects to read (EXPLAIN's rows, multiplied over the joins)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN " + query).mappings().all()
    total = 0
    for row in rows:
        total += int(str(row["rows"] or 0).split()[0])  # "1 (0%)" in a UNION's plan
    return total


def timed(engine: Engine, query: str) -> tuple[float, int]:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET time_zone = '+00:00'")
        start = time.perf_counter()
        n = len(conn.exec_driver_sql(query).fetchall())
    return time.perf_counter() - start, n


def selections(engine: Engine) -> dict[str, dict[str, object]]:
    """All, the biggest owner, an owner of rank 150, a job id typed (an ended job of three
    days ago) and a worker typed (a Slurm node)."""
    with engine.connect() as conn:
        job_id = conn.execute(text(
            "SELECT job_id FROM batch_jobs_ended WHERE cluster = 'ccin2p3-slurm' AND end_time "
            "< :t ORDER BY end_time DESC LIMIT 1"),
            {"t": (END - timedelta(days=3)).replace(tzinfo=None)}).scalar_one()
    base: dict[str, object] = {"cluster": ALL, "partition": ALL, "owner": ALL,
                               "job_state": ALL, "job_id": "", "worker": "", "min_cpus": "",
                               "gpu_jobs": "any"}
    return {"all": base, "owner rank 0": {**base, "owner": ["user000"]},
            "owner rank 150": {**base, "owner": ["user150"]},
            "job id": {**base, "job_id": job_id}, "worker": {**base, "worker": "node0042"},
            "HTCondor host": {**base, "worker": "wn0042.in2p3.fr"},
            "state failed": {**base, "job_state": ["failed"]},
            "GPU jobs, 2 CPUs or more": {**base, "gpu_jobs": "only", "min_cpus": "2"}}


def jobs_forms(engine: Engine) -> list[tuple[str, JobQuery]]:
    """`qmonit jobs` as an admin types it: by owner, job, worker, state, at and between."""
    with engine.connect() as conn:
        job_id = conn.execute(text(
            "SELECT job_id FROM batch_jobs_ended WHERE cluster = 'ccin2p3-slurm' AND end_time "
            "< :t ORDER BY end_time DESC LIMIT 1"),
            {"t": (END - timedelta(days=3)).replace(tzinfo=None)}).scalar_one()
    three, sixty = END - timedelta(days=3), END - timedelta(days=60)
    return [
        ("--owner user150", JobQuery(owner="user150")),
        ("--owner user000 --state failed", JobQuery(owner="user000", state="failed")),
        (f"--job {job_id}", JobQuery(job_id=job_id)),
        ("--worker node0042", JobQuery(worker="node0042")),
        ("--worker node0042 --at 3 days ago", JobQuery(worker="node0042", since=three,
                                                       until=three)),
        ("--worker node0042 --at 60 days ago", JobQuery(worker="node0042", since=sixty,
                                                        until=sixty)),
        ("--worker wn0042.in2p3.fr --at 3 days ago",
         JobQuery(worker="wn0042.in2p3.fr", since=three, until=three)),
        ("--owner user000 --between (6 h, 3 days ago)",
         JobQuery(owner="user000", since=three - timedelta(hours=6), until=three)),
        ("--at 60 days ago", JobQuery(since=sixty, until=sixty)),
        ("--state failed", JobQuery(state="failed")),
    ]


STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy keeps a DateTime in SQLite


def _sqlite_jobs(days: int, scale: float, ended: bool, slurm: bool,
                 rng: random.Random) -> Iterator[tuple[tuple, list[tuple]]]:
    """The same site as _job_sql's, drawn in Python: (a job row, its host rows)."""
    per_day = SLURM_PER_DAY if slurm else CONDOR_PER_DAY
    total = int(per_day * days * scale) if ended else int((120_000 if slurm else 50_000)
                                                          * scale)
    spread = days * 86400 if ended else 3 * 86400
    cluster, scheduler = ("ccin2p3-slurm", "slurm") if slurm else ("ccin2p3-condor",
                                                                    "htcondor")
    end_naive = END.replace(tzinfo=None)
    for seq in range(1, total + 1):
        rank = int(400 * rng.random() ** 3)
        end_at = end_naive - timedelta(seconds=seq * spread // total)
        run = timedelta(seconds=60 + int(86400 * rng.random() ** 3))
        wait = timedelta(seconds=int(3600 * rng.random() ** 2))
        node = (f"node{int(rng.random() * 423):04d}" if slurm else
                f"slot1_{1 + int(rng.random() * 48)}@wn{int(rng.random() * 765):04d}.in2p3.fr")
        partition = rng.choice(("htc", "hpc", "gpu", "flash")) if slurm else "grid"
        cpus = float(rng.choice((1, 1, 1, 8, 16)))
        gpus = float(1 + int(rng.random() * 4)) if partition == "gpu" else 0.0
        first_id = 10_000_000 if ended else 40_000_000
        job_id = str(first_id + seq) if slurm else f"{first_id // 2 + seq // 10}.{seq % 10}"
        if ended:
            roll = rng.random()
            state = "completed" if roll < 0.90 else "failed" if roll < 0.96 else "cancelled"
            start, stop, worker = end_at - run, end_at, node
        else:
            running = rng.random() < 0.45
            state = "running" if running else "pending"
            start, stop, worker = (end_at - run if running else None), None, \
                (node if running else "")
        submit = (start or end_at) - wait
        stamp = [None if t is None else t.strftime(STAMP) for t in (submit, start, stop)]
        yield ((cluster, job_id, scheduler, f"user{rank:03d}", f"grp{rank // 10}", state,
                state.upper(), "", "", partition, worker, *stamp, cpus, gpus, cpus * 2000,
                end_naive.strftime(STAMP)),
               [(cluster, job_id, worker.rsplit("@", 1)[-1], 1.0, stamp[1], stamp[2])]
               if worker else [])


def fill_sqlite(path: Path, days: int, scale: float) -> dict[str, int]:
    """The embedded default's store with the same site: indexes dropped while it fills,
    made again by `schema.create_tables` (what `qmonit init` does to an older store)."""
    engine = create_engine(f"sqlite:///{path}")
    schema.create_tables(engine)
    with engine.begin() as conn:
        for table in (batch_jobs_current, batch_jobs_ended, batch_job_hosts):
            for index in table.indexes:
                conn.execute(text(f"DROP INDEX {index.name}"))
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    for ended in (False, True):
        table = "batch_jobs_ended" if ended else "batch_jobs_current"
        for slurm in (True, False):
            jobs, hosts = [], []
            for job, its_hosts in _sqlite_jobs(days, scale, ended, slurm, rng):
                jobs.append(job)
                hosts += its_hosts
                if len(jobs) == 200_000:
                    _sqlite_insert(db, table, jobs, hosts)
            _sqlite_insert(db, table, jobs, hosts)
            print(f"  sqlite {table} {'slurm' if slurm else 'htcondor'}: filled", flush=True)
    db.close()
    start = time.perf_counter()
    schema.create_tables(engine)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        counts = {table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                  for table in ("batch_jobs_current", "batch_jobs_ended", "batch_job_hosts")}
        conn.execute(text("INSERT INTO batch_clusters VALUES ('ccin2p3-slurm', "
                          f"{60 + 86400 + MARGIN_S}, '{END:%Y-%m-%d %H:%M:%S}')"))
    print(f"  sqlite indexes made in {time.perf_counter() - start:.0f} s", flush=True)
    engine.dispose()
    return counts


def _sqlite_insert(db: sqlite3.Connection, table: str, jobs: list[tuple],
                   hosts: list[tuple]) -> None:
    with db:
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * 18)})", jobs)
        db.executemany("INSERT OR IGNORE INTO batch_job_hosts VALUES (?, ?, ?, ?, ?, ?)",
                       hosts)
    jobs.clear()
    hosts.clear()


def time_sync(engine: Engine) -> None:
    """One collect cycle's job-table sync (qmonit/stores/state/batch.sync_jobs) of a Slurm
    cluster of 120,000 jobs (45 % running on 423 nodes, 5 % of them on 4-node lists): the
    first (every job and host new), then a steady one (5 % started, 1 % gone, 1 % new)."""
    rng = random.Random(3)
    now = END

    def job(n: int) -> BatchJob:
        running = rng.random() < 0.45
        node = (f"node[{n % 419:04d}-{n % 419 + 3:04d}]" if rng.random() < 0.05
                else f"node{n % 423:04d}")
        return BatchJob(str(70_000_000 + n), f"user{int(400 * rng.random() ** 3):03d}", "grp",
                        "htc", "RUNNING" if running else "PENDING",
                        worker=node if running else "", submit_time=now - timedelta(hours=2),
                        start_time=now - timedelta(hours=1) if running else None, cpus=8.0,
                        state="running" if running else "pending")

    jobs = [job(n) for n in range(120_000)]
    later = now + timedelta(minutes=10)
    started = {n for n, j in enumerate(jobs) if n % 20 == 0 and j.state == "pending"}
    steady = [replace(j, native_state="RUNNING", state="running", worker=f"node{n % 423:04d}",
                      start_time=later) if n in started else j
              for n, j in enumerate(jobs) if n % 100 != 1] + [job(200_000 + n)
                                                               for n in range(1200)]
    for what, listed, at in (("first", jobs, now), ("steady", steady, later)):
        start = time.perf_counter()
        done = sync_jobs(engine, "bench-sync", "slurm", listed, at, timedelta(days=90))
        print(f"  {time.perf_counter() - start:7.3f} s  {what} sync of 120,000 jobs: {done}")


def time_commands(engine: Engine, worst: list[tuple[float, str]], where: str = "") -> None:
    """Every `qmonit jobs` form and `qmonit top`, as the commands run them."""
    for said, query in jobs_forms(engine):
        start = time.perf_counter()
        found = find_jobs(engine, query)
        seconds = time.perf_counter() - start
        worst.append((seconds, f"{where}qmonit jobs {said}"))
        print(f"  {seconds:7.3f} s  {len(found):>5} rows  qmonit jobs {said}")
    for name, count in (("owners", top_owners), ("workers", top_workers)):
        start = time.perf_counter()
        rows = len(count(engine))
        seconds = time.perf_counter() - start
        worst.append((seconds, f"{where}qmonit top ({name})"))
        print(f"  {seconds:7.3f} s  {rows:>5} rows  qmonit top ({name})")


def sqlite_run(days: int, scale: float) -> int:
    """--sqlite: the embedded default's store (no Grafana reads it: the commands only)."""
    with tempfile.TemporaryDirectory(prefix="qmonit-bench-") as scratch:
        path = Path(scratch) / "qmonit.sqlite"
        print(f"filling SQLite {path}: {days} days at {scale:g} x the daily rates", flush=True)
        start = time.perf_counter()
        counts = fill_sqlite(path, days, scale)
        print(f"filled in {time.perf_counter() - start:.0f} s: "
              + ", ".join(f"{table} {n:,} rows" for table, n in counts.items())
              + f"; {path.stat().st_size / 2**30:.1f} GiB")
        engine = create_engine(f"sqlite:///{path}")
        worst: list[tuple[float, str]] = []
        print("\nqmonit jobs / top on SQLite:")
        time_commands(engine, worst)
        engine.dispose()
    worst.sort(reverse=True)
    print(f"\nqueries: {len(worst)}, over 1 s: {sum(w[0] >= 1.0 for w in worst)} "
          f"(target: none); slowest {worst[0][0]:.3f} s: {worst[0][1]}")
    return 0


def sql_panels(model: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["rawSql"]) for panel in model["panels"]
            if panel["type"] != "row" for target in panel.get("targets", [])
            if target["datasource"]["type"] == "mysql"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days of ended jobs (90)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="share of the daily rates and current jobs (1.0)")
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the database {DATABASE} afterwards (to try queries by hand)")
    parser.add_argument("--reuse", action="store_true",
                        help=f"query the database {DATABASE} a --keep run left (no fill)")
    parser.add_argument("--sqlite", action="store_true",
                        help="the embedded default's SQLite store instead (the commands only)")
    args = parser.parse_args()
    if args.sqlite:
        return sqlite_run(args.days, args.scale)
    server = MariaDB()
    root = create_engine(server.url())
    if not args.reuse:
        with root.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            conn.execute(text(f"CREATE DATABASE {DATABASE}"))
    engine = create_engine(server.url(DATABASE))
    try:
        schema.create_tables(engine)  # on --reuse: what this qmonit adds to the tables
        with engine.connect() as conn:  # the figures depend on it: say it
            pool = conn.execute(text("SELECT @@innodb_buffer_pool_size, VERSION()")).one()
        print(f"MariaDB {pool[1]}, InnoDB buffer pool {pool[0] / 2**30:.1f} GiB "
              "(a production server's is most of its memory: SET GLOBAL "
              "innodb_buffer_pool_size)")
        print(f"filling: {args.days} days of ended jobs at {args.scale:g} x "
              f"({SLURM_PER_DAY:,} Slurm + {CONDOR_PER_DAY:,} HTCondor) a day", flush=True)
        start = time.perf_counter()
        counts = counted(engine) if args.reuse else fill(engine, args.days, args.scale)
        print(f"{'reused' if args.reuse else 'filled'} in {time.perf_counter() - start:.0f} s: "
              + ", ".join(f"{table} {n:,} rows" for table, n in counts.items()))
        board = next(b for b in build_all(config.defaults({"sources": {"enabled": ""}}))
                     if b.model["uid"] == "qmonit-batch")
        variables = {v["name"]: v for v in board.model["templating"]["list"]}
        worst: list[tuple[float, str]] = []
        for name, selected in selections(engine).items():
            for span_name, span in SPANS.items():
                if span.days > args.days:
                    continue
                view = View(END - span, END, variables=variables, selected=dict(selected))
                print(f"\n{name}, {span_name}:")
                for title, raw in sql_panels(board.model):
                    query = expand_sql(raw, view)
                    seconds, rows = timed(engine, query)
                    read = plan_rows(engine, query)
                    worst.append((seconds, f"{title} [{name}, {span_name}]"))
                    print(f"  {seconds:7.3f} s  {rows:>5} rows  plan reads {read:>11,}  "
                          f"{title}")
        print("\nqmonit jobs / top (qmonit/app/jobs.py, the queries the commands run):")
        time_commands(engine, worst)
        print("\none collect cycle's sync of the job tables:")
        time_sync(engine)
        with engine.begin() as conn:  # one cycle's expiry: the ten minutes that age out
            cutoff = {"t": (END - timedelta(days=args.days) + timedelta(minutes=10))
                      .replace(tzinfo=None)}
            start = time.perf_counter()
            expired = conn.execute(text(
                "DELETE FROM batch_jobs_ended WHERE cluster = 'ccin2p3-slurm' AND end_time < "
                ":t"), cutoff).rowcount
            hosts = conn.execute(text(
                "DELETE FROM batch_job_hosts WHERE cluster = 'ccin2p3-slurm' AND end_time < "
                ":t"), cutoff).rowcount
            print(f"\nexpiry of one cycle: {expired:,} jobs and {hosts:,} host rows in "
                  f"{time.perf_counter() - start:.3f} s")
        worst.sort(reverse=True)
        over = [w for w in worst if w[0] >= 1.0]
        print(f"\nqueries: {len(worst)}, over 1 s: {len(over)} (target: none); slowest:")
        for seconds, what in worst[:10]:
            print(f"  {seconds:7.3f} s  {what}")
    finally:
        if not args.keep:
            with root.begin() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
