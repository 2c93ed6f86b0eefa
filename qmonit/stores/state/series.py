"""Zero-fill's memory: every series a source produced and when (`series_seen`) and what it
is (`series_shapes`), so a series that vanishes is written as an explicit 0 for a while
instead of simply stopping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import islice
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    text,
)

from qmonit.core.sample import Sample, epoch_seconds
from qmonit.stores.sql import upsert
from qmonit.stores.state.metadata import metadata

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


def move_shapes(conn: Connection) -> str:
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
    new: list[int] = []
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
    return list(conn.execute(select(series_seen.c.series_id).where(
        series_seen.c.source == source, series_seen.c.last_seen >= since,
        series_seen.c.last_seen < now)).scalars().all())


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
