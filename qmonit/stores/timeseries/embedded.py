"""The embedded time-series store: InfluxDB's data model in SQL (SQLite by default).

A series is a measurement plus its tag set; its id is a 64-bit hash of both, so
writing needs no id look-up. A point is one row per field, keyed by retention
policy, series, time and field: writing the same slot again overwrites, as in
InfluxDB. Tags live in their own table so aggregation by any tag is a SQL join.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import NoReturn

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from qmonit.core.levels import Choice
from qmonit.core.rollup_spec import ROLLUP, RollupSpec, Window
from qmonit.core.sample import Sample, epoch_seconds, from_epoch, series_id
from qmonit.stores.sql import describe_db_error, replace_flat, replace_rows, safe_db_url
from qmonit.stores.timeseries.aggregate import GroupedQuery, Key, Stats, sql, stats_from_rows
from qmonit.stores.timeseries.base import RETENTION_POLICIES, StoreUnavailable, WriteResult
from qmonit.stores.timeseries.ts_tables import metadata, ts_points, ts_series, ts_tags

log = logging.getLogger(__name__)

UNUSED_TAG_INDEX = "ix_ts_tags_tag_value"  # made by versions before; dropped once


class EmbeddedStore:
    def __init__(self, engine: Engine, series_ids: Callable[[Sample], int] = series_id):
        self.engine = engine
        self.series_id = series_ids
        self._known_series: set[int] = set()
        self._layout_checked = False
        self.until: float | None = None  # a local file: writes take no network deadline

    rolls_up_in_server = False  # no server: the roll-ups are the client path's SQL
    server: str | None = None  # tables of the state store: `qmonit check` reaches them as "sql"

    def location(self) -> str:
        return f"embedded SQL store {safe_db_url(self.engine)}"

    def init(self, durations: dict[str, str]) -> list[str]:
        metadata.create_all(self.engine)
        moved = self._ensure_layout()
        return [f"tables {', '.join(metadata.tables)} present; retention policies "
                f"{', '.join(RETENTION_POLICIES)} are kept without expiry here"] + moved

    def _ensure_layout(self) -> list[str]:
        """ts_points of an older qmonit (keyed by series first, no measurement column) is
        moved once into the current layout, keeping every point."""
        if self._layout_checked:
            return []
        inspector = inspect(self.engine)
        columns = {c["name"] for c in inspector.get_columns(ts_points.name)} \
            if inspector.has_table(ts_points.name) else None
        self._layout_checked = True
        done = []
        if inspector.has_table(ts_tags.name) and any(
                index["name"] == UNUSED_TAG_INDEX for index in inspector.get_indexes(ts_tags.name)):
            with self.engine.begin() as conn:  # older versions kept it; no query uses it
                on = " ON ts_tags" if conn.dialect.name != "sqlite" else ""
                conn.execute(text(f"DROP INDEX {UNUSED_TAG_INDEX}{on}"))
            done.append(f"ts_tags: unused index {UNUSED_TAG_INDEX} dropped")
        if columns is None or "measurement" in columns:
            return done
        log.warning("%s: moving ts_points to the layout clustered by measurement and time "
                    "(once)", self.location())
        names = ", ".join(c.name for c in ts_points.columns)
        with self.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ts_points RENAME TO ts_points_before"))
            if conn.dialect.name == "sqlite":  # its index keeps its name on the renamed table
                conn.execute(text("DROP INDEX IF EXISTS ix_ts_points_rp_time"))
            ts_points.create(conn)
            moved = conn.execute(text(
                f"INSERT INTO ts_points ({names}) SELECT p.rp, s.measurement, p.time, "
                f"p.series_id, p.field, p.value, p.text FROM ts_points_before p JOIN ts_series "
                f"s ON s.series_id = p.series_id")).rowcount
            conn.execute(text("DROP TABLE ts_points_before"))
        return done + [f"ts_points moved to the layout clustered by measurement and time "
                       f"({moved} rows)"]

    def write(self, samples: Sequence[Sample], retention: str = "10m") -> WriteResult:
        series_rows: list[tuple[int, str, str]] = []
        tag_rows: list[tuple[int, str, str]] = []
        new_series = set()
        known = self._known_series
        series_id = self.series_id
        # per (measurement, time): (series id, sample number) pairs, written in key order (a
        # sample's fields are sorted) so that each page is written once
        runs: dict[tuple[str, datetime], list[tuple[int, int]]] = {}
        for number, sample in enumerate(samples):
            sid = series_id(sample)
            measurement = sample[0]
            if sid not in known and sid not in new_series:
                new_series.add(sid)
                series_rows.append((sid, measurement, json.dumps([measurement, sample.tags])))
                tag_rows.extend((sid, k, v) for k, v in sample.tags)
            run = runs.get((measurement, sample[3]))
            if run is None:
                run = runs[(measurement, sample[3])] = []
            run.append((sid, number))
        points: list = []  # the rows' values one after the other (see replace_flat)
        extend = points.extend
        for measurement, time in sorted(runs):
            when = epoch_seconds(time)
            run = runs[(measurement, time)]
            run.sort()
            for sid, number in run:
                for name, value in samples[number][2]:
                    if value.__class__ is str:
                        extend((retention, measurement, when, sid, name, None, value))
                    else:
                        extend((retention, measurement, when, sid, name, value, None))
        try:
            self._ensure_layout()
            with self.engine.begin() as conn:
                # a series id is a hash of the measurement and tags: a row of it is never
                # different, and a new process (each cron run) skips what it holds cheaply
                replace_rows(conn, ts_series, series_rows, keep_existing=True)
                replace_rows(conn, ts_tags, tag_rows, keep_existing=True)
                replace_flat(conn, ts_points, points)
        except SQLAlchemyError as exc:
            self._layout_checked = False
            return WriteResult(unwritten=list(samples),
                               error=f"{self.location()}: {describe_db_error(exc)}")
        self._known_series.update(new_series)
        return WriteResult(written=len(samples))

    def grouped_stats(self, query: GroupedQuery) -> dict[Key, Stats]:
        with self.engine.connect() as conn:
            return stats_from_rows(conn.execute(sql(query, self.engine.dialect.name)),
                                   query.group_by)

    def last_time(self, measurement: str, field: str, tags: dict[str, str],
                  rp: str = "10m") -> datetime | None:
        """The newest time at which a series of `measurement` with these tags has `field`."""
        series = select(ts_series.c.series_id).where(ts_series.c.measurement == measurement)
        for number, (tag, value) in enumerate(sorted(tags.items())):
            alias = ts_tags.alias(f"t{number}")
            series = series.where(select(alias.c.series_id).where(
                alias.c.series_id == ts_series.c.series_id, alias.c.tag == tag,
                alias.c.value == value).exists())
        query = (select(ts_points.c.time)  # the measurement's run of the key, newest first
                 .where(ts_points.c.rp == rp, ts_points.c.measurement == measurement,
                        ts_points.c.series_id.in_(series), ts_points.c.field == field)
                 .order_by(ts_points.c.time.desc()).limit(1))
        with self.engine.connect() as conn:
            newest = conn.execute(query).scalar_one_or_none()
        return None if newest is None else from_epoch(newest)

    # -- downsampling ------------------------------------------------------------------------

    def measurements(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(ts_series.c.measurement).distinct()).scalars())

    def first_time(self, measurement: str, rp: str) -> datetime | None:
        query = select(func.min(ts_points.c.time)).where(ts_points.c.rp == rp,
                                                          ts_points.c.measurement == measurement)
        with self.engine.connect() as conn:
            first = conn.execute(query).scalar_one()
        return None if first is None else from_epoch(first)

    def window_aggregates(self, measurement: str, window: Window, start: datetime,
                          spec: RollupSpec = ROLLUP) -> list[Sample]:
        """The spec's statistics of every numeric field per series for one window, in SQL
        (a text field's rows hold no number: passed over)."""
        width_s = window.width_s
        bucket = (ts_points.c.time - ts_points.c.time % width_s).label("bucket")
        value = ts_points.c.value
        statistics = [getattr(func, statistic.sql)(value).label(f"s{number}")
                      for number, statistic in enumerate(spec.statistics)]
        query = (
            select(ts_points.c.series_id, bucket, ts_points.c.field, ts_series.c.series_key,
                   *statistics)
            .select_from(ts_points.join(ts_series,
                                        ts_series.c.series_id == ts_points.c.series_id))
            .where(ts_points.c.rp == window.source_rp, ts_points.c.measurement == measurement,
                   value.is_not(None), ts_points.c.time >= epoch_seconds(start),
                   ts_points.c.time < epoch_seconds(start + window.width))
            .group_by(ts_points.c.series_id, bucket, ts_points.c.field, ts_series.c.series_key)
        )
        points: dict[tuple[int, int], list] = {}
        keys: dict[int, str] = {}
        with self.engine.connect() as conn:
            for series, when, name, key, *values in conn.execute(query):
                keys[series] = key
                points.setdefault((series, when), []).extend(
                    zip(spec.fields(name), map(float, values), strict=True))
        out = []
        for (series, when), fields in points.items():
            _, tags = json.loads(keys[series])
            out.append(Sample(measurement, tuple(map(tuple, tags)), tuple(sorted(fields)),
                              from_epoch(when)))
        return out

    def check(self) -> str:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"{self.location()}: {describe_db_error(exc)}") from None
        return "answers"

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}" if self.engine.dialect.name == "sqlite" \
            else self.engine.dialect.name

    def _no_server(self, what: str) -> NoReturn:
        raise NotImplementedError(f"{self.location()}: {what} needs a server store; the "
                                  "embedded store rolls up through the client path")

    def write_lines(self, lines: Iterable[str], retention: str) -> WriteResult:
        self._no_server("line protocol (the roll-up buffer)")

    def rollup_into(self, measurement: str, window: Window, start: datetime,
                    spec: RollupSpec = ROLLUP) -> int:
        self._no_server("a server-side roll-up")

    def levels_into(self, base: str, window: Window, start: datetime,
                    spec: RollupSpec = ROLLUP) -> int:
        self._no_server("a server-side roll-up")

    def write_grafana_tables(self, up_to: Sequence[tuple[str, float]],
                             choices: Sequence[Choice]) -> list[str]:
        return []  # InfluxDB's meta policy only; nothing of the kind is kept here

    def create_reader(self, user: str, password: str) -> list[str]:
        self._no_server("a reading account of its own (Grafana reads the state store)")

    def reader_statements(self, user: str, password: str) -> list[str]:
        self._no_server("a reading account of its own (Grafana reads the state store)")
