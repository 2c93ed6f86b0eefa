"""The SQL state store: topology snapshot, current counts per queue, and the series seen.

`queues` is the CRIC snapshot in use; `queue_stats` holds one row per
panda_queue × prod_source × resource with the latest count of every PanDA job
status (the table the Suspicious sites dashboard reads); `series_seen` remembers
every series a source produced and when (and `series_shapes` what it is), so a series
that vanishes is written as an explicit 0 for a while instead of simply stopping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    delete,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)

from qmonit.core.model import (
    AVERAGE_WINDOWS,
    AVERAGED_STATUSES,
    HISTORY_STATUSES,
    NOISE_STATUSES,
    PANDA_JOB_STATUSES,
    RULES,
    SEASONAL_STATUSES,
)
from qmonit.core.sample import SLOT, Sample, epoch_seconds, from_epoch
from qmonit.stores.sql import upsert

QUEUE_COLUMNS = ("atlas_site", "cloud", "country", "tier", "queue_status", "site_state",
                 "queue_type", "resource_type", "pilot_manager", "harvester", "rc")

metadata = MetaData()

queues = Table(
    "queues", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("panda_resource", String(128)),
    *(Column(name, String(128)) for name in QUEUE_COLUMNS),
    Column("corecount", Integer),
    Column("corepower", Double),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
queue_stats = Table(
    "queue_stats", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("prod_source", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("atlas_site", String(128)),
    Column("cloud", String(64)),
    Column("queue_status", String(32)),
    Column("site_state", String(32)),
    *(Column(status, Double) for status in PANDA_JOB_STATUSES),
    Column("slot_time", DateTime(timezone=True), nullable=False),
    # written by the derive job: moving averages (NULL: insufficient coverage), flags
    *(Column(f"{status}_avg_{window}", Double) for status in AVERAGED_STATUSES
      for window in AVERAGE_WINDOWS),
    *(Column(f"coverage_{window}", Double) for window in AVERAGE_WINDOWS),
    *(Column(f"{rule}_flag", String(16)) for rule in RULES),
    Column("flag_reason", Text),
    Column("derived_at", DateTime(timezone=True)),
    Column("daily_for", DateTime(timezone=True)),  # the day the 7d/30d averages are for
)
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
# Downsampling progress: the end of the last window rolled up, per measurement and policy.
watermarks = Table(
    "watermarks", metadata,
    Column("measurement", String(64), primary_key=True),
    Column("resolution", String(8), primary_key=True),
    Column("done_until", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# Suspicious-site flags: the hysteresis of every flag open or recently violated, and one
# alert row per time a flag opened (when, why, when it closed, when the crew was told).
KEY_COLUMNS = ("panda_queue", "prod_source", "resource", "rule")


def _flag_key(primary_key: bool) -> list[Column]:
    """The columns that name a flag: new Column objects for each table."""
    return [Column(name, String(length), primary_key=primary_key, nullable=False)
            for name, length in zip(KEY_COLUMNS, (128, 64, 64, 16), strict=True)]


flag_state = Table(
    "flag_state", metadata,
    *_flag_key(primary_key=True),
    Column("history", String(64), nullable=False),
    Column("is_open", Boolean, nullable=False),
    Column("last_slot", DateTime(timezone=True), nullable=False),
    Column("history_before", String(64), nullable=False),
    Column("open_before", Boolean, nullable=False),
)
alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_flag_key(primary_key=False),
    Column("severity", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("current", Double),
    Column("baseline", Double),
    Column("score", Double),
    Column("metric", String(64)),  # what current and baseline measure ("running jobs")
    Column("layer", String(32)),  # the layer likely at fault (derive.layers) and why
    Column("layer_evidence", Text),
    # open (violated at as_of), recovering (open, its last judged cycle clean), unjudged
    # (open, its source stale: not judged since as_of), closed
    Column("status", String(16)),
    Column("as_of", DateTime(timezone=True)),  # the slot current and baseline are from
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_notified_at", DateTime(timezone=True)),
    Column("notified_open", Boolean, nullable=False, default=False),
    Column("notified_close", Boolean, nullable=False, default=False),
    UniqueConstraint("panda_queue", "prod_source", "resource", "rule", "opened_at",
                     name="uq_alerts_flag_opened"),
)
series_seen = Table(
    "series_seen", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String(64), nullable=False, index=True),
    Column("first_seen", BigInteger, nullable=False),
    # no index on last_seen: every cycle moves it on all of a source's series (52,000 rows
    # at ATLAS scale), and each query reads one source's rows through its own index anyway
    Column("last_seen", BigInteger, nullable=False),
)
# What a series is, for writing its zeros: apart from series_seen, whose every present row
# each cycle rewrites (with the ~330 bytes of tags beside them, 52,000 updates at ATLAS
# scale cost 3-4 times as much); written once, read only for the series that vanished.
series_shapes = Table(
    "series_shapes", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("measurement", String(64), nullable=False),
    Column("tags", Text, nullable=False),
    Column("fields", Text, nullable=False),
)
SHAPE_COLUMNS = ("measurement", "tags", "fields")  # in series_seen before series_shapes
UNUSED_INDEXES = {"series_seen": "ix_series_seen_last_seen"}  # made by versions before


ID_CHUNK = 5000
FORGET_AFTER = timedelta(days=7)  # beyond the zero-fill horizon, a series is forgotten


@dataclass(frozen=True)
class SeenSeries:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[str, ...]


def missing_tables(engine: Engine) -> list[str]:
    """The state tables `qmonit init` has not created yet (raises SQLAlchemyError)."""
    present = set(inspect(engine).get_table_names())
    return [table.name for table in metadata.sorted_tables if table.name not in present]


def missing_columns(engine: Engine) -> list[str]:
    """`table.column` of the columns a newer qmonit added to tables that exist, and the
    columns it moved out of them (`series_seen`'s shapes, into series_shapes)."""
    inspector = inspect(engine)
    present_tables = set(inspector.get_table_names())
    missing = []
    for table in metadata.sorted_tables:
        if table.name not in present_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns
                    if c.name not in present and c.nullable]
        if table is series_seen and "tags" in present:
            missing.append("series_seen's shapes (moved to series_shapes)")
    return missing


