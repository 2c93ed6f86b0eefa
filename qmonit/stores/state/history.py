"""Derive's memory: per-slot counts of the last hours (`queue_history`), hourly sums
(`queue_hourly`) and daily shapes (`queue_days`) behind the moving averages and the noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    String,
    Table,
    case,
    delete,
    func,
    literal,
    select,
)

from qmonit.core.model import (
    HISTORY_STATUSES,
    NOISE_STATUSES,
    SEASONAL_STATUSES,
)
from qmonit.core.sample import epoch_seconds
from qmonit.stores.sql import upsert, utc
from qmonit.stores.state.metadata import metadata
from qmonit.stores.state.queues import QueueCounts, queue_stats


# The last day of 10-minute counts per queue × prod_source × resource, for the derive job:
# one row per key and slot, no topology tags (a CRIC change never splits a queue's history).
def _queue_key() -> list[Column]:
    """panda_queue × prod_source × resource: the key of the derive job's history tables."""
    return [Column("panda_queue", String(128), primary_key=True),
            Column("prod_source", String(64), primary_key=True),
            Column("resource", String(64), primary_key=True)]


queue_history = Table(
    "queue_history", metadata,
    *_queue_key(),
    Column("slot", BigInteger, primary_key=True, autoincrement=False),
    *(Column(status, Double) for status in HISTORY_STATUSES),
    Index("ix_queue_history_slot", "slot"),
)


# The same counts per clock hour, kept for [derive] seasonal_days: its slots and sums per
# status, recomputed from queue_history on every cycle of the hour (a re-run counts once).
# derive reads it for the time-of-day shape of each queue's day (numbers.seasonal).
queue_hourly = Table(
    "queue_hourly", metadata,
    *_queue_key(),
    Column("hour", BigInteger, primary_key=True, autoincrement=False),
    Column("slots", Integer, nullable=False),
    *(Column(status, Double) for status in HISTORY_STATUSES),
    Index("ix_queue_hourly_hour", "hour"),
)


# Per key and UTC day of queue_hourly: its hours and the mean of its hourly means, made once
# when the day is first read (a day's hours are complete by then; see day_shapes).
queue_days = Table(
    "queue_days", metadata,
    *_queue_key(),
    Column("day", BigInteger, primary_key=True, autoincrement=False),
    Column("hours", Integer, nullable=False),
    *(Column(status, Double) for status in SEASONAL_STATUSES),
    Index("ix_queue_days_day", "day"),
)


def record_history(engine: Engine, counts: QueueCounts, slot: datetime,
                   keep: timedelta, keep_hourly: timedelta = timedelta(0)) -> int:
    """This slot's counts per queue × prod_source × resource, and its clock hour's sums in
    queue_hourly; forget rows older than `keep` (`keep_hourly` for the hourly ones)."""
    when = epoch_seconds(slot)
    rows = {key: {"panda_queue": key[0], "prod_source": key[1], "resource": key[2],
                  "slot": when, **{s: by_status.get(s, 0.0) for s in HISTORY_STATUSES}}
            for key, (_, by_status) in counts.items()}
    with engine.begin() as conn:
        upsert(conn, queue_history, list(rows.values()),
               ["panda_queue", "prod_source", "resource", "slot"])
        conn.execute(delete(queue_history).where(
            queue_history.c.slot < epoch_seconds(slot - keep)))
        if keep_hourly:
            _record_hour(conn, when - when % 3600, epoch_seconds(slot - keep_hourly))
    return len(rows)


def _record_hour(conn: Connection, hour: int, forget_before: int) -> None:
    """The clock hour's slots and sums from queue_history: the hour's rows are replaced,
    so a re-run of a slot or a late cycle of the hour counts once."""
    history = queue_history.c
    _replace_sums(conn, queue_hourly, "hour", "slots", hour, history.slot, 3600,
                  {s: func.sum(history[s]) for s in HISTORY_STATUSES})
    conn.execute(delete(queue_hourly).where(queue_hourly.c.hour < forget_before))


