"""Job-level look-up tables (BBQ's owner / job / worker info), never InfluxDB tags.

`batch_jobs_current` holds every job a scheduler listed in its last successful cycle:
rows are upserted when they change and moved to `batch_jobs_ended` when the job leaves
the queue. `batch_jobs_ended` keeps a job for [collect] ended_jobs_days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnClause,
    ColumnElement,
    Connection,
    DateTime,
    Double,
    Engine,
    Index,
    String,
    Table,
    column,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import mysql, sqlite

from qmonit.core.batchjobs import BatchJob
from qmonit.stores.sql import naive, upsert
from qmonit.stores.state.metadata import metadata

CHUNK = 1000


def _columns() -> list[Column]:
    return [
        Column("cluster", String(64), primary_key=True),
        Column("job_id", String(128), primary_key=True),
        Column("scheduler", String(16), nullable=False),
        Column("owner", String(128), nullable=False),
        Column("group_name", String(128), nullable=False),
        Column("state", String(16), nullable=False),
        Column("native_state", String(32), nullable=False),
        Column("cause", String(255), nullable=False),
        Column("reason", String(128), nullable=False),
        Column("partition", String(128), nullable=False),
        Column("worker", String(255), nullable=False),
        Column("submit_time", DateTime, nullable=True),
        Column("start_time", DateTime, nullable=True),
        Column("end_time", DateTime, nullable=True),
        Column("cpus", Double, nullable=False),
        Column("gpus", Double, nullable=False),
        Column("memory_mb", Double, nullable=False),
        Column("last_seen", DateTime, nullable=False),
    ]


# The indexes of the Batch Clusters dashboard's filters: a job id or a worker typed, an
# owner chosen; the ended jobs' look-ups read one time range, so owner and worker lead
# (owner, end_time) and (worker, end_time) (benchmarks/batch_history.py).
batch_jobs_current = Table("batch_jobs_current", metadata, *_columns(),
                           Index("ix_batch_jobs_current_owner", "owner"),
                           Index("ix_batch_jobs_current_worker", "worker"),
                           Index("ix_batch_jobs_current_job", "job_id"))
batch_jobs_ended = Table("batch_jobs_ended", metadata, *_columns(),
                         Index("ix_batch_jobs_ended_owner_end", "owner", "end_time"),
                         Index("ix_batch_jobs_ended_worker_end", "worker", "end_time"),
                         Index("ix_batch_jobs_ended_job", "job_id"),
                         Index("ix_batch_jobs_ended_end", "end_time"))
UNUSED_INDEXES = {"batch_jobs_ended": "ix_batch_jobs_ended_owner"}  # (owner, end_time) serves
# What decides whether a current row needs writing again.
CHANGING = ("state", "native_state", "reason", "worker", "start_time", "end_time")


def _row(job: BatchJob, cluster: str, scheduler: str, now: datetime) -> dict:
    return {"cluster": cluster, "job_id": job.job_id[:128], "scheduler": scheduler,
            "owner": job.owner[:128], "group_name": job.group[:128], "state": job.state,
            "native_state": job.native_state[:32], "cause": job.cause[:255],
            "reason": job.reason[:128], "partition": job.partition[:128],
            "worker": job.worker[:255], "submit_time": naive(job.submit_time),
            "start_time": naive(job.start_time), "end_time": naive(job.end_time),
            "cpus": job.cpus, "gpus": job.gpus, "memory_mb": job.memory_mb,
            "last_seen": naive(now)}


def _changing(job: BatchJob, store: list) -> tuple:
    """A job's CHANGING columns as the driver holds them (`store`: each column's bind
    processor or None; SQLite keeps a datetime as SQLAlchemy's string)."""
    values = (job.state, job.native_state[:32], job.reason[:128], job.worker[:255],
              naive(job.start_time), naive(job.end_time))
    return tuple(value if convert is None else convert(value)
                 for value, convert in zip(values, store, strict=True))


def sync_jobs(engine: Engine, cluster: str, scheduler: str, jobs: Sequence[BatchJob],
              now: datetime, keep: timedelta) -> dict[str, int]:
    """Make batch_jobs_current match `jobs`; move the jobs that left to batch_jobs_ended.

    Only the rows of new or changed jobs are built and written (most of a queue's jobs are
    as they were ten minutes ago), compared as the driver holds them (no datetime parsed
    back); the jobs that left move in one INSERT ... SELECT."""
    table = batch_jobs_current
    listed = {job.job_id[:128]: job for job in jobs}
    with engine.begin() as conn:
        dialect = conn.dialect
        store = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                 for c in CHANGING]
        # untyped columns: the driver's values, unconverted
        raw: list[ColumnClause[Any]] = [column(c) for c in CHANGING]
        known = {r[0]: tuple(r[1:]) for r in conn.execute(
            select(column("job_id"), *raw).select_from(table)
            .where(table.c.cluster == cluster))}
        changed = [_row(job, cluster, scheduler, now) for job_id, job in listed.items()
                   if known.get(job_id) != _changing(job, store)]
        upsert(conn, table, changed, ["cluster", "job_id"])
        gone = sorted(set(known) - set(listed))
        for start in range(0, len(gone), CHUNK):
            where = (table.c.cluster == cluster) & table.c.job_id.in_(gone[start:start + CHUNK])
            _move_ended(conn, where)
            conn.execute(delete(table).where(where))
        expired = conn.execute(delete(batch_jobs_ended).where(
            batch_jobs_ended.c.cluster == cluster,
            batch_jobs_ended.c.end_time < naive(now - keep))).rowcount
    return {"written": len(changed), "ended": len(gone), "expired": expired}


def _move_ended(conn: Connection, where: ColumnElement) -> None:
    """Copy the rows of batch_jobs_current matching `where` to batch_jobs_ended (replacing a
    row of the same job), a missing end time taken as the last time it was seen."""
    names = [c.name for c in batch_jobs_current.columns]
    picked = select(*[func.coalesce(batch_jobs_current.c.end_time,
                                    batch_jobs_current.c.last_seen).label("end_time")
                      if name == "end_time" else batch_jobs_current.c[name]
                      for name in names]).where(where)
    key = {"cluster", "job_id"}
    if conn.dialect.name == "sqlite":
        lite = sqlite.insert(batch_jobs_ended).from_select(names, picked)
        conn.execute(lite.on_conflict_do_update(
            index_elements=sorted(key),
            set_={n: lite.excluded[n] for n in names if n not in key}))
    else:
        maria = mysql.insert(batch_jobs_ended).from_select(names, picked)
        conn.execute(maria.on_duplicate_key_update(
            {n: maria.inserted[n] for n in names if n not in key}))


def current_jobs(engine: Engine, cluster: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(batch_jobs_current).where(batch_jobs_current.c.cluster == cluster)
            .order_by(batch_jobs_current.c.job_id))]


def ended_jobs(engine: Engine, cluster: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(batch_jobs_ended).where(batch_jobs_ended.c.cluster == cluster)
            .order_by(batch_jobs_ended.c.job_id))]

