"""The embedded time-series store: InfluxDB's data model in SQL (SQLite by default).

A series is a measurement plus its tag set; its id is a 64-bit hash of both, so
writing needs no id look-up. A point is one row per field, keyed by retention
policy, series, time and field: writing the same slot again overwrites, as in
InfluxDB. Tags live in their own table so aggregation by any tag is a SQL join.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from qmonit.sample import Sample, epoch_seconds, series_id
from qmonit.stores.base import RETENTION_POLICIES, StoreUnavailable, WriteResult
from qmonit.stores.sql import describe_db_error, safe_db_url, upsert

metadata = MetaData()

ts_series = Table(
    "ts_series", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("measurement", String(64), nullable=False, index=True),
    Column("series_key", Text, nullable=False),
)
ts_tags = Table(
    "ts_tags", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tag", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Index("ix_ts_tags_tag_value", "tag", "value"),
)
ts_points = Table(
    "ts_points", metadata,
    Column("rp", String(8), primary_key=True),
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, primary_key=True, autoincrement=False),
    Column("field", String(64), primary_key=True),
    Column("value", Float, nullable=True),
    Column("text", Text, nullable=True),
    Index("ix_ts_points_rp_time", "rp", "time"),
)


class EmbeddedStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._known_series: set[int] = set()

    def location(self) -> str:
        return f"embedded SQL store {safe_db_url(self.engine)}"

    def init(self, durations: dict[str, str]) -> list[str]:
        metadata.create_all(self.engine)
        return [f"tables {', '.join(metadata.tables)} present; retention policies "
                f"{', '.join(RETENTION_POLICIES)} are kept without expiry here"]

    def write(self, samples: Sequence[Sample], retention: str = "10m") -> WriteResult:
        series_rows, tag_rows, point_rows = [], [], []
        for sample in samples:
            sid = series_id(sample)
            if sid not in self._known_series:
                series_rows.append({"series_id": sid, "measurement": sample.measurement,
                                    "series_key": json.dumps([sample.measurement, sample.tags])})
                tag_rows.extend({"series_id": sid, "tag": k, "value": v} for k, v in sample.tags)
            when = epoch_seconds(sample.time)
            for name, value in sample.fields:
                text = value if isinstance(value, str) else None
                number = None if text is not None else value
                point_rows.append({"rp": retention, "series_id": sid, "time": when,
                                   "field": name, "value": number, "text": text})
        try:
            with self.engine.begin() as conn:
                upsert(conn, ts_series, series_rows, ["series_id"])
                upsert(conn, ts_tags, tag_rows, ["series_id", "tag"])
                upsert(conn, ts_points, point_rows, ["rp", "series_id", "time", "field"])
        except SQLAlchemyError as exc:
            return WriteResult(unwritten=list(samples),
                               error=f"{self.location()}: {describe_db_error(exc)}")
        self._known_series.update(row["series_id"] for row in series_rows)
        return WriteResult(written=len(samples))

    def check(self) -> str:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"{self.location()}: {describe_db_error(exc)}") from None
        return "answers"
