"""Aggregations both time-series stores run in the database: per-group statistics over a window.

A group's value at one time is the SUM of its series at that time (a queue whose
CRIC status changed has two series for a while, one of them zero-filled; summing
per time keeps that from halving its mean). Over the window, each group gets the
mean and the count of those per-time sums and, when asked, the 25th percentile,
median and 75th percentile with InfluxDB's definitions: percentile p is the value
at rank floor(n·p/100 + 0.5) (1-based) of the sorted values; the median is the
middle value, or the mean of the two middle values when n is even.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, func, literal_column, select

from qmonit.sample import epoch_seconds
from qmonit.stores.ts_tables import ts_points, ts_series, ts_tags

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
    robust: bool = False  # also p25, median, p75


@dataclass(frozen=True)
class Stats:
    mean: float
    count: int
    p25: float | None = None
    median: float | None = None
    p75: float | None = None


def influxql(q: GroupedQuery) -> str:
    """One InfluxQL statement for every group at once."""
    tags = ", ".join(f'"{t}"' for t in q.group_by)
    where = f"time >= {epoch_seconds(q.start)}s AND time < {epoch_seconds(q.end)}s"
    robust = ', percentile("s", 25) AS "p25", median("s") AS "median", ' \
             'percentile("s", 75) AS "p75"' if q.robust else ""
    return (f'SELECT mean("s") AS "mean", count("s") AS "count"{robust} FROM '
            f'(SELECT sum("{q.field}") AS "s" FROM "{q.rp}"."{q.measurement}" WHERE {where} '
            f"GROUP BY time({q.step_s}s), {tags} fill(none)) WHERE {where} GROUP BY {tags}")


def stats_from_influx(series: list[dict], group_by: tuple[str, ...]) -> dict[Key, Stats]:
    out = {}
    for one in series:
        row = dict(zip(one["columns"], one["values"][0], strict=True))
        key = tuple(one["tags"][t] for t in group_by)
        out[key] = Stats(float(row["mean"]), int(row["count"]),
                         *(None if row.get(p) is None else float(row[p])
                           for p in ("p25", "median", "p75")))
    return out


def sql(q: GroupedQuery) -> Select:
    """The same statistics in SQL (SQLite >= 3.25, MariaDB >= 10.2: window functions)."""
    tag_alias = {t: ts_tags.alias(f"tag_{t}") for t in q.group_by}
    source = ts_points.join(ts_series, ts_series.c.series_id == ts_points.c.series_id)
    for tag, alias in tag_alias.items():
        source = source.join(alias, and_(alias.c.series_id == ts_points.c.series_id,
                                         alias.c.tag == tag))
    group_cols = [tag_alias[t].c.value.label(t) for t in q.group_by]
    per_time = (
        select(*group_cols, ts_points.c.time, func.sum(ts_points.c.value).label("s"))
        .select_from(source)
        .where(ts_points.c.rp == q.rp, ts_series.c.measurement == q.measurement,
               ts_points.c.field == q.field, ts_points.c.time >= epoch_seconds(q.start),
               ts_points.c.time < epoch_seconds(q.end))
        .group_by(*(tag_alias[t].c.value for t in q.group_by), ts_points.c.time)
        .cte("per_time")
    )
    keys = [per_time.c[t] for t in q.group_by]
    columns = [*keys, func.avg(per_time.c.s).label("mean"), func.count().label("count")]
    if not q.robust:
        return select(*columns).group_by(*keys)
    ranked = select(
        *keys, per_time.c.s,
        func.row_number().over(partition_by=keys, order_by=per_time.c.s).label("rn"),
        func.count().over(partition_by=keys).label("n"),
    ).cte("ranked")
    rk = [ranked.c[t] for t in q.group_by]
    rn, n, s = ranked.c.rn, ranked.c.n, ranked.c.s

    def at_rank(rank):  # the value at a 1-based rank, NULL when out of range
        return func.max(case((rn == rank, s)))

    half = literal_column("2")
    return select(
        *rk, func.avg(s).label("mean"), func.count().label("count"),
        at_rank((n * 25 + 50) // 100).label("p25"),
        func.avg(case((rn.in_([(n + 1) // half, (n + 2) // half]), s))).label("median"),
        at_rank((n * 75 + 50) // 100).label("p75"),
    ).group_by(*rk)


def stats_from_rows(rows, group_by: tuple[str, ...]) -> dict[Key, Stats]:
    out = {}
    for row in rows:
        mapping = row._mapping
        out[tuple(mapping[t] for t in group_by)] = Stats(
            float(mapping["mean"]), int(mapping["count"]),
            *(None if mapping.get(p) is None else float(mapping[p])
              for p in ("p25", "median", "p75")))
    return out