def create_tables(engine: Engine) -> list[str]:
    """Create missing tables, add columns a newer qmonit defines to existing ones, drop the
    indexes it no longer uses; returns what it changed."""
    metadata.create_all(engine)
    added = []
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table, index in UNUSED_INDEXES.items():
            if any(i["name"] == index for i in inspector.get_indexes(table)):
                on = "" if conn.dialect.name == "sqlite" else f" ON {table}"
                conn.execute(text(f"DROP INDEX {index}{on}"))
                added.append(f"{table}: unused index {index} dropped")
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
                    added.append(f"{table.name}.{column.name}")
            if table is series_seen and "tags" in present:
                added.append(_move_shapes(conn))
    return added


def _move_shapes(conn: Connection) -> str:
    """series_seen of an older qmonit held each series' shape: into series_shapes, once."""
    moved = conn.execute(text(
        f"INSERT INTO series_shapes (series_id, {', '.join(SHAPE_COLUMNS)}) SELECT series_id, "
        f"{', '.join(SHAPE_COLUMNS)} FROM series_seen")).rowcount
    for column in SHAPE_COLUMNS:  # SQLite 3.35 and later, MariaDB: in place
        conn.execute(text(f"ALTER TABLE series_seen DROP COLUMN {column}"))
    return f"series_seen: the shapes of {moved} series moved to series_shapes"


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield list(ids[start : start + ID_CHUNK])


