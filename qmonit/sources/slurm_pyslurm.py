"""The pyslurm backend of the Slurm source, imported only when [slurm] backend = pyslurm.

pyslurm X.Y works only with Slurm X.Y, and `import pyslurm` without a reachable Slurm
configuration ends the process (an uncatchable `fatal:`), so nothing imports this
module unless it is configured. Written against pyslurm 25.11's Jobs/Nodes API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from qmonit.core.batchjobs import (
    BatchJob,
    BatchNode,
    count_jobs,
    map_states,
    node_samples,
    sane_jobs,
)
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import Collection, SourceError
from qmonit.sources.slurm import SCHEDULER, SHOWN_FLAGS, jobs_per_node
from qmonit.support.clock import Clock, SystemClock


def _time(seconds: Any) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, (int, float)) and \
        seconds > 0 else None


class PyslurmSource:
    name = "slurm"

    def __init__(self, settings: SlurmSection, rules: RuleSet, clock: Clock | None = None):
        import pyslurm  # noqa: F401 - fails here, at start, when the bindings are missing

        self.pyslurm = pyslurm
        self.cluster = settings.cluster
        self.rules = rules
        self.clock = clock or SystemClock()

    @property
    def origin(self) -> str:
        return f"Slurm cluster {self.cluster} (pyslurm)"

    def collect(self, slot: datetime) -> Collection:
        try:
            jobs = self.pyslurm.Jobs.load()
            nodes = self.pyslurm.Nodes.load()
        except Exception as exc:  # noqa: BLE001 - pyslurm.RPCError and friends
            raise SourceError(f"pyslurm: {exc}") from None
        records = []
        for job in jobs.values():
            flags = [f for f in SHOWN_FLAGS if f in str(job.state)]
            records.append(BatchJob(
                job_id=str(job.id), owner=str(job.user_name or ""),
                group=str(job.account or job.group_name or ""),
                partition=str(job.partition or ""), native_state=flags[0] if flags else
                str(job.state), reason="" if job.state_reason == "None" else
                str(job.state_reason or ""), worker=str(job.nodes or ""),
                submit_time=_time(job.submit_time), start_time=_time(job.start_time),
                end_time=_time(job.end_time), cpus=float(job.cpus or 0),
                gpus=float((job.gres_per_node or {}).get("gpu", 0) or 0),
                memory_mb=float(job.memory or 0)))
        now = self.clock.now()
        problems: list[str] = []
        records = sane_jobs(records, f"pyslurm {self.cluster}", problems)
        mapped = map_states(records, self.rules, now)
        per_node = jobs_per_node(records)
        batch_nodes = [BatchNode(n.name, str(n.state).lower(), float(n.total_cpus or 0),
                                 float(n.allocated_cpus or 0), 0.0, 0.0,
                                 float(per_node.get(n.name, 0))) for n in nodes.values()]
        return Collection(count_jobs(mapped, self.cluster, SCHEDULER, slot)
                          + node_samples(batch_nodes, self.cluster, SCHEDULER, slot), problems,
                          jobs=mapped, cluster=self.cluster)
