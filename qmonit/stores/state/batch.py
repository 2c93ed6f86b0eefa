"""Job-level look-up tables (BBQ's owner / job / worker info), never InfluxDB tags.

`batch_jobs_current` holds every job a scheduler listed in its last successful cycle:
rows are upserted when they change and moved to `batch_jobs_ended` when the job leaves
the queue. `batch_jobs_ended` keeps a job for [collect] ended_jobs_days.

`batch_job_hosts` makes a worker a host for both schedulers: a row per host a job runs on
(an HTCondor slot `slot1_12@wn042` is host wn042; a Slurm job on `wn[0012-0015]` has four),
with the job's start and end (NULL while it is listed), so "the jobs of host X" and "host X
at 03:00" are one index range, whatever the scheduler calls its workers.
`batch_clusters` keeps, per cluster, the longest run seen: a job running at T ended at or
after T and at most that long after, which bounds a time look-up to an index range of
end_time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnClause,
    ColumnElement,
    Connection,
    DateTime,
    Double,
    Engine,
    Index,
    String,
    Table,
    Text,
    and_,
    column,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import mysql, sqlite

from qmonit.core.batchjobs import BatchJob, BatchNode, Reservation, reason_class
from qmonit.sources.slurm import hostlist_parts
from qmonit.stores.sql import naive, upsert, utc
from qmonit.stores.state.metadata import metadata

CHUNK = 1000


MAX_HOSTS = 4096  # hosts kept of one job (a Slurm list may name a whole cluster)
# the bound on a run when no run was seen yet (an installation upgraded with history)
LONGEST_RUN_S = 30 * 86400.0
MARGIN_S = 3600.0  # a run ends up to a cycle after it was last seen running; and clocks skew


def _columns() -> list[Column]:
    return [
        Column("cluster", String(64), primary_key=True),
        Column("job_id", String(128), primary_key=True),
        Column("scheduler", String(16), nullable=False),
        Column("owner", String(128), nullable=False),
        Column("group_name", String(128), nullable=False),
        Column("state", String(16), nullable=False),
        Column("native_state", String(32), nullable=False),
        Column("cause", String(255), nullable=False),
        Column("reason", String(128), nullable=False),
        Column("partition", String(128), nullable=False),
        Column("worker", String(255), nullable=False),
        Column("submit_time", DateTime, nullable=True),
        Column("start_time", DateTime, nullable=True),
        Column("end_time", DateTime, nullable=True),
        Column("cpus", Double, nullable=False),
        Column("gpus", Double, nullable=False),
        Column("memory_mb", Double, nullable=False),
        Column("last_seen", DateTime, nullable=False),
    ]


# The indexes of the Batch Clusters dashboard's filters: a job id or a worker typed, an
# owner chosen; the ended jobs' look-ups read one time range, so owner and worker lead
# (owner, end_time) and (worker, end_time) (benchmarks/batch_history.py).
batch_jobs_current = Table("batch_jobs_current", metadata, *_columns(),
                           Index("ix_batch_jobs_current_owner", "owner"),
                           Index("ix_batch_jobs_current_worker", "worker"),
                           Index("ix_batch_jobs_current_job", "job_id"))
batch_jobs_ended = Table("batch_jobs_ended", metadata, *_columns(),
                         Index("ix_batch_jobs_ended_owner_end", "owner", "end_time"),
                         Index("ix_batch_jobs_ended_worker_end", "worker", "end_time"),
                         Index("ix_batch_jobs_ended_job", "job_id"),
                         Index("ix_batch_jobs_ended_end", "end_time"))
batch_job_hosts = Table(
    "batch_job_hosts", metadata,
    Column("cluster", String(64), primary_key=True),
    Column("job_id", String(128), primary_key=True),
    Column("host", String(255), primary_key=True),
    Column("share", Double, nullable=False),  # 1 / the job's hosts: its CPUs split evenly
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),  # NULL while the job is listed
    Index("ix_batch_job_hosts_host_end", "host", "end_time"),
    Index("ix_batch_job_hosts_end", "end_time"))
batch_clusters = Table(
    "batch_clusters", metadata,
    Column("cluster", String(64), primary_key=True),
    Column("longest_run_s", Double, nullable=False),  # the longest run seen, plus MARGIN_S
    Column("updated_at", DateTime, nullable=False),
    Column("nodes", Double, nullable=True))  # its nodes at the last collect (out or not)
# Why each drained, down or failing node is out, in full (batch_nodes has the bounded
# reason_class as a tag): what an admin reads first when nodes drain.
batch_node_reasons = Table(
    "batch_node_reasons", metadata,
    Column("cluster", String(64), primary_key=True),
    Column("node", String(255), primary_key=True),
    Column("node_state", String(32), nullable=False),
    Column("native_state", String(64), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("reason_class", String(64), nullable=False),
    Column("reason_by", String(64), nullable=False),
    Column("reason_at", DateTime, nullable=True),
    Column("last_seen", DateTime, nullable=False))
# Slurm's reservations as the last collect read them: why idle nodes may take no jobs.
batch_reservations = Table(
    "batch_reservations", metadata,
    Column("cluster", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("nodes", String(1024), nullable=False),
    Column("node_count", Double, nullable=False),
    Column("start_time", DateTime, nullable=True),
    Column("end_time", DateTime, nullable=True),
    Column("flags", String(1024), nullable=False),
    Column("users", String(1024), nullable=False),
    Column("accounts", String(1024), nullable=False),
    Column("partition", String(128), nullable=False),
    Column("last_seen", DateTime, nullable=False))
# The last reading of each scheduler daemon's health (batch_scheduler's fields): the
# counters' previous values for their rates, and what `qmonit status` judges.
batch_scheduler_state = Table(
    "batch_scheduler_state", metadata,
    Column("cluster", String(64), primary_key=True),
    Column("daemon", String(32), primary_key=True),
    Column("daemon_name", String(255), primary_key=True),  # "" for slurmctld
    Column("fields", Text, nullable=False),  # JSON: field -> number
    Column("slot", DateTime, nullable=False))
UNUSED_INDEXES = {"batch_jobs_ended": "ix_batch_jobs_ended_owner"}  # (owner, end_time) serves
# What decides whether a current row needs writing again.
CHANGING = ("state", "native_state", "reason", "worker", "start_time", "end_time")


def _row(job: BatchJob, cluster: str, scheduler: str, now: datetime) -> dict:
    return {"cluster": cluster, "job_id": job.job_id[:128], "scheduler": scheduler,
            "owner": job.owner[:128], "group_name": job.group[:128], "state": job.state,
            "native_state": job.native_state[:32], "cause": job.cause[:255],
            "reason": job.reason[:128], "partition": job.partition[:128],
            "worker": job.worker[:255], "submit_time": naive(job.submit_time),
            "start_time": naive(job.start_time), "end_time": naive(job.end_time),
            "cpus": job.cpus, "gpus": job.gpus, "memory_mb": job.memory_mb,
            "last_seen": naive(now)}


def _changing(job: BatchJob, store: list) -> tuple:
    """A job's CHANGING columns as the driver holds them (`store`: each column's bind
    processor or None; SQLite keeps a datetime as SQLAlchemy's string)."""
    values = (job.state, job.native_state[:32], job.reason[:128], job.worker[:255],
              naive(job.start_time), naive(job.end_time))
    return tuple(value if convert is None else convert(value)
                 for value, convert in zip(values, store, strict=True))


