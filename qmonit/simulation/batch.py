"""The simulated grid's layers under PanDA: Harvester workers, an AutoPyFactory schedd and a
Slurm cluster, each in its real format and read by the real parser, so `qmonit demo`
shows pilots and batch clusters too.

Jobs of the simulated cluster have stable ids: job k is submitted in slot k // JOBS_PER_SLOT,
waits, runs and leaves, so the job-level tables fill and empty as on a real cluster.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from qmonit.core.config import default_section
from qmonit.core.sample import EPOCH, epoch_seconds
from qmonit.core.settings import HtcondorSection, SlurmSection
from qmonit.core.states.rules import RuleSet
from qmonit.simulation.grid import IN_BATCH, SimulatedGrid, SimulatedJobStats
from qmonit.sources.base import Collection, Source, SourceError
from qmonit.sources.harvester import parse_worker_stats
from qmonit.sources.htcondor import HTCondorSource
from qmonit.sources.slurm import SlurmSource

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


# The nodes out, as a cluster always has some: (state, CPUs A/I/O/T, set at, by, reason)
OUT = {NODES - 2: ("drained", f"0/0/{CPUS_PER_NODE}/{CPUS_PER_NODE}", "2026-11-20T08:00:00",
                   "root", "NHC: memory 97% used on wn46"),
       NODES - 1: ("down*", f"0/0/{CPUS_PER_NODE}/{CPUS_PER_NODE}", "2026-11-20T09:30:00",
                   "slurm", "Not responding")}


DRAINED = 30  # of NODES, drained by the health check while a mass_drain is active


def sinfo_text(drained: bool = False) -> str:
    """`sinfo -N -O NodeHost,StateLong,CPUsState,Gres,GresUsed,Timestamp,User,Reason`; with
    `drained`, most of the nodes drained by their health check (a mass drain)."""
    lines = []
    for n in range(NODES):
        out = OUT.get(n) or (("drained", f"0/0/{CPUS_PER_NODE}/{CPUS_PER_NODE}",
                              "2026-11-22T15:00:00", "root", f"NHC: memory 9{n % 10}% used")
                             if drained and n < DRAINED else None)
        state, cpus, at, by, reason = out or (
            "mixed", f"0/{CPUS_PER_NODE}/0/{CPUS_PER_NODE}", "Unknown", "Unknown", "none")
        lines.append(f"wn{n:02d}|{state}|{cpus}|{'gpu:4' if n < 4 else '(null)'}|(null)|{at}|"
                     f"{by}|{reason}|\n")
    return "".join(lines)


def sinfo_partitions_text() -> str:
    """`sinfo -N -O NodeHost,PartitionName,Available,CPUsState`: every node in batch, the
    second half in long too, the GPU nodes in gpu."""
    members = {"batch": range(NODES), "long": range(NODES // 2, NODES), "gpu": range(4)}
    return "".join(f"wn{n:02d}|{partition}|up|0/{CPUS_PER_NODE}/0/{CPUS_PER_NODE}|\n"
                   for partition, nodes in members.items() for n in nodes)


def sdiag_text(slot: datetime, stalled: bool = False) -> str:
    """`sdiag` of the simulated slurmctld at `slot`: counters since midnight UTC (when Slurm
    resets them), a healthy controller's queues and cycles; `stalled`: one that cannot
    reach its nodes (agent queue 15,000, a backfill cycle of 310 s)."""
    agent, backfill = (15000, 310_000_000) if stalled else (0, 194289)
    midnight = slot.replace(hour=0, minute=0, second=0, microsecond=0)
    minutes = int((slot - midnight).total_seconds() // 60)
    stamp = f"{midnight:%a %b %d %H:%M:%S %Y} ({int(midnight.timestamp())})"
    now = f"{slot:%a %b %d %H:%M:%S %Y} ({int(slot.timestamp())})"
    return (f"*******************************************************\n"
            f"sdiag output at {now}\nData since      {stamp}\n"
            f"*******************************************************\n"
            f"Server thread count:  3\nAgent queue size:     {agent}\nAgent count:          0\n"
            f"Agent thread count:   0\nDBD Agent queue size: 0\n\n"
            f"Jobs submitted: {minutes * 12}\nJobs started:   {minutes * 11}\n"
            f"Jobs completed: {minutes * 10}\nJobs canceled:  {minutes // 10}\n"
            f"Jobs failed:    {minutes // 30}\n\n"
            f"Main schedule statistics (microseconds):\n\tLast cycle:   9720\n"
            f"\tMax cycle:    140759\n\tTotal cycles: {minutes}\n\tMean cycle:   7459\n"
            f"\tLast queue length: 412\n\n"
            f"Backfilling stats\n\tTotal backfilled jobs (since last slurm start): 1115\n"
            f"\tTotal backfilled jobs (since last stats cycle start): {minutes * 2}\n"
            f"\tTotal cycles: {minutes // 2}\n\tLast cycle: {backfill}\n\tMax cycle:  593333\n"
            f"\tMean cycle: 196082\n\tLast depth cycle: 56\n\tLast queue length: 400\n")


class SimulatedSlurm(SlurmSource):
    def __init__(self, rules: RuleSet, node_rules: RuleSet | None = None,
                 grid: SimulatedGrid | None = None):
        self.grid = grid  # its cluster-wide incidents (a stalled controller, a mass drain)
        self._slot = EPOCH  # the slot collect asks for (set there)
        super().__init__(default_section(SlurmSection, cluster="sim-slurm"),
                         rules, run=self._answer, node_rules=node_rules)

    def _answer(self, argv: list[str], timeout: float) -> str:
        if argv[0] == "squeue":
            return squeue_text(self._slot)
        failing = self.grid.batch_state(self._slot) if self.grid is not None else set()
        if argv[0] == "sdiag":
            return sdiag_text(self._slot, "controller_stalled" in failing)
        if argv[0] == "scontrol":  # the out nodes held for their repair
            return (f"ReservationName=repair_wn46 StartTime=2026-11-20T08:00:00 "
                    f"EndTime=2027-11-20T08:00:00 Duration=365-00:00:00 Nodes=wn[46-47] "
                    f"NodeCnt=2 CoreCnt={2 * CPUS_PER_NODE} Features=(null) "
                    f"PartitionName=(null) Flags=MAINT,SPEC_NODES TRES=cpu=128 Users=root "
                    f"Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE "
                    f"BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)\n")
        return sinfo_partitions_text() if "PartitionName" in argv[-1] else \
            sinfo_text("mass_drain" in failing)

    def collect(self, slot: datetime) -> Collection:
        self._slot = slot
        return super().collect(slot)


class SimulatedHarvester:
    """Harvester worker statistics of the simulated grid, in the PanDA server's format."""

    name = "harvester"
    origin = "simulated Harvester"

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
    if active & IN_BATCH:
        statuses["submitted"] = int(activated * rng.uniform(0.8, 1.2))