def _replace_sums(conn: Connection, target: Table, when: str, count: str, start: int,
                  source_time: Column, width: int, values: dict) -> None:
    """Replace `target`'s rows at `start` by one row per queue key of the source rows in
    [start, start + width): their count and `values` (column -> aggregate), in SQL."""
    source = source_time.table.c
    keys = (source.panda_queue, source.prod_source, source.resource)
    conn.execute(delete(target).where(target.c[when] == start))
    conn.execute(target.insert().from_select(
        [*(c.name for c in keys), when, count, *values],
        select(*keys, literal(start, BigInteger), func.count(), *values.values())
        .where(source_time >= start, source_time < start + width).group_by(*keys)))


def day_shapes(engine: Engine, slot: datetime, days: int) -> Sequence[Any]:
    """Per key and each of the `days` whole UTC days before `slot`'s: hours with counts and
    the mean hourly mean over them (queue_days), and the slot's clock hour's slots and mean
    of that day, per SEASONAL_STATUSES. A day not yet in queue_days is summed from
    queue_hourly first (each day once: the first derive of the next day does it; a slot of
    an older day backfilled later does not change it); then one join reads one row per key
    and day, not the week of hours."""
    when = epoch_seconds(slot)
    today = when - when % 86400
    first = today - days * 86400
    d, h = queue_days.c, queue_hourly.c
    with engine.begin() as conn:
        done = set(conn.execute(select(d.day).distinct().where(d.day >= first, d.day < today))
                   .scalars())
        for day in range(first, today, 86400):
            if day not in done and conn.execute(select(h.hour).where(
                    h.hour >= day, h.hour < day + 86400).limit(1)).first():
                _record_day(conn, day)
        conn.execute(delete(queue_days).where(d.day < first - 86400))
    query = (select(d.panda_queue, d.prod_source, d.resource, d.day, d.hours, h.slots,
                    *(d[s] for s in SEASONAL_STATUSES),
                    *((h[s] / h.slots).label(f"{s}_at_hour") for s in SEASONAL_STATUSES))
             .select_from(queue_days.join(queue_hourly, (h.panda_queue == d.panda_queue)
                                          & (h.prod_source == d.prod_source)
                                          & (h.resource == d.resource)
                                          & (h.hour == d.day + (when % 86400 - when % 3600))))
             .where(d.day >= first, d.day < today))
    with engine.connect() as conn:
        return conn.execute(query).all()


def _record_day(conn: Connection, day: int) -> None:
    """One UTC day's hours per key and the mean of its hourly means, from queue_hourly."""
    h = queue_hourly.c
    _replace_sums(conn, queue_days, "day", "hours", day, h.hour, 86400,
                  {s: func.avg(h[s] / h.slots) for s in SEASONAL_STATUSES})


def history_buckets(engine: Engine, slot: datetime, hours: int) -> Sequence[Any]:
    """Per key, hourly counts, sums (HISTORY_STATUSES) and sums of squares (NOISE_STATUSES)
    over the `hours` before `slot` (bucket 0 = the last hour), and the slot itself as bucket
    -1: one aggregation query for every queue."""
    end = epoch_seconds(slot)
    bucket = ((end - 1 - queue_history.c.slot) // 3600).label("bucket")
    now = queue_history.c.slot == end
    bucket_or_now = case((now, -1), else_=bucket)
    query = (select(queue_history.c.panda_queue, queue_history.c.prod_source,
                    queue_history.c.resource, bucket_or_now.label("bucket"),
                    func.count().label("n"),
                    *(func.sum(queue_history.c[s]).label(s) for s in HISTORY_STATUSES),
                    *(func.sum(queue_history.c[s] * queue_history.c[s]).label(f"{s}_sq")
                      for s in NOISE_STATUSES))
             .where(queue_history.c.slot >= end - hours * 3600, queue_history.c.slot <= end)
             .group_by(queue_history.c.panda_queue, queue_history.c.prod_source,
                       queue_history.c.resource, bucket_or_now))
    with engine.connect() as conn:
        return conn.execute(query).all()


def daily_for(engine: Engine) -> datetime | None:
    """The day the 7d/30d averages in queue_stats were last computed for."""
    with engine.connect() as conn:
        return utc(conn.execute(select(func.max(queue_stats.c.daily_for))).scalar_one())