def job_hosts(worker: str) -> list[str]:
    """The hosts a job's worker names: an HTCondor slot's host, every node of a Slurm node
    list (at most MAX_HOSTS, never expanded past them), or the worker itself."""
    if not worker:
        return []
    if "@" in worker:  # slot1_12@wn042.example.org
        return [worker.rsplit("@", 1)[1][:255]]
    if "[" not in worker and "," not in worker:
        return [worker[:255]]
    plain, ranges = hostlist_parts(worker)
    hosts = plain[:MAX_HOSTS]
    for prefix, suffix, low, high, width in ranges:
        room = MAX_HOSTS - len(hosts)
        if room <= 0:
            break
        hosts += [f"{prefix}{number:0{width}d}{suffix}"
                  for number in range(low, min(high, low + room - 1) + 1)]
    return list(dict.fromkeys(host[:255] for host in hosts))


def sync_jobs(engine: Engine, cluster: str, scheduler: str, jobs: Sequence[BatchJob],
              now: datetime, keep: timedelta) -> dict[str, int]:
    """Make batch_jobs_current match `jobs`; move the jobs that left to batch_jobs_ended.

    Only the rows of new or changed jobs are built and written (most of a queue's jobs are
    as they were ten minutes ago), compared as the driver holds them (no datetime parsed
    back); the jobs that left move in one INSERT ... SELECT. A job's hosts are written
    when its worker or start changes (or it has none yet: a store upgraded with jobs
    listed), and closed with its end."""
    table = batch_jobs_current
    listed = {job.job_id[:128]: job for job in jobs}
    with engine.begin() as conn:
        dialect = conn.dialect
        store = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect)
                 for c in CHANGING]
        # untyped columns: the driver's values, unconverted
        raw: list[ColumnClause[Any]] = [column(c) for c in CHANGING]
        known = {r[0]: tuple(r[1:]) for r in conn.execute(
            select(column("job_id"), *raw).select_from(table)
            .where(table.c.cluster == cluster))}
        unhosted = _unhosted(conn, cluster)
        changed, placed = [], []
        for job_id, job in listed.items():
            values, before = _changing(job, store), known.get(job_id)
            if before != values:
                changed.append(_row(job, cluster, scheduler, now))
            if before is None or before[3:5] != values[3:5] or job_id in unhosted:
                placed.append(job)
        upsert(conn, table, changed, ["cluster", "job_id"])
        hosts = _place(conn, cluster, placed, known)
        gone = sorted(set(known) - set(listed))
        for start in range(0, len(gone), CHUNK):
            where = (table.c.cluster == cluster) & table.c.job_id.in_(gone[start:start + CHUNK])
            _move_ended(conn, where)
            conn.execute(delete(table).where(where))
            _close_hosts(conn, cluster, gone[start:start + CHUNK])
        cutoff = naive(now - keep)
        expired = conn.execute(delete(batch_jobs_ended).where(
            batch_jobs_ended.c.cluster == cluster,
            batch_jobs_ended.c.end_time < cutoff)).rowcount
        conn.execute(delete(batch_job_hosts).where(batch_job_hosts.c.cluster == cluster,
                                                   batch_job_hosts.c.end_time < cutoff))
        _note_longest_run(conn, cluster, jobs, now)
    return {"written": len(changed), "ended": len(gone), "expired": expired, "hosts": hosts}


