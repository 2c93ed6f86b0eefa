"""Batch jobs from any scheduler: one record per job, mapped by the state rules, counted.

Sources parse their scheduler's output into BatchJob records; `count_jobs` maps each
through the source's rule set and sums them into `batch_jobs` points (never one series
per job: job ids, workers and times go to the job-level SQL tables instead).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from qmonit.core.bounds import MAX_CPUS, MAX_GPUS, MAX_MEMORY_MB, field_problem
from qmonit.core.sample import Sample, make_sample, shown
from qmonit.core.states.rules import RuleSet

log = logging.getLogger(__name__)

# Reasons are kept as a tag only where they explain a wait; a running job has none.
REASON_STATES = ("pending", "held")
NONE = "none"


@dataclass(slots=True)
class BatchJob:
    job_id: str  # "1234", "1234_7" (an array task), "schedd#1234.0"
    owner: str
    group: str  # Slurm account, HTCondor AccountingGroup
    partition: str  # Slurm partition; HTCondor: the schedd
    native_state: str
    reason: str = ""  # pending or hold reason
    substate: str = ""  # e.g. HTCondor LastJobStatus
    worker: str = ""  # node(s) or slot it runs on
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    cpus: float = 0.0
    gpus: float = 0.0
    memory_mb: float = 0.0
    extra: tuple[tuple[str, str], ...] = ()  # further grouping tags (e.g. vo, panda_queue)
    state: str = ""  # set by map_states
    cause: str = ""
    tasks: int = 1  # array tasks this record stands for (a pending array: one record, "12_[1-9]")

    def since(self) -> datetime | None:
        """When the job entered its current native state, as well as the scheduler says."""
        if self.native_state in ("COMPLETING", "Completed", "Removing") and self.end_time:
            return self.end_time
        if self.start_time and self.native_state not in ("PENDING", "Idle"):
            return self.start_time
        return self.submit_time


def job_problem(job: BatchJob) -> str | None:
    """Why a job's numbers are unusable (`field cpus = nan is not finite`), or None: a
    user's `RequestCpus = real("NaN")` or a negative request must cost only that job."""
    return (field_problem("cpus", job.cpus, MAX_CPUS)
            or field_problem("gpus", job.gpus, MAX_GPUS)
            or field_problem("memory_mb", job.memory_mb, MAX_MEMORY_MB))


def sane_jobs(jobs: list[BatchJob], where: str, problems: list[str]) -> list[BatchJob]:
    """The jobs whose numbers pass `job_problem`; each other one reported under `where`."""
    kept = []
    for job in jobs:
        problem = job_problem(job)
        if problem is None:
            kept.append(job)
        else:
            problems.append(f"{where}: job {shown(job.job_id)}: {problem}; skipped")
    return kept


def node_problem(node: BatchNode) -> str | None:
    """Why a node's numbers are unusable, or None (the same bounds as a job's)."""
    return (field_problem("cpus", node.cpus, MAX_CPUS)
            or field_problem("cpus_alloc", node.cpus_alloc, MAX_CPUS)
            or field_problem("gpus", node.gpus, MAX_GPUS)
            or field_problem("gpus_alloc", node.gpus_alloc, MAX_GPUS)
            or field_problem("jobs", node.jobs, MAX_CPUS))


def map_states(jobs: list[BatchJob], rules: RuleSet, now: datetime) -> list[BatchJob]:
    """Set each job's common state and cause from the rules (in place); returns the jobs."""
    for job in jobs:
        since = job.since()
        age = (now - since).total_seconds() if since else None
        mapped = rules.map(job.native_state, job.reason, job.substate, age)
        job.state, job.cause = mapped.state, mapped.cause
    return jobs


