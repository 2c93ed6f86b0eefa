"""Human-readable summaries computed in SQL over the embedded store (used by `qmonit demo`)."""

from __future__ import annotations

import re

from sqlalchemy import Engine, FromClause, and_, func, select

from qmonit.stores.timeseries.ts_tables import ts_points, ts_tags

SHOWN_STATES = ("assigned", "activated", "starting", "running", "transferring", "finished",
                "failed")


def _jobs_by(engine: Engine, tags: tuple[str, ...], when: int, where_status: str | None = None,
             limit: int | None = None, measurement: str = "jobs",
             status_tag: str = "job_status") -> list[tuple]:
    """SUM(field) at one time grouped by the given tags, aggregated in the database; the
    field is named like the measurement's count (jobs, workers)."""
    field = measurement
    joins = {tag: ts_tags.alias(f"t_{tag}") for tag in dict.fromkeys(tags + (status_tag,))}
    query = select(*(joins[t].c.value.label(t) for t in tags),
                   func.sum(ts_points.c.value).label("jobs"))
    source: FromClause = ts_points
    for tag, alias in joins.items():
        source = source.join(alias, and_(alias.c.series_id == ts_points.c.series_id,
                                         alias.c.tag == tag))
    query = query.select_from(source).where(
        ts_points.c.rp == "10m", ts_points.c.measurement == measurement,
        ts_points.c.time == when, ts_points.c.field == field,
    )
    if where_status:
        query = query.where(joins[status_tag].c.value == where_status)
    query = query.group_by(*(joins[t].c.value for t in tags))
    if limit:
        query = query.order_by(func.sum(ts_points.c.value).desc()).limit(limit)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


_NUMBER = re.compile(r"-?[\d,.]+%?( vs -?[\d,.]+)?")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns: numbers to the right, text to the left."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).rjust(w) if _NUMBER.fullmatch(str(c)) else str(c).ljust(w)
                               for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def cloud_state_table(engine: Engine, when: int) -> str:
    totals: dict[str, dict[str, float]] = {}
    for cloud, status, jobs in _jobs_by(engine, ("cloud", "job_status"), when):
        totals.setdefault(cloud, {})[status] = jobs
    rows = [[cloud, *(f"{totals[cloud].get(s, 0):,.0f}" for s in SHOWN_STATES)]
            for cloud in sorted(totals)]
    rows.append(["ALL", *(f"{sum(t.get(s, 0) for t in totals.values()):,.0f}"
                          for s in SHOWN_STATES)])
    return table(["cloud", *SHOWN_STATES], rows)


def top_queues_table(engine: Engine, when: int, limit: int = 10) -> str:
    rows = _jobs_by(engine, ("panda_queue", "atlas_site", "cloud"), when, "running", limit)
    return table(["panda_queue", "atlas_site", "cloud", "running"],
                 [[q, s, c, f"{n:,.0f}"] for q, s, c, n in rows])


def point_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ts_points)).scalar_one()


COMMON_STATES = ("pending", "running", "held", "completed", "failed", "cancelled", "unknown")


def pilots_table(engine: Engine, when: int) -> str:
    """Pilots and workers per factory and common state (Harvester and AutoPyFactory)."""
    totals: dict[tuple[str, str], dict[str, float]] = {}
    for kind, factory, state, workers in _jobs_by(
            engine, ("factory_type", "factory", "state"), when, measurement="workers",
            status_tag="state"):
        totals.setdefault((kind, factory), {})[state] = workers
    return table(["factory_type", "factory", *COMMON_STATES[:5]],
                 [[kind, factory, *(f"{totals[(kind, factory)].get(s, 0):,.0f}"
                                    for s in COMMON_STATES[:5])]
                  for kind, factory in sorted(totals)])


def batch_table(engine: Engine) -> str:
    """Jobs and CPUs per cluster and state, from batch_jobs_current (grouped in SQL)."""
    from qmonit.stores.state.batch import batch_jobs_current as jobs

    query = (select(jobs.c.cluster, jobs.c.state, func.count(), func.sum(jobs.c.cpus),
                    func.count(func.distinct(jobs.c.owner)))
             .group_by(jobs.c.cluster, jobs.c.state).order_by(jobs.c.cluster, jobs.c.state))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return table(["cluster", "state", "jobs", "cpus", "owners"],
                 [[c, st, f"{n:,}", f"{cpus:,.0f}", f"{owners:,}"]
                  for c, st, n, cpus, owners in rows])
