"""What the shift crew reads as rows: the latest run of every source, and every factory label.

`source_status` has one row per job × source: when it last ran, with what status and
message, and when it last succeeded (Pipeline Health's stale indicator and the
Grafana stale-data alert read it). `factory_labels` has one row per factory × label
(panda_queue): the pilot counts of the last cycle, the label's message and whether
the queue is in trouble (the Pilot Factories dashboard reads it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Double,
    Engine,
    String,
    Table,
    Text,
    delete,
    select,
)

from qmonit.core.sample import Sample
from qmonit.stores.sql import naive, state_step, upsert, utc
from qmonit.stores.state.metadata import metadata
from qmonit.support.redact import brief

log = logging.getLogger(__name__)

APF_COUNTS = ("created", "running", "exiting", "done", "fault")

source_status = Table(
    "source_status", metadata,
    Column("job", String(32), primary_key=True),
    Column("source", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("points", Double, nullable=False),
    Column("duration_s", Double, nullable=False),
    Column("last_run_at", DateTime, nullable=False),  # wall clock, UTC, naive as MySQL keeps it
    Column("last_slot", DateTime, nullable=False),  # the slot that run was for
    Column("last_ok_slot", DateTime),  # the newest slot it succeeded for (backfills never rewind)
)

factory_labels = Table(
    "factory_labels", metadata,
    Column("factory", String(128), primary_key=True),
    Column("label", String(128), primary_key=True),
    Column("factory_type", String(16), nullable=False),
    Column("atlas_site", String(128), nullable=False),
    Column("cloud", String(64), nullable=False),
    *(Column(name, Double, nullable=False) for name in APF_COUNTS),
    Column("activated", Double, nullable=False),  # PanDA's activated jobs for the queue
    Column("in_trouble", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)


def record_runs(engine: Engine, job: str, runs: Sequence[dict], slot: datetime,
                now: datetime) -> None:
    """Upsert one row per source: {source, status, message, points, duration_s}."""
    if not runs:
        return
    table = source_status
    slot = naive(slot)
    with engine.begin() as conn:
        last_ok = {r.source: r.last_ok_slot for r in conn.execute(
            select(table.c.source, table.c.last_ok_slot).where(table.c.job == job))}

        def newest_ok(run: dict) -> datetime | None:
            before = last_ok.get(run["source"])
            if run["status"] != "ok":
                return before
            return slot if before is None else max(before, slot)

        rows = [{"job": job, **run, "message": brief(run["message"], 2000),
                 "last_run_at": naive(now), "last_slot": slot,
                 "last_ok_slot": newest_ok(run)} for run in runs]
        upsert(conn, table, rows, ["job", "source"])


def last_ok_slots(engine: Engine, job: str) -> dict[str, datetime | None]:
    """Per source of `job`: the newest slot it succeeded for (None: never), as UTC."""
    with engine.connect() as conn:
        return {row.source: (utc(row.last_ok_slot))
                for row in conn.execute(select(source_status.c.source,
                                               source_status.c.last_ok_slot)
                                        .where(source_status.c.job == job))}


def record_run_samples(engine: Engine, runs: Sequence[Sample], slot: datetime,
                       now: datetime) -> str:
    """source_status from a job's `qmonit_run` points (run at `now`, the job's clock);
    returns the error, or "" when stored."""
    by_job: dict[str, list[dict]] = {}
    for run in runs:
        by_job.setdefault(run.tag("job") or "unknown", []).append({
            "source": run.tag("source"), "status": run.tag("status"),
            "message": str(run.field("message") or ""),
            "points": float(run.field("points") or 0),
            "duration_s": float(run.field("duration_s") or 0)})
    errors: list[str] = []
    with state_step(errors, "source_status not updated", log):
        for job, rows in by_job.items():
            record_runs(engine, job, rows, slot, now)
    return "; ".join(errors)


def pilots_by_label(engine: Engine) -> dict[str, list[dict]]:
    """The factory_labels rows of each label (panda_queue): every factory serving it."""
    out: dict[str, list[dict]] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(factory_labels).order_by(factory_labels.c.factory)):
            out.setdefault(row.label, []).append(dict(row._mapping))
    return out


def replace_factory_labels(engine: Engine, rows: Sequence[dict]) -> None:
    """Upsert this cycle's labels; a factory's labels not in this cycle are removed."""
    table = factory_labels
    with engine.begin() as conn:
        for factory in sorted({row["factory"] for row in rows}):
            present = [row["label"] for row in rows if row["factory"] == factory]
            conn.execute(delete(table).where(table.c.factory == factory,
                                             table.c.label.not_in(present)))
        upsert(conn, table, list(rows), ["factory", "label"])


def read_table(engine: Engine, table: Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(table).order_by(*table.primary_key.columns))]