def count_jobs(jobs: Iterable[BatchJob], cluster: str, scheduler: str,
               slot: datetime) -> list[Sample]:
    """Mapped jobs -> `batch_jobs` points per partition, owner, group, state and reason."""
    sums: dict[tuple, list[float]] = {}
    for job in jobs:
        reason = job.reason if job.state in REASON_STATES and job.reason else NONE
        key = (job.partition, job.owner, job.group, job.state, job.native_state, reason,
               job.extra)
        acc = sums.get(key)
        tasks = job.tasks  # counted, never expanded: an array of 10^6 tasks is one record
        if acc is None:
            sums[key] = [float(tasks), job.cpus * tasks, job.gpus * tasks,
                         job.memory_mb * tasks]
        else:
            acc[0] += tasks
            acc[1] += job.cpus * tasks
            acc[2] += job.gpus * tasks
            acc[3] += job.memory_mb * tasks
    out = []
    for (partition, owner, group, state, native, reason, extra), acc in sums.items():
        tags = {"cluster": cluster, "scheduler": scheduler, "partition": partition or NONE,
                "owner": owner or NONE, "group": group or NONE, "state": state,
                "native_state": native, "reason": reason, **dict(extra)}
        try:
            out.append(make_sample("batch_jobs", tags, {"jobs": acc[0], "cpus": acc[1],
                                                        "gpus": acc[2], "memory_mb": acc[3]},
                                   slot))
        except ValueError as exc:
            log.warning("%s: %d job(s) skipped: %s", cluster, int(acc[0]), exc)
    return out


@dataclass(frozen=True, slots=True)
class BatchNode:
    node: str
    node_state: str
    cpus: float
    cpus_alloc: float
    gpus: float = 0.0
    gpus_alloc: float = 0.0
    jobs: float = 0.0
    native_state: str = ""  # as the scheduler says it (IDLE+DRAIN); node_state is the common one
    reason: str = ""  # why it is drained or down, as an admin or a health check set it
    reason_by: str = ""  # who set the reason
    reason_at: datetime | None = None  # when


_WORDS_KEPT = 3
_REASON_CLASS_MAX = 40


def reason_class(reason: str) -> str:
    """A node reason's bounded form, for a tag: its first words that hold no digit (no node
    name, count, percentage or date), printable ASCII only: "NHC: memory 95% used on wn12"
    -> "NHC: memory used"; "" when there is no reason, "other" when nothing is left."""
    if not reason.strip():
        return ""
    printable = "".join(c if " " <= c <= "~" else " " for c in reason)
    words = [w for w in printable.replace("|", " ").split() if not any(c.isdigit() for c in w)]
    return " ".join(words[:_WORDS_KEPT])[:_REASON_CLASS_MAX].strip() or "other"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A Slurm reservation: why idle nodes may take no jobs (maintenance, a user's slot)."""

    name: str
    nodes: str  # the node list as Slurm writes it (wn[01-04])
    node_count: float
    start: datetime | None
    end: datetime | None
    flags: str  # MAINT,IGNORE_JOBS,...
    state: str  # ACTIVE or INACTIVE (not begun yet)
    users: str = ""
    accounts: str = ""
    partition: str = ""


def node_samples(nodes: Iterable[BatchNode], cluster: str, scheduler: str,
                 slot: datetime) -> list[Sample]:
    out = []
    for n in nodes:
        problem = node_problem(n)
        if problem is not None:
            log.warning("%s: node %s: %s; skipped", cluster, shown(n.node), problem)
            continue
        try:
            tags = {"cluster": cluster, "scheduler": scheduler, "node": n.node,
                    "node_state": n.node_state}
            if n.native_state:
                tags["native_state"] = n.native_state
            if n.reason:  # bounded: the full text goes to batch_node_reasons (SQL)
                tags["reason"] = reason_class(n.reason)
            out.append(make_sample("batch_nodes", tags,
                                   {"cpus": n.cpus, "cpus_alloc": n.cpus_alloc,
                                    "gpus": n.gpus, "gpus_alloc": n.gpus_alloc,
                                    "jobs": n.jobs}, slot))
        except ValueError as exc:
            log.warning("%s: node skipped: %s", cluster, exc)
    return out
