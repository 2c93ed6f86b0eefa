"""Aggregations both time-series stores run in the database: per-group statistics over a window.

A group's value at one time is the SUM of its series at that time (a queue whose
CRIC status changed has two series for a while, one of them zero-filled; summing
per time keeps that from halving its mean). Over the window, each group gets the
mean and the count of those per-time sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import FromClause, Row, Select, and_, func, select

from qmonit.core.sample import epoch_seconds
from qmonit.stores.timeseries.ts_tables import ts_points, ts_series, ts_tags

Key = tuple[str, ...]


@dataclass(frozen=True)
class GroupedQuery:
    measurement: str
    field: str
    group_by: tuple[str, ...]
    rp: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    step_s: int  # the spacing of points in this retention policy (600 for "10m")
    only: tuple[str, tuple[str, ...]] | None = None  # (tag, values): only these series


@dataclass(frozen=True)
class Stats:
    mean: float
    count: int
    p25: float | None = None  # robust statistics, where a caller computes them
    median: float | None = None
    p75: float | None = None


def influxql(q: GroupedQuery) -> str:
    """One InfluxQL statement for every group at once."""
    tags = ", ".join(f'"{t}"' for t in q.group_by)
    where = f"time >= {epoch_seconds(q.start)}s AND time < {epoch_seconds(q.end)}s"
    inner_where = where
    if q.only:
        tag, values = q.only
        inner_where += " AND (" + " OR ".join(
            f"\"{tag}\" = '{_literal(v)}'" for v in values) + ")"
    return (f'SELECT mean("s") AS "mean", count("s") AS "count" FROM '
            f'(SELECT sum("{q.field}") AS "s" FROM "{q.rp}"."{q.measurement}" WHERE {inner_where} '
            f"GROUP BY time({q.step_s}s), {tags} fill(none)) WHERE {where} GROUP BY {tags}")


def _literal(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def stats_from_influx(series: list[dict], group_by: tuple[str, ...]) -> dict[Key, Stats]:
    out = {}
    for one in series:
        row = dict(zip(one["columns"], one["values"][0], strict=True))
        key = tuple(one["tags"][t] for t in group_by)
        out[key] = Stats(float(row["mean"]), int(row["count"]))
    return out


def sql(q: GroupedQuery, dialect: str = "sqlite") -> Select:
    """The same statistics in SQL (SQLite >= 3.25, MariaDB >= 10.2: window functions).

    Series are mapped to their group first (a few thousand rows), then the measurement's
    points of the window are read through the primary key (rp, measurement, time) and
    looked up in that map: no tag join per point.
    """
    tag_alias = {t: ts_tags.alias(f"tag_{t}") for t in q.group_by}
    source: FromClause = ts_series
    for tag, alias in tag_alias.items():
        source = source.join(alias, and_(alias.c.series_id == ts_series.c.series_id,
                                         alias.c.tag == tag))
    tag_values = [tag_alias[t].c.value for t in q.group_by]
    grouping = select(ts_series.c.series_id, *(v.label(t) for v, t in zip(tag_values, q.group_by,
                                                                         strict=True)),
                    func.dense_rank().over(order_by=tag_values).label("gid"))
    grouping = grouping.select_from(source).where(ts_series.c.measurement == q.measurement)
    if q.only:
        tag, values = q.only
        grouping = grouping.where(tag_alias[tag].c.value.in_(values))
    groups = grouping.cte("groups")
    if dialect == "sqlite":  # else SQLite re-runs the tag joins for every point
        groups = groups.prefix_with("MATERIALIZED")
    per_time = (
        select(groups.c.gid, ts_points.c.time, func.sum(ts_points.c.value).label("s"))
        .select_from(groups.join(ts_points, and_(
            ts_points.c.rp == q.rp, ts_points.c.measurement == q.measurement,
            ts_points.c.series_id == groups.c.series_id,
            ts_points.c.time >= epoch_seconds(q.start), ts_points.c.time < epoch_seconds(q.end),
            ts_points.c.field == q.field)))
        .group_by(groups.c.gid, ts_points.c.time)
        .cte("per_time")
    )
    stats = select(per_time.c.gid, func.avg(per_time.c.s).label("mean"),
                   func.count().label("count")).group_by(per_time.c.gid).cte("stats")
    labels = select(groups.c.gid, *(groups.c[t] for t in q.group_by)).distinct().cte("labels")
    return select(*(labels.c[t] for t in q.group_by),
                  *(c for c in stats.c if c.name != "gid")) \
        .select_from(stats.join(labels, labels.c.gid == stats.c.gid))


def stats_from_rows(rows: Iterable[Row[Any]], group_by: tuple[str, ...]) -> dict[Key, Stats]:
    out = {}
    for row in rows:
        mapping = row._mapping
        out[tuple(mapping[t] for t in group_by)] = Stats(float(mapping["mean"]),
                                                         int(mapping["count"]))
    return out
