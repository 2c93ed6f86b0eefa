"""The SQL state store: topology snapshot, current counts per queue, and the series seen.

`queues` is the CRIC snapshot in use; `queue_stats` holds one row per
panda_queue × prod_source × resource with the latest count of every PanDA job
status (the table the Suspicious sites dashboard reads); `series_seen` remembers
every series a source produced and when, so a series that vanishes is written
as an explicit 0 for a while instead of simply stopping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from qmonit.model import PANDA_JOB_STATUSES
from qmonit.sample import Sample, epoch_seconds
from qmonit.stores.sql import upsert

QUEUE_COLUMNS = ("atlas_site", "cloud", "country", "tier", "site_state", "queue_type",
                 "resource_type", "pilot_manager", "harvester", "rc")

metadata = MetaData()

queues = Table(
    "queues", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("panda_resource", String(128)),
    *(Column(name, String(128)) for name in QUEUE_COLUMNS),
    Column("corecount", Integer),
    Column("corepower", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
queue_stats = Table(
    "queue_stats", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("prod_source", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("atlas_site", String(128)),
    Column("cloud", String(64)),
    Column("site_state", String(32)),
    *(Column(status, Float) for status in PANDA_JOB_STATUSES),
    Column("slot_time", DateTime(timezone=True), nullable=False),
)
series_seen = Table(
    "series_seen", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String(64), nullable=False, index=True),
    Column("measurement", String(64), nullable=False),
    Column("tags", Text, nullable=False),
    Column("fields", Text, nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False, index=True),
)


@dataclass(frozen=True)
class SeenSeries:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[str, ...]
    first_seen: int
    last_seen: int


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine)


def seen_series(engine: Engine, source: str, since: datetime) -> dict[int, SeenSeries]:
    """Series of a source last seen at or after `since`, by series id."""
    query = select(series_seen).where(series_seen.c.source == source,
                                      series_seen.c.last_seen >= epoch_seconds(since))
    with engine.connect() as conn:
        return {
            row.series_id: SeenSeries(row.measurement, tuple(map(tuple, json.loads(row.tags))),
                                      tuple(json.loads(row.fields)), row.first_seen,
                                      row.last_seen)
            for row in conn.execute(query)
        }


def mark_seen(engine: Engine, source: str, present: Iterable[tuple[int, Sample]],
              known: dict[int, SeenSeries], slot: datetime) -> None:
    """Record that these series reported at `slot` (never moving last_seen backwards)."""
    now = epoch_seconds(slot)
    rows = []
    for sid, sample in present:
        before = known.get(sid)
        rows.append({
            "series_id": sid, "source": source, "measurement": sample.measurement,
            "tags": json.dumps(sample.tags), "fields": json.dumps([k for k, _ in sample.fields]),
            "first_seen": min(before.first_seen, now) if before else now,
            "last_seen": max(before.last_seen, now) if before else now,
        })
    with engine.begin() as conn:
        upsert(conn, series_seen, rows, ["series_id"])


def upsert_queues(engine: Engine, rows: Sequence[dict]) -> None:
    with engine.begin() as conn:
        upsert(conn, queues, list(rows), ["panda_queue"])


def upsert_queue_stats(engine: Engine, job_samples: Sequence[Sample], slot: datetime) -> int:
    """Current count of every job status per queue × prod_source × resource; absent = 0."""
    rows: dict[tuple[str, str, str], dict] = {}
    for sample in job_samples:
        tags = dict(sample.tags)
        key = (tags["panda_queue"], tags["prod_source"], tags["resource"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "panda_queue": key[0], "prod_source": key[1], "resource": key[2],
                "atlas_site": tags.get("atlas_site"), "cloud": tags.get("cloud"),
                "site_state": tags.get("site_state"), "slot_time": slot,
                **{status: 0.0 for status in PANDA_JOB_STATUSES},
            }
        if tags["job_status"] in PANDA_JOB_STATUSES:
            row[tags["job_status"]] += float(dict(sample.fields)["jobs"])
    with engine.begin() as conn:
        upsert(conn, queue_stats, list(rows.values()),
               ["panda_queue", "prod_source", "resource"])
    return len(rows)