def _unhosted(conn: Connection, cluster: str) -> set[str]:
    """The listed jobs of `cluster` with a worker but no host row (a store upgraded with its
    jobs listed): none, once healed; an anti-join, not the cluster's host rows read."""
    jobs, hosts = batch_jobs_current, batch_job_hosts
    listed_hosts = and_(hosts.c.cluster == jobs.c.cluster, hosts.c.job_id == jobs.c.job_id,
                        hosts.c.end_time.is_(None))
    return set(conn.execute(select(jobs.c.job_id).select_from(jobs.outerjoin(hosts, listed_hosts))
                            .where(jobs.c.cluster == cluster, jobs.c.worker != "",
                                   hosts.c.job_id.is_(None))).scalars())


def _place(conn: Connection, cluster: str, jobs: Sequence[BatchJob],
           known: Mapping[str, tuple]) -> int:
    """Write the hosts of `jobs` (listed: no end), replacing those of the ones `known`
    before (a new job has none); rows written."""
    hosts = batch_job_hosts
    ids = [job.job_id[:128] for job in jobs if job.job_id[:128] in known]
    for start in range(0, len(ids), CHUNK):
        conn.execute(delete(hosts).where(hosts.c.cluster == cluster,
                                         hosts.c.job_id.in_(ids[start:start + CHUNK]),
                                         hosts.c.end_time.is_(None)))
    rows = []
    for job in jobs:
        names = job_hosts(job.worker)
        rows += [{"cluster": cluster, "job_id": job.job_id[:128], "host": host,
                  "share": 1.0 / len(names), "start_time": naive(job.start_time),
                  "end_time": None} for host in names]
    upsert(conn, hosts, rows, ["cluster", "job_id", "host"])
    return len(rows)


def _close_hosts(conn: Connection, cluster: str, job_ids: Sequence[str]) -> None:
    """The hosts of jobs just moved to batch_jobs_ended take their end time from there."""
    hosts, ended = batch_job_hosts, batch_jobs_ended
    end = (select(ended.c.end_time).where(ended.c.cluster == hosts.c.cluster,
                                          ended.c.job_id == hosts.c.job_id)
           .scalar_subquery())
    conn.execute(update(hosts).where(hosts.c.cluster == cluster, hosts.c.job_id.in_(job_ids),
                                     hosts.c.end_time.is_(None)).values(end_time=end))


def _note_longest_run(conn: Connection, cluster: str, jobs: Sequence[BatchJob],
                      now: datetime) -> None:
    """Raise the cluster's longest run to the longest of its running jobs (plus MARGIN_S)."""
    runs = [(now - job.start_time).total_seconds() for job in jobs
            if job.state == "running" and job.start_time is not None]
    longest = max(runs, default=0.0) + MARGIN_S
    before = conn.execute(select(batch_clusters.c.longest_run_s)
                          .where(batch_clusters.c.cluster == cluster)).scalar()
    if before is None or longest > before:
        upsert(conn, batch_clusters, [{"cluster": cluster, "longest_run_s": longest,
                                       "updated_at": naive(now)}], ["cluster"])


def longest_run(conn: Connection) -> timedelta:
    """How long any job of any cluster ran at most (LONGEST_RUN_S when none was seen)."""
    seconds = conn.execute(select(func.max(batch_clusters.c.longest_run_s))).scalar()
    return timedelta(seconds=seconds if seconds is not None else LONGEST_RUN_S)