# A pilot of the simulated factory: slots idle, slots running, then how it ends.
PILOT_WAIT = (0, 0, 0, 1, 1, 2)
PILOT_RUN = (1, 12)  # slots, uniform
PILOT_ENDS = ((4, 0), (4, 1), (5, 1))  # done, failed (exit code 1), held then removed
PILOT_END_WEIGHTS = (92, 5, 3)
PILOT_LIFE = max(PILOT_WAIT) + PILOT_RUN[1]  # the oldest submission still listed, in slots
HISTORY_SLOTS = 6  # the schedd's history answers the last hour


@lru_cache(maxsize=16384)  # a submission is listed for up to PILOT_LIFE + an hour of slots
def _submitted(queue: str, number: int) -> tuple[tuple[int, int, int, int], ...]:
    """The pilots the factory submitted for `queue` in slot `number` (slots since the epoch),
    from their own random stream: (slots idle, slots running or held, end status, exit
    code) each."""
    rng = random.Random(f"apf:{queue}:{number}")
    return tuple((rng.choice(PILOT_WAIT), rng.randint(*PILOT_RUN),
                  *rng.choices(PILOT_ENDS, PILOT_END_WEIGHTS)[0])
                 for _ in range(rng.randint(2, 8)))


class _FactoryPool:
    """An AutoPyFactory schedd of the simulated grid: its pilot ads, as a schedd answers.

    A pilot keeps its id from submission to its end, as on a real schedd: the factory submits
    a few per queue every slot; each waits idle, runs (or is held) and leaves the queue for
    the history. A queue under a pilot-layer incident gets that incident's pilots instead."""

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid
        self.slot = EPOCH  # the slot collect asks for (set there)
        self.name = "apf-sim.example.org"

    def schedds(self) -> list:
        return [self]

    def _pilots(self, ended: bool) -> list[Mapping[str, Any]]:
        ads = []
        now = epoch_seconds(self.slot) // 600
        queues = self.grid.apf_queues
        for number, queue in enumerate(queues):
            active = self.grid.active_incidents(queue, self.slot)
            if "no_pilots" in active:
                continue  # the factory submits no pilots for it
            if active & ({"pilots_failing"} | IN_BATCH):
                ads += self._incident_pilots(number, queue, active, ended)
                continue
            for submitted in range(now - PILOT_LIFE - (HISTORY_SLOTS if ended else 0), now + 1):
                age, cluster = now - submitted, submitted * len(queues) + number
                for proc, (wait, run, end, code) in enumerate(_submitted(queue, submitted)):
                    gone = age - (wait + run)  # slots since it left the queue (< 0: listed)
                    if ended and 0 <= gone < HISTORY_SLOTS:  # held ones were removed (3)
                        ads.append(self._ad(cluster, proc, 4 if end == 4 else 3, code, queue))
                    elif not ended and gone < 0:  # idle, then running (or held)
                        status = 1 if age < wait else 5 if end == 5 else 2
                        ads.append(self._ad(cluster, proc, status, None, queue))
        return ads

    def _incident_pilots(self, number: int, queue: str, active: set[str],
                         ended: bool) -> list[Mapping[str, Any]]:
        rng = random.Random(f"apf:{queue}:{epoch_seconds(self.slot)}")
        states: Sequence[tuple[int, int | None]]  # (JobStatus, ExitCode; None: not ended)
        if ended:
            states = [(4, 0)] * rng.randint(5, 40) + [(4, 1)] * rng.randint(0, 3)
            if "pilots_failing" in active:  # they fail: removed by the factory
                states = [(4, 0)] * rng.randint(0, 2) + [(3, 1)] * rng.randint(20, 60)
        elif "pilots_failing" in active:
            states = [(1, None)] * rng.randint(0, 20)
        else:  # pilots_queued (or the batch layer fails): they wait in the batch system
            states = [(1, None)] * rng.randint(40, 80) + [(5, None)] * rng.randint(0, 2)
        return [self._ad(number, proc, status, code, queue)
                for proc, (status, code) in enumerate(states)]

    @staticmethod
    def _ad(cluster: int, proc: int, status: int, code: int | None,
            queue: str) -> Mapping[str, Any]:
        return {"ClusterId": cluster, "ProcId": proc, "JobStatus": status, "ExitCode": code,
                "Owner": "apf", "MATCH_APF_QUEUE": queue, "RequestCpus": 1,
                "RequestMemory": 2000}

    def query(self, constraint: str, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        return self._pilots(ended=False)

    def history(self, constraint: str,
                projection: Sequence[str]) -> list[Mapping[str, Any]]:
        return self._pilots(ended=True)

    def slots(self, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        return []

    def daemon_ads(self, daemon: str, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        """The factory's schedd, a third busy; a factory's pool has no negotiator."""
        if daemon != "schedd":
            return []
        return [{"Name": self.name, "RecentDaemonCoreDutyCycle": 0.31, "MaxJobsRunning": 10000,
                 "TotalRunningJobs": 0, "TotalIdleJobs": 0, "TotalHeldJobs": 0}]


class SimulatedFactory(HTCondorSource):
    def __init__(self, grid: SimulatedGrid, rules: RuleSet, apf_rules: RuleSet):
        self.factory_pool = _FactoryPool(grid)
        super().__init__(default_section(HtcondorSection, cluster="sim-apf",
                                         group_by=("Owner",),
                                         factory_schedds=(self.factory_pool.name,)),
                         rules, apf_rules, self.factory_pool)

    def collect(self, slot: datetime) -> Collection:
        self.factory_pool.slot = slot
        return super().collect(slot)


def _batch_sources(grid: SimulatedGrid, rules: Mapping[str, RuleSet]) -> list[Source]:
    """The simulated grid's Harvester, its Slurm cluster and its AutoPyFactory schedd."""
    return [SimulatedHarvester(grid, rules["harvester"]),
            SimulatedSlurm(rules["slurm"], rules["slurm_nodes"], grid),
            SimulatedFactory(grid, rules["htcondor"], rules["apf"])]


def _job_stats(grid: SimulatedGrid, rules: Mapping[str, RuleSet]) -> list[Source]:
    """The simulated grid's PanDA job statistics."""
    return [SimulatedJobStats(grid)]


@dataclass(frozen=True)
class SimulatedSpec:
    """A source of the simulated grid, declared beside qmonit/sources/registry.py's real
    ones: this stage comes after the sources, and its builder takes the grid its sources
    (and the topology and DAOD of `qmonit demo`) share. No rule sets of its own: it maps
    with the real sources' rules."""

    name: str
    measures: tuple[str, ...]
    build: Callable[[SimulatedGrid, Mapping[str, RuleSet]], list[Source]]


SIMULATED = (
    SimulatedSpec("simulated", ("jobs",), _job_stats),
    SimulatedSpec("simulated_batch", ("workers", "batch_jobs", "batch_nodes",
                                      "batch_partitions"), _batch_sources),
)