def seen_and_vanished(engine: Engine, source: str, present: Mapping[int, Sample],
                      slot: datetime, horizon: timedelta) -> list[SeenSeries]:
    """Record that the `present` series of `source` reported at `slot`, and return the
    series seen within `horizon` before `slot` (and not first seen after it) that are
    absent from it: the series to write as zeros. Long-gone series are forgotten.

    A slot newer than every one recorded (each cycle in turn) costs one bulk update and
    reads back only what vanished, however many series the source has; an older slot or a
    re-run (a backfill) compares every series the source has, as it must."""
    now = epoch_seconds(slot)
    with engine.begin() as conn:
        newest = conn.execute(select(func.max(series_seen.c.last_seen))
                              .where(series_seen.c.source == source)).scalar_one()
        if newest is not None and newest < now:
            vanished = _next_slot(conn, source, present, now, epoch_seconds(slot - horizon))
        else:
            vanished = _any_slot(conn, source, present, now, epoch_seconds(slot - horizon))
        forgotten = conn.execute(delete(series_seen).where(
            series_seen.c.source == source,
            series_seen.c.last_seen < epoch_seconds(slot - horizon - FORGET_AFTER))).rowcount
        if forgotten:
            conn.execute(delete(series_shapes).where(series_shapes.c.series_id.not_in(
                select(series_seen.c.series_id))))
        return _shapes(conn, source, vanished)


def _next_slot(conn: Connection, source: str, present: Mapping[int, Sample], now: int,
               since: int) -> list[int]:
    new = []
    for chunk in _chunks(list(present)):
        # the ids are our own 64-bit integers: written into the statement, they spare
        # SQLAlchemy compiling 5,000 bound parameters per chunk (most of the cost)
        ids = ",".join(map(str, map(int, chunk)))
        updated = conn.exec_driver_sql(f"UPDATE series_seen SET last_seen = {int(now)} WHERE "
                                       f"series_id IN ({ids})").rowcount
        if updated != len(chunk):  # some are new: which
            known = set(conn.exec_driver_sql(
                f"SELECT series_id FROM series_seen WHERE series_id IN ({ids})").scalars())
            new.extend(sid for sid in chunk if sid not in known)
    _insert_new(conn, source, present, new, now)
    return conn.execute(select(series_seen.c.series_id).where(
        series_seen.c.source == source, series_seen.c.last_seen >= since,
        series_seen.c.last_seen < now)).scalars().all()


def _any_slot(conn: Connection, source: str, present: Mapping[int, Sample], now: int,
              since: int) -> list[int]:
    recent = []
    known = set()
    for sid, last_seen, first_seen in conn.execute(
            select(series_seen.c.series_id, series_seen.c.last_seen, series_seen.c.first_seen)
            .where(series_seen.c.source == source)):
        known.add(sid)
        if last_seen >= since and first_seen <= now and sid not in present:
            recent.append(sid)
    _insert_new(conn, source, present, [sid for sid in present if sid not in known], now)
    for chunk in _chunks([sid for sid in present if sid in known]):
        ids = ",".join(map(str, map(int, chunk)))  # never moved backwards:
        conn.exec_driver_sql(f"UPDATE series_seen SET last_seen = {int(now)} WHERE "
                             f"series_id IN ({ids}) AND last_seen < {int(now)}")
        conn.exec_driver_sql(f"UPDATE series_seen SET first_seen = {int(now)} WHERE "
                             f"series_id IN ({ids}) AND first_seen > {int(now)}")
    return recent


def _insert_new(conn: Connection, source: str, present: Mapping[int, Sample],
                new: Sequence[int], now: int) -> None:
    upsert(conn, series_seen, [{"series_id": sid, "source": source, "first_seen": now,
                                "last_seen": now} for sid in new], ["series_id"])
    shapes = [{"series_id": sid, "measurement": present[sid].measurement,
               "tags": json.dumps(present[sid].tags),
               "fields": json.dumps([k for k, _ in present[sid].fields])} for sid in new]
    upsert(conn, series_shapes, shapes, ["series_id"])
    known = _known_shapes(conn).known
    for sid in new:  # a series forgotten and back may carry other fields now
        known.pop(sid, None)