def _move_ended(conn: Connection, where: ColumnElement) -> None:
    """Copy the rows of batch_jobs_current matching `where` to batch_jobs_ended (replacing a
    row of the same job), a missing end time taken as the last time it was seen."""
    names = [c.name for c in batch_jobs_current.columns]
    picked = select(*[func.coalesce(batch_jobs_current.c.end_time,
                                    batch_jobs_current.c.last_seen).label("end_time")
                      if name == "end_time" else batch_jobs_current.c[name]
                      for name in names]).where(where)
    key = {"cluster", "job_id"}
    if conn.dialect.name == "sqlite":
        lite = sqlite.insert(batch_jobs_ended).from_select(names, picked)
        conn.execute(lite.on_conflict_do_update(
            index_elements=sorted(key),
            set_={n: lite.excluded[n] for n in names if n not in key}))
    else:
        maria = mysql.insert(batch_jobs_ended).from_select(names, picked)
        conn.execute(maria.on_duplicate_key_update(
            {n: maria.inserted[n] for n in names if n not in key}))


def sync_node_reasons(engine: Engine, cluster: str, nodes: Sequence[BatchNode],
                      now: datetime) -> int:
    """batch_node_reasons of `cluster`: the nodes that have a reason now, as they have it;
    a node whose reason was cleared leaves. Returns the nodes with a reason."""
    rows = [{"cluster": cluster, "node": node.node[:255], "node_state": node.node_state[:32],
             "native_state": node.native_state[:64], "reason": node.reason[:255],
             "reason_class": reason_class(node.reason)[:64], "reason_by": node.reason_by[:64],
             "reason_at": naive(node.reason_at), "last_seen": naive(now)}
            for node in nodes if node.reason]
    table = batch_node_reasons
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.cluster == cluster,
                                         table.c.node.not_in([r["node"] for r in rows])))
        upsert(conn, table, rows, ["cluster", "node"])
        conn.execute(update(batch_clusters).where(batch_clusters.c.cluster == cluster)
                     .values(nodes=float(len(nodes))))  # the row sync_jobs keeps
    return len(rows)


def nodes_out(engine: Engine) -> dict[str, tuple[float | None, dict[str, int]]]:
    """Per cluster: its nodes (None: not known) and its nodes out per reason class."""
    out: dict[str, tuple[float | None, dict[str, int]]] = {}
    with engine.connect() as conn:
        totals: dict[str, float | None] = {
            row.cluster: row.nodes for row in conn.execute(
                select(batch_clusters.c.cluster, batch_clusters.c.nodes))}
        reasons = batch_node_reasons
        for cluster, reason, count in conn.execute(
                select(reasons.c.cluster, reasons.c.reason_class, func.count())
                .group_by(reasons.c.cluster, reasons.c.reason_class)):
            out.setdefault(cluster, (totals.get(cluster), {}))[1][reason] = int(count)
    return out


def sync_reservations(engine: Engine, cluster: str, reservations: Sequence[Reservation],
                      now: datetime) -> int:
    """batch_reservations of `cluster`: exactly the reservations read now."""
    rows = [{"cluster": cluster, "name": r.name[:255], "state": r.state[:16],
             "nodes": r.nodes[:1024], "node_count": r.node_count,
             "start_time": naive(r.start), "end_time": naive(r.end), "flags": r.flags[:1024],
             "users": r.users[:1024], "accounts": r.accounts[:1024],
             "partition": r.partition[:128], "last_seen": naive(now)}
            for r in {r.name[:255]: r for r in reservations}.values()]
    table = batch_reservations
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.cluster == cluster))
        if rows:
            conn.execute(table.insert(), rows)
    return len(rows)


SchedulerKey = tuple[str, str, str]  # cluster, daemon, daemon_name


def scheduler_readings(engine: Engine) -> dict[SchedulerKey, tuple[datetime, dict]]:
    """Each daemon's last reading: its slot (UTC) and fields."""
    table = batch_scheduler_state
    with engine.connect() as conn:
        return {(r.cluster, r.daemon, r.daemon_name): (utc(r.slot), json.loads(r.fields))
                for r in conn.execute(select(table))}


def keep_scheduler_readings(engine: Engine,
                            readings: Mapping[SchedulerKey, tuple[datetime, dict]]) -> None:
    rows = [{"cluster": key[0][:64], "daemon": key[1][:32], "daemon_name": key[2][:255],
             "fields": json.dumps(fields, sort_keys=True), "slot": naive(slot)}
            for key, (slot, fields) in readings.items()]
    with engine.begin() as conn:
        upsert(conn, batch_scheduler_state, rows, ["cluster", "daemon", "daemon_name"])


def current_jobs(engine: Engine, cluster: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(batch_jobs_current).where(batch_jobs_current.c.cluster == cluster)
            .order_by(batch_jobs_current.c.job_id))]


def ended_jobs(engine: Engine, cluster: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(batch_jobs_ended).where(batch_jobs_ended.c.cluster == cluster)
            .order_by(batch_jobs_ended.c.job_id))]

