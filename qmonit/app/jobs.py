"""`qmonit jobs` and `qmonit top`: BBQ's first page for a terminal, read from the SQL state.

`jobs` looks jobs up in batch_jobs_current and batch_jobs_ended together: by owner, job id,
worker, common state, cluster, and time (running at a time: start <= T <= end; running
within two times: start <= T2 and end >= T1; a job still listed has no end yet). `top`
counts the current jobs in the database: owners by running and pending jobs with their CPUs
and GPUs, workers by running jobs.

A worker is matched as a host through batch_job_hosts: an HTCondor slot (`slot1_12@wn042`)
is found by its host, a Slurm node list (`wn[0012-0015]`) by any node it names. A time
look-up reads the ended jobs on their end_time index, from the time asked to the longest
run the clusters have had after it (batch_clusters).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, and_, case, func, or_, select, tuple_

from qmonit.app.report import table
from qmonit.core.sample import EPOCH
from qmonit.core.states.rules import COMMON_STATES
from qmonit.stores.sql import naive, utc
from qmonit.stores.state.batch import (
    batch_job_hosts,
    batch_jobs_current,
    batch_jobs_ended,
    longest_run,
)

SHOWN = ("cluster", "job_id", "owner", "state", "partition", "worker", "start_time",
         "end_time", "cpus", "gpus")


class JobsError(Exception):
    """A question that cannot be answered as asked; the message says why."""


@dataclass(frozen=True)
class JobQuery:
    owner: str = ""
    job_id: str = ""
    worker: str = ""
    state: str = ""
    cluster: str = ""
    since: datetime | None = None  # running at or after (--at T: T, T; --between T1 T2)
    until: datetime | None = None  # running at or before
    limit: int = 50

    def said(self) -> str:
        """The question, as a user typed it."""
        parts = [f"{name} {value}" for name, value in (
            ("owner", self.owner), ("job", self.job_id), ("worker", self.worker),
            ("state", self.state), ("cluster", self.cluster)) if value]
        if self.since is not None and self.since == self.until:
            parts.append(f"running at {self.since:%Y-%m-%d %H:%M} UTC")
        elif self.since is not None and self.until is not None:
            parts.append(f"running between {self.since:%Y-%m-%d %H:%M} and "
                         f"{self.until:%Y-%m-%d %H:%M} UTC")
        return ", ".join(parts) or "any job"


def _on_host(jobs: Table, host: str) -> ColumnElement[bool]:
    """The jobs with a row for `host` in batch_job_hosts: an HTCondor slot on it, a Slurm
    job whose node list names it (one index range of the host)."""
    hosts = batch_job_hosts
    return tuple_(jobs.c.cluster, jobs.c.job_id).in_(
        select(hosts.c.cluster, hosts.c.job_id).where(hosts.c.host == host))


def _conditions(jobs: Table, query: JobQuery, ended: bool,
                longest: timedelta) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.cluster:
        where.append(jobs.c.cluster == query.cluster)
    if query.owner:
        where.append(jobs.c.owner == query.owner)
    if query.job_id:
        where.append(jobs.c.job_id == query.job_id)
    if query.state:
        where.append(jobs.c.state == query.state)
    if query.worker:
        where.append(_on_host(jobs, query.worker))
    if query.until is not None:
        where.append(jobs.c.start_time <= naive(query.until))
    if query.since is not None:
        if ended:  # on the index: an ended job's end lies in [since, until + its run]
            where.append(jobs.c.end_time >= naive(query.since))
            where.append(jobs.c.end_time <= naive((query.until or query.since) + longest))
        else:  # still listed: running now, or ended and not yet moved
            where.append(or_(jobs.c.end_time.is_(None), jobs.c.end_time >= naive(query.since)))
    return where


def find_jobs(engine: Engine, query: JobQuery) -> list[dict[str, Any]]:
    """The jobs answering `query`, current and ended, at most `query.limit`: the latest
    started of the current ones and the latest ended of the ended ones (read backwards on
    an end_time index), shown the latest started first."""
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        longest = longest_run(conn)
        for jobs, ended in ((batch_jobs_current, False), (batch_jobs_ended, True)):
            columns = [jobs.c[name] for name in SHOWN]
            latest = jobs.c.end_time if ended else jobs.c.start_time  # ended: on an index
            rows += [dict(r._mapping) for r in conn.execute(
                select(*columns).where(*_conditions(jobs, query, ended, longest))
                .order_by(latest.desc()).limit(query.limit))]
    for row in rows:
        row["start_time"], row["end_time"] = utc(row["start_time"]), utc(row["end_time"])
    # the latest started first; a job not started (pending) last
    rows.sort(key=lambda r: r["start_time"] or EPOCH, reverse=True)
    return rows[:query.limit]


def owners_like(engine: Engine, owner: str) -> list[str] | None:
    """None when `owner` has current or ended jobs; else the known owners most like it
    (perhaps none)."""
    with engine.connect() as conn:
        for jobs in (batch_jobs_current, batch_jobs_ended):
            if conn.execute(select(jobs.c.owner).where(jobs.c.owner == owner).limit(1)
                            ).first():
                return None
        known = [r[0] for r in conn.execute(select(batch_jobs_current.c.owner).distinct())]
    return difflib.get_close_matches(owner, known, n=3, cutoff=0.6)


def top_owners(engine: Engine, cluster: str = "", limit: int = 20) -> list[dict[str, Any]]:
    """Owners by running then pending jobs (CPUs, GPUs), summed in the database."""
    jobs = batch_jobs_current
    running, pending = jobs.c.state == "running", jobs.c.state == "pending"

    def total(when: ColumnElement[bool], what: Any) -> Any:
        return func.sum(case((when, what), else_=0))

    select_owners = (select(jobs.c.cluster, jobs.c.owner,
                            total(running, 1).label("running"),
                            total(running, jobs.c.cpus).label("running_cpus"),
                            total(running, jobs.c.gpus).label("running_gpus"),
                            total(pending, 1).label("pending"),
                            total(pending, jobs.c.cpus).label("pending_cpus"))
                     .where(jobs.c.state.in_(("running", "pending")),
                            *([jobs.c.cluster == cluster] if cluster else []))
                     .group_by(jobs.c.cluster, jobs.c.owner)
                     .order_by(total(running, 1).desc(), total(pending, 1).desc(),
                               jobs.c.owner).limit(limit))
    with engine.connect() as conn:
        return [_numbers(r._mapping) for r in conn.execute(select_owners)]


def top_workers(engine: Engine, cluster: str = "", limit: int = 20) -> list[dict[str, Any]]:
    """Hosts by running jobs (a job on several counts on each, its CPUs and GPUs split
    evenly), counted in the database."""
    jobs, hosts = batch_jobs_current, batch_job_hosts
    on = and_(hosts.c.cluster == jobs.c.cluster, hosts.c.job_id == jobs.c.job_id,
              hosts.c.end_time.is_(None))
    select_hosts = (select(jobs.c.cluster, hosts.c.host.label("worker"),
                           func.count().label("running"),
                           func.sum(jobs.c.cpus * hosts.c.share).label("cpus"),
                           func.sum(jobs.c.gpus * hosts.c.share).label("gpus"))
                    .select_from(jobs.join(hosts, on))
                    .where(jobs.c.state == "running",
                           *([jobs.c.cluster == cluster] if cluster else []))
                    .group_by(jobs.c.cluster, hosts.c.host)
                    .order_by(func.count().desc(), hosts.c.host).limit(limit))
    with engine.connect() as conn:
        return [_numbers(r._mapping) for r in conn.execute(select_hosts)]


COUNTS = ("running", "pending")  # top's columns that count jobs; the other sums are CPUs


def _numbers(row: Any) -> dict[str, Any]:
    """A row with MariaDB's DECIMAL sums as numbers (a count an int, the rest floats)."""
    return {key: (int(value) if key in COUNTS else float(value))
            if isinstance(value, Decimal | int | float) else value
            for key, value in row.items()}


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(rows: list[dict[str, Any]], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([{k: v.isoformat() if isinstance(v, datetime) else v
                            for k, v in row.items()} for row in rows], indent=2) + "\n"
    if not rows:
        return ""
    headers = list(rows[0])
    return table([h.replace("_time", "") for h in headers],
                 [[_shown(row[h]) for h in headers] for row in rows]) + "\n"


def query_of(args: Any) -> JobQuery:
    """The question `qmonit jobs` was asked; a JobsError for one that cannot be asked."""
    state = check_state(args.state) if args.state else ""
    since = until = args.at
    if args.between:
        since, until = args.between
        if since > until:
            raise JobsError(f"--between {since:%Y-%m-%dT%H:%MZ} {until:%Y-%m-%dT%H:%MZ}: the "
                            "first time is after the second")
    if args.limit < 1:
        raise JobsError(f"--limit {args.limit}: must be at least 1")
    return JobQuery(owner=args.owner, job_id=args.job, worker=args.worker, state=state,
                    cluster=args.cluster, since=since, until=until, limit=args.limit)


def nothing_found(query: JobQuery, like: list[str] | None) -> str:
    """What to say when no job matches (`like`: owners_like's answer, None: not asked or
    the owner is known)."""
    if like is not None:
        hint = f"; did you mean {', '.join(like)}?" if like else ""
        return f"no job of owner {query.owner!r} is known, current or ended{hint}"
    return f"no job matches ({query.said()})"


def check_state(state: str) -> str:
    """A common job state as typed (any case), or a JobsError naming the known ones."""
    known = [s for s in COMMON_STATES if s.lower() == state.lower()]
    if not known:
        raise JobsError(f"--state {state!r}: not a job state (one of {', '.join(COMMON_STATES)})")
    return known[0]