# The shapes this process read, per engine (a test's database is not another's): a series
# vanished is written as zeros every cycle of the 48 h horizon (~31,000 of them at ATLAS
# scale), and its shape, fixed by its id, need not be read again each time. Kept from a
# source's second cycle in the process on (the daemon, the demo; a cron run collects once,
# and would only pay the memory), only for the vanished, and bounded: past SHAPES_KEPT, only
# the shapes of the cycle's own vanished series stay (the next cycle asks for nearly the same:
# clearing all of them made every other ATLAS cycle read 31,000 rows again). An entry is
# ~0.4 kB: its tag pairs are shared with every other entry holding them (_tag_pairs).
@dataclass
class _ShapeMemory:
    known: dict[int, SeenSeries] = field(default_factory=dict)
    sources: set[str] = field(default_factory=set)  # those that had a cycle here already


_SHAPES: WeakKeyDictionary[Engine, _ShapeMemory] = WeakKeyDictionary()
SHAPES_KEPT = 65_536


def _known_shapes(conn: Connection) -> _ShapeMemory:
    return _SHAPES.setdefault(conn.engine, _ShapeMemory())


def _shapes(conn: Connection, source: str, ids: Sequence[int]) -> list[SeenSeries]:
    """The measurement, tags and fields of these series (the vanished: a few percent of a
    grid's series, but ~31,000 a cycle at ATLAS scale)."""
    memory = _known_shapes(conn)
    known = memory.known
    found: dict[int, SeenSeries] = {}
    missing = []
    for sid in ids:
        shape = known.get(sid)
        if shape is None:
            missing.append(sid)
        else:
            found[sid] = shape
    for chunk in _chunks(missing):
        rows = conn.exec_driver_sql(  # our own integers, written in: see _next_slot
            "SELECT series_id, measurement, tags, fields FROM series_shapes WHERE series_id "
            f"IN ({','.join(map(str, map(int, chunk)))})").all()
        for sid, measurement, tags, fields in rows:
            found[sid] = SeenSeries(measurement, _tag_pairs(tags), _field_names(fields))
    if source in memory.sources and missing:
        if len(known) + len(missing) > SHAPES_KEPT:
            known.clear()  # what this cycle asked for is what the next one asks for again
            known.update(islice(found.items(), SHAPES_KEPT))
        else:
            known.update((sid, found[sid]) for sid in missing if sid in found)
    memory.sources.add(source)
    return [found[sid] for sid in ids if sid in found]


# A shape's tags as pairs shared by every shape holding them (there are a few thousand
# distinct pairs at ATLAS scale, against ~9 a series of ~31,000 shapes kept), bounded.
_PAIRS: dict[tuple[str, str], tuple[str, str]] = {}
PAIRS_KEPT = 262_144


def _tag_pairs(text: str) -> tuple[tuple[str, str], ...]:
    if len(_PAIRS) > PAIRS_KEPT:
        _PAIRS.clear()
    pairs = map(tuple, json.loads(text))
    return tuple([_PAIRS.setdefault(pair, pair) for pair in pairs])


@lru_cache(maxsize=4096)
def _field_names(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def upsert_queues(engine: Engine, rows: Sequence[dict]) -> None:
    with engine.begin() as conn:
        upsert(conn, queues, list(rows), ["panda_queue"])


def newest_slot(engine: Engine, now: datetime | None = None) -> datetime | None:
    """The slot the current-state tables describe (None when empty). Rows of slots that have
    not begun yet (a clock or an --at once set in the future) are passed over: they must
    not keep the present from updating the state."""
    begun = (now or datetime.now(UTC)) + SLOT
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(queue_stats.c.slot_time))
                              .where(queue_stats.c.slot_time < begun.replace(tzinfo=None))
                              ).scalar_one()
    return utc(newest)


QueueCounts = dict[tuple[str, str, str], tuple[dict[str, str], dict[str, float]]]


