"""The simulated grid's layers under PanDA: Harvester workers, an AutoPyFactory schedd and a
Slurm cluster, each in its real format and read by the real parser, so `qmonit demo`
shows pilots and batch clusters too.

Jobs of the simulated cluster have stable ids: job k is submitted in slot k // JOBS_PER_SLOT,
waits, runs and leaves, so the job-level tables fill and empty as on a real cluster.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from qmonit.sample import epoch_seconds
from qmonit.sources.base import Collection, SourceError
from qmonit.sources.harvester import parse_worker_stats
from qmonit.sources.htcondor import HTCondorSource
from qmonit.sources.simulated import SimulatedGrid
from qmonit.sources.slurm import SlurmSource
from qmonit.states.rules import RuleSet

JOBS_PER_SLOT = 40
NODES = 48
CPUS_PER_NODE = 64
PARTITIONS = ("batch", "long", "gpu")
OWNERS = tuple(f"user{n:02d}" for n in range(30))
REASONS = ("Priority", "Priority", "Resources", "Dependency", "AssocGrpCpuLimit",
           "JobHeldUser", "BeginTime")
HARVESTERS = ("CERN_central_A", "CERN_central_B")
WORKER_SHARE = {"running": 0.85, "submitted": 0.1, "idle": 0.03, "finished": 0.25,
                "failed": 0.02, "missed": 0.005}


@lru_cache(maxsize=4096)  # a job is listed for up to 31 slots: drawn once, not each slot
def _job(k: int) -> tuple[int, int, int, str, str, str]:
    """Job k's wait and run time in slots, cpus, partition, owner and pending reason, from
    its own random stream."""
    rng = random.Random(k)
    wait, run = rng.choice((0, 0, 1, 1, 2, 6)), rng.randint(1, 24)
    cpus, partition, owner = rng.choice((1, 1, 8, 8, 16)), rng.choice(PARTITIONS), \
        rng.choice(OWNERS)
    return wait, run, cpus, partition, owner, rng.choice(REASONS)


def squeue_text(slot: datetime) -> str:
    now = epoch_seconds(slot) // 600
    lines = []
    for k in range(max(0, (now - 31) * JOBS_PER_SLOT), (now + 1) * JOBS_PER_SLOT):
        wait, run, cpus, partition, owner, reason = _job(k)
        submitted = k // JOBS_PER_SLOT
        if not submitted <= now < submitted + wait + run:
            continue
        running = now >= submitted + wait
        gpus = ",gres/gpu=1" if partition == "gpu" else ""
        submit = datetime.fromtimestamp(submitted * 600, UTC).replace(tzinfo=None)
        start = submit + timedelta(minutes=10 * wait) if running else None
        lines.append("|".join([
            str(k), "RUNNING" if running else "PENDING",
            "None" if running else reason, partition, owner, "grid",
            f"acct{OWNERS.index(owner) % 6}", str(cpus),
            f"cpu={cpus},mem={cpus * 2000}M,node=1,billing={cpus}{gpus}",
            f"wn{k % NODES:02d}" if running else "", submit.isoformat(),
            start.isoformat() if start else "N/A", "Unknown"]) + "|")
    return "\n".join(lines) + "\n"


def sinfo_text() -> str:
    return "".join(f"wn{n:02d}|mixed|0/{CPUS_PER_NODE}/0/{CPUS_PER_NODE}|"
                   f"{'gpu:4' if n < 4 else '(null)'}|(null)|\n" for n in range(NODES))


class SimulatedSlurm(SlurmSource):
    def __init__(self, rules: RuleSet, node_rules: RuleSet | None = None):
        self._slot = datetime.now(UTC)
        super().__init__({"cluster": "sim-slurm", "bin_dir": "", "format": "text",
                          "timeout_s": 60.0}, rules, run=self._answer, node_rules=node_rules)

    def _answer(self, argv: list[str], timeout: float) -> str:
        return squeue_text(self._slot) if argv[0] == "squeue" else sinfo_text()

    def collect(self, slot: datetime) -> Collection:
        self._slot = slot
        return super().collect(slot)


class SimulatedHarvester:
    """Harvester worker statistics of the simulated grid, in the PanDA server's format."""

    name = "harvester"

    def __init__(self, grid: SimulatedGrid, rules: RuleSet):
        self.grid = grid
        self.rules = rules

    def worker_stats(self, slot: datetime) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        try:
            running = self.grid.job_stats(slot)
        except SourceError:
            raise SourceError("simulated Harvester: the PanDA server is down (simulated "
                              "outage)") from None
        # a third of the queues get their pilots from Harvester
        for number, queue in enumerate(self.grid.harvester_queues):
            if queue not in running:
                continue  # PanDA does not list it (offline)
            rng = random.Random(f"{queue}:{epoch_seconds(slot)}")
            harvester = HARVESTERS[number % len(HARVESTERS)]
            active = self.grid.active_incidents(queue, slot)
            for label, by_resource in running[queue].items():
                job_type = "managed" if label == "managed" else "user"
                for resource, counts in by_resource.items():
                    level = counts.get("running", 0)
                    statuses = {status: int(level * share * rng.uniform(0.8, 1.2))
                                for status, share in WORKER_SHARE.items()}
                    _factory_side(statuses, active, counts.get("activated", 0), rng)
                    stats.setdefault(queue, {}).setdefault(harvester, {}).setdefault(
                        job_type, {})[resource] = {s: n for s, n in statuses.items() if n}
        return stats

    def collect(self, slot: datetime) -> Collection:
        return parse_worker_stats(self.worker_stats(slot), self.rules, slot,
                                  "simulated Harvester")


