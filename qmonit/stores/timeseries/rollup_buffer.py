"""The roll-up buffer: the raw values of the hours not yet rolled up, kept beside the store.

Reading one hour of an ATLAS-scale grid back out of InfluxDB 1.6 takes 30-40 s (52,000
series, one iterator each in the server); the hourly job reads it from here in well under
a second. Every "10m" write qmonit makes passes through it (DurableWriter), so for the
hours it covers it holds what the store holds, and its means and maxima are the ones the
store would give (the tests compare both paths on the same expected values).

It is a cache, never the truth. The hourly job reads a window from the store instead when
the buffer cannot vouch for it:
- the window began before `complete_from`: the buffer was (re)created during or after it,
  or the hour was pruned ([downsample] buffer_hours) because the hourly job did not run;
- the measurement's window was rolled up already (`done_before`): a re-run, a backfill
  with --since, or late points replayed from the spool;
- a slot of the window is tainted: the store rejected points qmonit wrote, or the spool
  was full, so the store does not hold what the buffer does; or a write into it never
  finished (the run was killed between the store and the buffer); or a series changed its
  fields within the hour (InfluxDB gives each field one mean over both field sets).
A buffer that fails (disk full, damaged file) is deleted and starts afresh at the next
full hour; the store covers the gap. It assumes one qmonit installation writes the
database: where two do, each must set `[downsample] buffer = false`.

What it computes is qmonit/core/rollup_spec.py's: each statistic of the spec is its SQL
aggregate over a series' points of the hour, and each level's group totals are a GROUP BY.

Layout: one table of points, one of series and one of level groups per hour, so that an
hour is dropped in a few statements once every measurement in it is rolled up. A point row
holds up to twelve numeric fields of one sample (v0..v11, named in its series row), keyed
(key, time), so the hourly aggregation streams through the key and sums each series in
time order, as InfluxDB does. A series row names, per level, the id of its group; the
group's (tag, value) pairs are kept once per hour as JSON (`[["cloud","DE"],...]`); a
buffer of a version that kept them as Python repr() text has them rebuilt from its series
rows once, when it is opened (its hours are the only quick copy of their windows: converted,
not dropped). The standard library's sqlite3 is used directly: a local cache file written
~52,000 rows per cycle, where SQLAlchemy's per-row overhead would double the
cost. A write fills it in a thread while the store takes the same points.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path

from qmonit.core.levels import Aggregator, Level
from qmonit.core.rollup_spec import ROLLUP, RollupSpec
from qmonit.core.sample import Sample, epoch_seconds, stable_id
from qmonit.stores.timeseries.lineprotocol import field_key, series_head, split_head, unescape_key

log = logging.getLogger(__name__)

HOUR_S = 3600
FILE_NAME = "rollup-buffer.sqlite"
WIDTH = 12  # numeric fields per row; a sample with more takes several rows
GROUPS_JSON = 2  # meta "groups": the hours' groups are JSON (absent: repr() text, before)


class RollupBuffer:
    def __init__(self, path: Path, keep_hours: int, spec: RollupSpec = ROLLUP):
        self.path = Path(path)
        self.keep_s = keep_hours * HOUR_S
        self.spec = spec
        # the levels a series row names its group of, summed by a GROUP BY at roll-up time
        self.grouped = tuple(level.measurement for level in spec.levels if level.above is None)
        self._conn: sqlite3.Connection | None = None
        self._pruned_for: int | None = None  # the newest hour the old hours were pruned for
        self._levels = Aggregator(spec.levels)  # only the level groups of a series are used
        # a group's (tag, value) pairs -> its id and its JSON text
        self._group_ids: dict[tuple, tuple[int, str]] = {}

    # -- the connection ----------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)  # one user at a time
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a lost commit would make a wrong mean
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
            conn.execute("CREATE TABLE IF NOT EXISTS hours (hour INTEGER, measurement TEXT, "
                         "width INTEGER, PRIMARY KEY (hour, measurement)) WITHOUT ROWID")
            conn.execute("CREATE TABLE IF NOT EXISTS taint (measurement TEXT, time INTEGER, "
                         "PRIMARY KEY (measurement, time)) WITHOUT ROWID")
            conn.execute("CREATE TABLE IF NOT EXISTS pending (measurement TEXT, time INTEGER, "
                         "write INTEGER, PRIMARY KEY (measurement, time, write)) WITHOUT ROWID")
            self._conn = conn
            self._groups_to_json()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _meta(self, key: str) -> int | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: int) -> None:
        self._db().execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                           "value = max(value, excluded.value)", (key, value))

    def _groups_to_json(self) -> None:
        """Once per buffer file: the groups of hours written by a version that kept them as
        repr() text, rebuilt as JSON from the series rows (a group is what its series' tags
        give for its level) under the ids the JSON gives them, as this version writes them."""
        if self._meta("groups") == GROUPS_JSON:
            return
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            hours = []
            if self._meta("groups") != GROUPS_JSON:  # another process may have done it
                hours = [int(name[len("groups_"):]) for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB "
                    "'groups_[0-9]*'")]
                for hour in hours:
                    self._regroup(hour)
                self._set_meta("groups", GROUPS_JSON)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if hours:
            log.info("roll-up buffer %s: the level groups of %d hour(s) converted from repr() "
                     "text to JSON", self.path, len(hours))

    def _regroup(self, hour: int) -> None:
        """One hour's groups rebuilt as JSON, its series rows pointed at their new ids (a
        column of a level this version does not group is emptied)."""
        db = self._db()
        grouped = self._grouped(hour)
        new_ids: dict[int, int] = {}  # the old id -> the new one
        texts: dict[int, str] = {}  # the new id -> the group's JSON
        columns = "".join(f", g_{name}" for name in grouped)
        for head, *old_ids in db.execute(f"SELECT head{columns} FROM series_{hour}"):
            measurement, tags = split_head(head)
            for level, group in self._levels.groups(measurement, tags):
                if level.measurement in grouped:
                    old = old_ids[grouped.index(level.measurement)]
                    new_ids[old], text = self._group_id(group)
                    texts[new_ids[old]] = text
        db.execute("CREATE TEMP TABLE IF NOT EXISTS regroup (old INTEGER PRIMARY KEY, "
                   "new INTEGER)")
        db.execute("DELETE FROM temp.regroup")
        db.executemany("INSERT INTO temp.regroup VALUES (?, ?)", new_ids.items())
        for name in grouped:
            db.execute(f"UPDATE series_{hour} SET g_{name} = (SELECT new FROM temp.regroup "
                       f"WHERE old = g_{name}) WHERE g_{name} IS NOT NULL")
        db.execute(f"DELETE FROM groups_{hour}")
        db.executemany(f"INSERT INTO groups_{hour} VALUES (?, ?)", texts.items())

    def _group_id(self, group: tuple[tuple[str, str], ...]) -> tuple[int, str]:
        """A level group's id in every hour's tables, and its JSON text."""
        known = self._group_ids.get(group)
        if known is None:
            text = json.dumps(group, separators=(",", ":"))
            known = self._group_ids[group] = (stable_id(text), text)
        return known

    def _failed(self, action: str, exc: Exception) -> None:
        """Throw the buffer away: from the next full hour on it is complete again."""
        self.close()
        for path in self._files():
            path.unlink(missing_ok=True)
        log.warning("roll-up buffer %s: %s failed (%s); removed, the hourly job reads the "
                    "store until the buffer is complete again", self.path, action, exc)

    # -- writing (every "10m" write) ---------------------------------------------------------

    def begin(self, samples: Sequence[Sample]) -> int | None:
        """Mark these samples' slots pending until finish(): a run killed before then leaves
        the mark, and their windows are read from the store. Returns the write's id."""
        slots = _slots(samples, self.spec.derived)
        if not slots:
            return None
        write = secrets.randbits(62)
        try:
            self._db().executemany("INSERT OR IGNORE INTO pending VALUES (?, ?, ?)",
                                   [(m, t, write) for m, t in slots])
        except (sqlite3.Error, OSError) as exc:
            self._failed("marking a write pending", exc)
            return None
        return write

    def finish(self, write: int) -> None:
        """The store (or the spool) and the buffer both hold the write begun as `write`."""
        try:
            self._db().execute("DELETE FROM pending WHERE write = ?", (write,))
        except (sqlite3.Error, OSError) as exc:
            self._failed("clearing a finished write", exc)

    def add(self, samples: Sequence[Sample]) -> None:
        """Keep the numeric fields of these samples; never raises."""
        if not samples:
            return
        try:
            self._add(samples)
        except (sqlite3.Error, OSError) as exc:
            self._failed("a write", exc)
        except ValueError as exc:  # the store rejects it too; the writer taints its window
            log.warning("roll-up buffer %s: a write skipped: %s", self.path, exc)

    def _add(self, samples: Sequence[Sample]) -> None:
        db = self._db()
        by_hour: dict[int, tuple[dict, dict, dict]] = {}  # points by width, series, widths
        plans: dict[tuple, tuple] = {}  # field names -> _plan of them
        seconds: dict[datetime, int] = {}
        derived = self.spec.derived
        for sample in samples:
            measurement, tags, fields, time = sample
            if measurement in derived:  # levels are summed from the rolled-up series
                continue
            when = seconds.get(time)
            if when is None:
                when = seconds[time] = epoch_seconds(time)
            hour = when - when % HOUR_S
            held = by_hour.get(hour)
            if held is None:
                held = by_hour[hour] = ({}, {}, {})
            points, series, widths = held
            names = tuple(map(_first, fields))
            values = tuple(map(_second, fields))
            plan = plans.get(names)
            if plan is None:
                plan = plans[names] = _plan(names)
            chunks, width = plan
            if str in set(map(type, values)):  # a text field: skipped, its numbers kept
                names = tuple(n for n, v in zip(names, values, strict=True)
                              if v.__class__ is not str)
                if not names:
                    continue
                chunks, width = _plan(names)
                values = tuple(v for v in values if v.__class__ is not str)
            if widths.get(measurement, 0) < width:
                widths[measurement] = width
            # control characters are refused in names (make_sample), so the separators
            # make the text unambiguous; it is ~7 times cheaper than repr(tags)
            series_text = "\x1e".join([measurement, *chain.from_iterable(tags)]) + "\x1f"
            for names_text, first, chunk_names in chunks:
                key = stable_id(series_text + names_text)
                series[key] = (sample, first // WIDTH, chunk_names)
                chunk = values[first:first + WIDTH] if first or len(values) > WIDTH else values
                points.setdefault(len(chunk), []).append((key, when, measurement, *chunk))
        if not by_hour:
            return
        first = min(by_hour)
        db.execute("BEGIN IMMEDIATE")
        try:
            if self._meta("complete_from") is None:  # a new buffer: complete from the next hour
                self._set_meta("complete_from", first + HOUR_S)
            for hour, (points_by_width, series, widths) in sorted(by_hour.items()):
                known, grouped = self._series_of(hour)  # afresh: another job may drop the hour
                fresh, groups = self._series_rows(series, known, grouped)
                before = db.total_changes
                db.executemany(f"INSERT OR IGNORE INTO series_{hour} VALUES "
                               f"({', '.join('?' * (4 + len(grouped)))})", fresh)
                if db.total_changes - before < len(fresh):
                    self._taint_changed_fields(hour, fresh, series)
                db.executemany(f"INSERT OR IGNORE INTO groups_{hour} VALUES (?, ?)",
                               groups.items())
                for width, points in points_by_width.items():
                    points.sort()  # in key order: the cheapest way into the table
                    columns = ", ".join(f"v{n}" for n in range(width))
                    db.executemany(f"INSERT OR REPLACE INTO points_{hour} (key, time, "
                                   f"measurement, {columns}) VALUES "
                                   f"({', '.join('?' * (3 + width))})", points)
                db.executemany("INSERT INTO hours VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                               "SET width = max(width, excluded.width)",
                               [(hour, m, width) for m, width in widths.items()])
            newest = max(by_hour)
            if self._pruned_for is None or newest > self._pruned_for:
                self._prune_older_than(newest - self.keep_s)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._pruned_for = max(newest, self._pruned_for or newest)

    def _series_of(self, hour: int) -> tuple[set[int], list[str]]:
        """Create the hour's tables if needed; the keys already in it and the levels whose
        group each series row names (an hour begun by an older version may lack some)."""
        db = self._db()
        groups = ", ".join(f"g_{level} INTEGER" for level in self.grouped)
        db.execute(f"CREATE TABLE IF NOT EXISTS series_{hour} (key INTEGER PRIMARY KEY, "
                   f"head TEXT, chunk INTEGER, names TEXT, {groups}, UNIQUE (head, chunk))")
        db.execute(f"CREATE TABLE IF NOT EXISTS groups_{hour} (id INTEGER PRIMARY KEY, "
                   "grp TEXT)")
        values = ", ".join(f"v{n} REAL" for n in range(WIDTH))
        db.execute(f"CREATE TABLE IF NOT EXISTS points_{hour} (time INTEGER, key INTEGER, "
                   f"measurement TEXT, {values}, PRIMARY KEY (key, time)) WITHOUT ROWID")
        return ({row[0] for row in db.execute(f"SELECT key FROM series_{hour}")},
                self._grouped(hour))

    def _grouped(self, hour: int) -> list[str]:
        """The levels the hour's series rows name their group of, in column order."""
        return [row[1][2:] for row in self._db().execute(f"PRAGMA table_info(series_{hour})")
                if row[1].startswith("g_")]

    def _series_rows(self, series: dict[int, tuple[Sample, int, tuple[str, ...]]],
                     known: set[int], grouped: list[str]
                     ) -> tuple[list[tuple], dict[int, str]]:
        """Rows for the keys new in the hour: the line's head, the chunk of fields, their
        escaped names, and per level of `grouped` the series' group in it (None where it is
        not summed into that level): its id; and the JSON of each group they name, by id
        (the hour's groups table). Raises ValueError for a sample line protocol cannot
        carry."""
        rows: list[tuple] = []
        texts: dict[int, str] = {}
        for key, (sample, chunk, names) in series.items():
            if key in known:
                continue
            groups = dict.fromkeys(grouped)
            for level, group in self._levels.groups(sample.measurement, sample.tags):
                if level.measurement in groups:
                    group_id, texts[group_id] = self._group_id(group)
                    groups[level.measurement] = group_id
            rows.append((key, series_head(sample.measurement, sample.tags), chunk,
                         json.dumps([field_key(name) for name in names]), *groups.values()))
        return rows, texts

    def _taint_changed_fields(self, hour: int, fresh: list[tuple], series: dict) -> None:
        """A series whose field set changed within the hour has two keys for one (head,
        chunk): InfluxDB gives each field one mean over both, so the store must be read."""
        db = self._db()
        for key, head, chunk, *_ in fresh:
            holder = db.execute(f"SELECT key FROM series_{hour} WHERE head = ? AND chunk = ?",
                                (head, chunk)).fetchone()
            if holder and holder[0] != key:
                sample = series[key][0]
                log.info("roll-up buffer: %s changed its fields at %s UTC; that hour of %s is "
                         "rolled up from the store", head, f"{sample.time:%Y-%m-%d %H:%M}",
                         sample.measurement)
                db.execute("INSERT OR IGNORE INTO taint VALUES (?, ?)",
                           (sample.measurement, epoch_seconds(sample.time)))

    def taint(self, samples: Iterable[Sample]) -> None:
        """The store does not hold these samples (rejected, lost): their windows read the store."""
        slots = _slots(samples, self.spec.derived)
        if not slots:
            return
        try:
            self._db().executemany("INSERT OR IGNORE INTO taint VALUES (?, ?)", slots)
        except (sqlite3.Error, OSError) as exc:
            self._failed("marking points the store does not hold", exc)

    # -- the hourly job ----------------------------------------------------------------------

    def covers(self, measurement: str, start: datetime, end: datetime) -> bool:
        """Whether the buffer holds everything qmonit wrote of `measurement` in [start, end)."""
        first, last = epoch_seconds(start), epoch_seconds(end)
        if not self.path.exists() or last - first != HOUR_S or first % HOUR_S:
            return False
        try:
            complete_from = self._meta("complete_from")
            done_before = self._meta(f"done_before:{measurement}")
            window = (measurement, first, last)
            tainted = self._db().execute(
                "SELECT 1 FROM taint WHERE measurement = ? AND time >= ? AND time < ? UNION ALL "
                "SELECT 1 FROM pending WHERE measurement = ? AND time >= ? AND time < ? LIMIT 1",
                window + window).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._failed("a read", exc)
            return False
        return (complete_from is not None and complete_from <= first and not tainted
                and (done_before is None or done_before <= first))

    def rollup_lines(self, measurement: str, start: datetime, levels: Aggregator | None = None,
                     spec: RollupSpec | None = None) -> Iterator[str]:
        """The hour's roll-up points in line protocol, made while they are read: the spec's
        statistics (the buffer's own unless given) of every numeric field per series, at
        `start`; their totals per level group added to `levels` (a GROUP BY here, before the
        first line, for all but levels with a threshold). Raises sqlite3.Error before the
        first line; the store is read instead.

        SQLite's avg() is total / count, as InfluxDB's mean() computes it, in IEEE doubles
        summed in time order; numbers are written as the encoder writes them (repr): they
        round-trip.
        """
        spec = spec or self.spec
        hour = epoch_seconds(start)
        db = self._db()
        width = db.execute("SELECT width FROM hours WHERE hour = ? AND measurement = ?",
                           (hour, measurement)).fetchone()
        if not width or not width[0]:
            return iter(())
        width = width[0]
        grouped = self._grouped(hour)
        columns = _stat_columns(width, spec)
        stats = ", ".join(f"{statistic.sql}(v{n}) {column}" for (n, statistic), column
                          in zip(_field_statistics(width, spec), columns, strict=True))
        db.execute("DROP TABLE IF EXISTS temp.rollup")  # the last window's, read to its end
        db.execute(f"CREATE TEMP TABLE rollup AS SELECT s.names, a.*"
                   f"{''.join(f', s.g_{level}' for level in grouped)} FROM (SELECT key, {stats} "
                   f"FROM points_{hour} WHERE measurement = ? GROUP BY key) a "
                   f"JOIN series_{hour} s ON s.key = a.key", (measurement,))
        in_python = []
        if levels is not None:
            in_python = self._sum_levels(measurement, hour, columns, grouped, levels, start,
                                         spec)
        values = ", ".join(f"r.{column}" for column in columns)
        rows = db.execute(f"SELECT s.head, s.names, r.key, {values} FROM temp.rollup r "
                          f"JOIN series_{hour} s ON s.key = r.key")
        if not in_python:
            return _lines(rows, f" {hour}", spec)
        return _lines(rows, f" {hour}", spec, levels, start, Aggregator(in_python))

    def _sum_levels(self, measurement: str, hour: int, columns: list[str], grouped: list[str],
                    levels: Aggregator, start: datetime, spec: RollupSpec) -> list[Level]:
        """Total the window's series (temp.rollup) per level group in SQL; returns the levels
        left to sum in Python: those with a threshold, and those an hour begun by an older
        version has no group column for."""
        totals = ", ".join(f"{spec.level_total}({column})" for column in columns)
        names_of: dict[str, list[str]] = {}
        in_python = []
        for level in spec.levels_of(measurement):
            if level.measurement not in grouped:
                in_python.append(level)
                continue
            column = f"g_{level.measurement}"
            for group, _, names, *values in self._db().execute(
                    f"SELECT g.grp, r.* FROM (SELECT {column} id, names, {totals} "
                    f"FROM temp.rollup WHERE {column} IS NOT NULL GROUP BY {column}, names) r "
                    f"JOIN groups_{hour} g ON g.id = r.id"):
                fields = names_of.get(names)
                if fields is None:
                    fields = names_of[names] = _stat_names(names, spec)
                levels.add_totals(level, _group(group, hour),
                                  [(name, value) for name, value in
                                   zip(fields, values, strict=False) if value is not None],
                                  start)
        return in_python

    def rolled_up(self, measurement: str, end: datetime) -> None:
        """The measurement is rolled up until `end`: later writes before it are late points."""
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            self._set_meta(f"done_before:{measurement}", epoch_seconds(end))
            for table in ("taint", "pending"):  # rolled up: the window is the store's now
                db.execute(f"DELETE FROM {table} WHERE measurement = ? AND time < ?",
                           (measurement, epoch_seconds(end)))
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            self._failed("recording a rolled-up window", exc)

    def drop_rolled_up_hours(self) -> int:
        """Drop every hour whose measurements are all rolled up; returns how many."""
        try:
            db = self._db()
            done = {key.split(":", 1)[1]: value for key, value in db.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'done_before:%'")}
            hours, unfinished = set(), set()
            for hour, measurement in db.execute("SELECT hour, measurement FROM hours"):
                hours.add(hour)
                if done.get(measurement, 0) < hour + HOUR_S:
                    unfinished.add(hour)
            gone = sorted(hours - unfinished)
            if gone:
                db.execute("BEGIN IMMEDIATE")
                for hour in gone:
                    self._drop_hour(hour)
                db.execute("COMMIT")
            return len(gone)
        except (sqlite3.Error, OSError) as exc:
            self._failed("dropping rolled-up hours", exc)
            return 0

    def _prune_older_than(self, cutoff: int) -> None:
        """The hourly job has not run for buffer_hours: forget the oldest hours."""
        cutoff -= cutoff % HOUR_S
        old = [row[0] for row in self._db().execute(
            "SELECT DISTINCT hour FROM hours WHERE hour < ?", (cutoff,))]
        for hour in old:
            self._drop_hour(hour)
        if old:
            log.warning("roll-up buffer %s: %d hour(s) older than %d h were never rolled up "
                        "from it; the hourly job reads them from the store", self.path,
                        len(old), self.keep_s // HOUR_S)
        self._set_meta("complete_from", cutoff)  # only ever moves forward

    def _drop_hour(self, hour: int) -> None:
        db = self._db()
        db.execute(f"DROP TABLE IF EXISTS points_{hour}")
        db.execute(f"DROP TABLE IF EXISTS series_{hour}")
        db.execute(f"DROP TABLE IF EXISTS groups_{hour}")
        db.execute("DELETE FROM hours WHERE hour = ?", (hour,))

    def _files(self) -> list[Path]:
        return [Path(f"{self.path}{suffix}") for suffix in ("", "-wal", "-shm")]

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self._files() if path.exists())


def _field_statistics(width: int, spec: RollupSpec) -> list[tuple]:
    """(field column number, statistic) in the order of a roll-up row's values."""
    return [(n, statistic) for n in range(width) for statistic in spec.statistics]


def _stat_columns(width: int, spec: RollupSpec) -> list[str]:
    """The names of a roll-up row's value columns: s<field>_<statistic>."""
    return [f"s{n}_{k}" for n in range(width) for k in range(len(spec.statistics))]


def _stat_names(names: str, spec: RollupSpec) -> list[str]:
    """The rolled-up field names, unescaped, of a series row's escaped field names."""
    return [rolled for plain in map(unescape_key, json.loads(names))
            for rolled in spec.fields(plain)]


def _group(text: str, hour: int) -> tuple[tuple[str, str], ...]:
    """A level group's (tag, value) pairs from its JSON; a row that is not (an old
    version's process wrote it after the conversion) sends the window to the store."""
    try:
        return tuple([(tag, value) for tag, value in json.loads(text)])
    except (ValueError, TypeError) as exc:
        raise sqlite3.DataError(f"groups_{hour}: group {text[:100]!r} is not JSON pairs "
                                f"({exc})") from None


def _lines(rows: Iterable[tuple], suffix: str, spec: RollupSpec,
           levels: Aggregator | None = None, start: datetime | None = None,
           in_python: Aggregator | None = None) -> Iterator[str]:
    """One line per row of rollup_lines' query: one format string per field set; each row
    also summed by `in_python`, whose sums go to `levels` once every row is read."""
    formats: dict[str, str] = {}
    field_names: dict[str, list[str]] = {}  # the rolled-up fields, unescaped
    for head, names, _, *values in rows:
        template = formats.get(names)
        if template is None:
            literal = [name.replace("{", "{{").replace("}", "}}") for name in json.loads(names)]
            template = formats[names] = " " + ",".join(
                f"{rolled}={{!r}}" for name in literal for rolled in spec.fields(name)) + suffix
            field_names[names] = _stat_names(names, spec)
        if in_python is not None and start is not None:
            measurement, tags = split_head(head)
            in_python.add(measurement, tags, [(name, value) for name, value in
                                              zip(field_names[names], values, strict=False)
                                              if value is not None], start)
        yield head + template.format(*values)
    if in_python is not None and levels is not None:
        levels.merge(in_python)


_first, _second = itemgetter(0), itemgetter(1)


def _plan(names: tuple[str, ...]) -> tuple[list[tuple[str, int, tuple]], int]:
    """How a sample with these numeric field names is stored: the chunks of at most WIDTH
    of them (their repr, the index of their first, their names) and the row width."""
    chunks = [(repr(names[n:n + WIDTH]), n, names[n:n + WIDTH])
              for n in range(0, len(names), WIDTH)]
    return chunks, min(len(names), WIDTH)


def _slots(samples: Iterable[Sample], derived: frozenset[str]) -> list[tuple[str, int]]:
    """The (measurement, time) slots the samples fall in (a level's points are not kept)."""
    return sorted({(s.measurement, epoch_seconds(s.time)) for s in samples
                   if s.measurement not in derived})