def counts_per_queue(job_samples: Sequence[Sample]) -> QueueCounts:
    """One pass over `jobs` samples: per panda_queue × prod_source × resource, the tags of its
    first sample and the jobs of every status summed (topology variants included)."""
    out: QueueCounts = {}
    for sample in job_samples:
        tags = dict(sample.tags)
        key = (tags["panda_queue"], tags["prod_source"], tags["resource"])
        if key not in out:
            out[key] = (tags, {})
        counts = out[key][1]
        status = tags["job_status"]
        counts[status] = counts.get(status, 0.0) + float(dict(sample.fields)["jobs"])
    return out


def upsert_queue_stats(engine: Engine, counts: QueueCounts, slot: datetime) -> int:
    """Current count of every job status per queue × prod_source × resource; absent = 0."""
    rows = [{"panda_queue": key[0], "prod_source": key[1], "resource": key[2],
             "atlas_site": tags.get("atlas_site"), "cloud": tags.get("cloud"),
             "queue_status": tags.get("queue_status"), "site_state": tags.get("site_state"),
             "slot_time": slot,
             **{status: by_status.get(status, 0.0) for status in PANDA_JOB_STATUSES}}
            for key, (tags, by_status) in counts.items()]
    with engine.begin() as conn:
        upsert(conn, queue_stats, rows, ["panda_queue", "prod_source", "resource"])
    return len(rows)


def queue_topology(engine: Engine) -> dict[str, dict[str, str]]:
    """queue_status, site_state, atlas_site, cloud, tier, pilot_manager and harvester (the
    instance) of every queue, by CRIC name and by panda_resource."""
    out: dict[str, dict[str, str]] = {}
    names = ("queue_status", "site_state", "atlas_site", "cloud", "tier", "pilot_manager",
             "harvester")
    with engine.connect() as conn:
        for row in conn.execute(select(queues.c.panda_queue, queues.c.panda_resource,
                                       *(queues.c[name] for name in names))):
            where = {name: getattr(row, name) for name in names}
            if row.panda_resource:
                out.setdefault(row.panda_resource, where)
            out[row.panda_queue] = where
    return out


def update_derived(engine: Engine, rows: Sequence[dict]) -> None:
    """Moving averages, coverage and flags into queue_stats (the counts are collect's)."""
    with engine.begin() as conn:
        upsert(conn, queue_stats, list(rows), ["panda_queue", "prod_source", "resource"])


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


def day_shapes(engine: Engine, slot: datetime, days: int) -> list:
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


def history_buckets(engine: Engine, slot: datetime, hours: int) -> list:
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


def utc(moment: datetime | None) -> datetime | None:
    """SQLite and MySQL hand back naive datetimes; they are UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def watermark(engine: Engine, measurement: str, resolution: str) -> datetime | None:
    with engine.connect() as conn:
        done = conn.execute(select(watermarks.c.done_until).where(
            watermarks.c.measurement == measurement,
            watermarks.c.resolution == resolution)).scalar_one_or_none()
    return None if done is None else from_epoch(done)


def set_watermark(engine: Engine, measurement: str, resolution: str, done_until: datetime,
                  now: datetime) -> None:
    with engine.begin() as conn:
        upsert(conn, watermarks, [{"measurement": measurement, "resolution": resolution,
                                   "done_until": epoch_seconds(done_until), "updated_at": now}],
               ["measurement", "resolution"])


def rewind_watermarks(engine: Engine, late: datetime, widths: Mapping[str, int]) -> None:
    """Points older than a watermark arrived late (a replayed spool): roll their windows up
    again. widths: resolution -> window width in seconds."""
    with engine.begin() as conn:
        for resolution, width in widths.items():
            window_start = epoch_seconds(late) // width * width
            conn.execute(update(watermarks).where(watermarks.c.resolution == resolution,
                                                  watermarks.c.done_until > window_start)
                         .values(done_until=window_start))


# The job-level tables live in their own module but belong to `metadata` too, so that
# create_tables and `qmonit check` see every table whoever imported this module.
from qmonit.stores.state import batch as batch_tables  # noqa: E402, F401
from qmonit.stores.state import lease  # noqa: E402, F401
from qmonit.stores.state import status as status_tables  # noqa: E402, F401