def _factory_side(statuses: dict[str, int], active: set[str], activated: int,
                  rng: random.Random) -> None:
    """A queue's Harvester workers under its incidents whose layer is the factory's or the
    batch system's: the factory submits none (no_pilots), submits them and they fail
    (pilots_failing), or they wait in the batch system (pilots_queued); in proportion to the
    jobs activated for them."""
    if "no_pilots" in active:
        statuses.update(submitted=0, running=0, idle=0)
    if "pilots_failing" in active:
        statuses.update(running=0, idle=0, submitted=int(activated * 0.1 * rng.uniform(0.8, 1.2)),
                        failed=int(activated * 0.5 * rng.uniform(0.8, 1.2)))
    if "pilots_queued" in active:
        statuses["submitted"] = int(activated * rng.uniform(0.8, 1.2))


class _FactoryPool:
    """An AutoPyFactory schedd of the simulated grid: its pilot ads, as a schedd answers."""

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid
        self.slot = datetime.now(UTC)
        self.name = "apf-sim.example.org"

    def schedds(self) -> list:
        return [self]

    def _pilots(self, ended: bool) -> list[Mapping[str, Any]]:
        ads = []
        for number, queue in enumerate(self.grid.apf_queues):
            rng = random.Random(f"apf:{queue}:{epoch_seconds(self.slot)}")
            active = self.grid.active_incidents(queue, self.slot)
            if "no_pilots" in active:
                continue  # the factory submits no pilots for it
            if ended:
                states = [(4, 0)] * rng.randint(5, 40) + [(4, 1)] * rng.randint(0, 3)
                if "pilots_failing" in active:  # they fail: removed by the factory
                    states = [(4, 0)] * rng.randint(0, 2) + [(3, 1)] * rng.randint(20, 60)
            elif "pilots_failing" in active:
                states = [(1, None)] * rng.randint(0, 20)
            else:
                running = 0 if "pilots_queued" in active else rng.randint(5, 60)
                idle = rng.randint(40, 80) if "pilots_queued" in active else rng.randint(0, 20)
                states = [(1, None)] * idle + [(2, None)] * running \
                    + [(5, None)] * rng.randint(0, 2)
            for proc, (status, code) in enumerate(states):
                ads.append({"ClusterId": number, "ProcId": proc, "JobStatus": status,
                            "ExitCode": code, "Owner": "apf", "MATCH_APF_QUEUE": queue,
                            "RequestCpus": 1, "RequestMemory": 2000})
        return ads

    def query(self, constraint: str, projection) -> list:
        return self._pilots(ended=False)

    def history(self, constraint: str, projection) -> list:
        return self._pilots(ended=True)

    def slots(self, projection) -> list:
        return []


class SimulatedFactory(HTCondorSource):
    def __init__(self, grid: SimulatedGrid, rules: RuleSet, apf_rules: RuleSet):
        self.factory_pool = _FactoryPool(grid)
        super().__init__({"cluster": "sim-apf", "group_by": ("Owner",),
                          "factory_schedds": (self.factory_pool.name,),
                          "label_attribute": "MATCH_APF_QUEUE"}, rules, apf_rules,
                         self.factory_pool)

    def collect(self, slot: datetime) -> Collection:
        self.factory_pool.slot = slot
        return super().collect(slot)

