"""A simulated grid with the shapes of PanDA and CRIC, so the whole pipeline runs with no server.

Deterministic: the topology depends only on the seed, and the counts of a slot
only on (seed, queue, slot), so any slot can be produced in any order. The grid
has a daily rhythm and, every day at fixed hours, a few incidents: a draining
site, a queue that goes offline (and drops out of PanDA's answer), a failure
burst, a queue whose pilots stop arriving, and a 20-minute PanDA outage.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from qmonit.core.model import PANDA_ALWAYS_PRESENT
from qmonit.core.sample import epoch_seconds
from qmonit.sources.base import Collection, SourceError
from qmonit.sources.cric import Topology, parse_pandaqueues
from qmonit.sources.daod import RseVolume, parse_msearch
from qmonit.sources.panda import parse_job_stats

CLOUDS = {
    "CERN": ["Switzerland"], "DE": ["Germany", "Poland", "Czechia", "Austria"],
    "FR": ["France", "Romania", "Japan", "China"], "IT": ["Italy"],
    "ND": ["Norway", "Sweden", "Denmark", "Slovenia"], "NL": ["Netherlands", "Israel", "Greece"],
    "ES": ["Spain", "Portugal", "Argentina"], "UK": ["United Kingdom"], "US": ["USA"],
    "CA": ["Canada"], "TW": ["Taiwan"],
}
SCALES = {"small": 80, "atlas": 340}  # sites; about 2.4 queues a site
OFFLINE_STATES = ("offline", "test", "brokeroff")


@dataclass(frozen=True)
class Incident:
    kind: str  # drain | offline | failures | no_pilots | outage; scenarios (see
    #            scenario_incidents): sharp_drain | slow_drain | noisy | rhythmic |
    #            rhythm_drain | resource_shift | no_work | assigned_backlog |
    #            transfer_backlog | pilots_failing | pilots_queued | controller_stalled |
    #            mass_drain
    panda_queue: str | None
    start_h: float  # hour of every UTC day
    hours: float
    only_on: date | None = None  # that UTC day only (a replay's judged day), not every day

    def active(self, slot: datetime) -> bool:
        if self.only_on is not None and slot.date() != self.only_on:
            return False
        hour = slot.hour + slot.minute / 60
        return self.start_h <= hour < self.start_h + self.hours


@dataclass(frozen=True)
class SimQueue:
    record: dict[str, Any]
    capacity: int  # running jobs at the daily mean
    labels: tuple[str, ...]
    resources: tuple[str, ...]


SLOW_RAMP_H = 1.0  # a slow drain (and a queue out of work) takes this long to reach 10 %
RHYTHM_AMPLITUDE = 0.35  # a rhythmic scenario queue's daily swing
SHIFTED = 0.2  # a resource_shift leaves this share of a unified queue's first resource's jobs
# PanDA's side of the incidents whose pilots do not arrive (the factory's side differs)
# pilots wait in the batch system: on their own, or as its controller stalls or its nodes
# drain (the simulated Slurm shows the last two: qmonit.simulation.batch)
IN_BATCH = frozenset({"pilots_queued", "controller_stalled", "mass_drain"})
BATCH_WIDE = ("controller_stalled", "mass_drain")  # what the whole cluster shows
STARVED = frozenset({"no_pilots", "pilots_failing"}) | IN_BATCH
EVERY_DAY = ("noisy", "rhythmic")  # scenarios that are a queue's nature, not one day's


class SimulatedGrid:
    def __init__(self, seed: int = 1, scale: str = "small", sites: int | None = None):
        self.seed = seed
        self.scale = scale
        self.sites = sites or SCALES[scale]
        self.queues = self._make_queues(random.Random(f"qmonit-topology:{seed}:{scale}"))
        # the topology depends on the scale, not on how many sites are cut from it
        self.incidents = self._make_incidents(random.Random(f"qmonit-incidents:{seed}"))
        self._stats: tuple[datetime, dict[str, Any]] | None = None  # the last slot's, kept:
        # PanDA and Harvester both read it each cycle

    # -- topology ---------------------------------------------------------------------------

    def _make_queues(self, rng: random.Random) -> dict[str, SimQueue]:
        queues: dict[str, SimQueue] = {}
        clouds = sorted(CLOUDS)
        big = self.scale == "atlas"
        for number in range(self.sites):
            cloud = clouds[number % len(clouds)]
            country = rng.choice(CLOUDS[cloud])
            site = f"{cloud}-SITE{number:03d}"
            tier = "T1" if number < len(clouds) else rng.choice(["T2D", "T2D", "T2", "T3"])
            size = {"T1": 4000, "T2D": 1500, "T2": 600, "T3": 120}[tier] * rng.uniform(0.5, 1.5)
            corepower = round(rng.uniform(8, 16), 2)
            kinds = ["unified"] if big else ["production"]
            if rng.random() < 0.7:
                kinds.append("analysis")
            if rng.random() < 0.6:
                kinds.append("mcore")
            for kind in kinds:
                name, qtype, labels, resources, corecount = {
                    "production": (f"{site}", "production", ("managed",), ("SCORE",), 1),
                    "unified": (f"{site}_UCORE", "unified",
                                ("managed", "user", "ptest", "rc_test2"),
                                ("SCORE", "SCORE_HIMEM", "MCORE", "MCORE_HIMEM"), 8),
                    "analysis": (f"ANALY_{site}", "analysis", ("user",),
                                 ("SCORE", "SCORE_HIMEM") if big else ("SCORE",), 1),
                    "mcore": (f"{site}_MCORE", "production", ("managed",),
                              ("MCORE", "MCORE_HIMEM") if big else ("MCORE",), 8),
                }[kind]
                status = "online" if rng.random() > 0.03 else rng.choice(["test", "brokeroff"])
                record = {
                    "panda_resource": name, "atlas_site": site, "cloud": cloud,
                    "country": country, "tier": tier, "tier_level": int(tier[1]),
                    "status": status, "site_state": "ACTIVE", "type": qtype,
                    "resource_type": "GRID",
                    "corecount": corecount, "corepower": corepower,
                    "pilot_manager": "Harvester", "harvester": f"CERN_central_{number % 3}",
                    "rc": f"{country}-{site}", "astorages": {"read_lan": [f"{site}_DATADISK"]},
                }
                share = size * (0.3 if kind == "analysis" else 1.0) / (corecount ** 0.5)
                queues[name] = SimQueue(record, max(5, int(share)), labels, resources)
        return queues

    def _make_incidents(self, rng: random.Random) -> list[Incident]:
        """Staggered over the day on different queues, so at any hour one queue is draining,
        one has no pilots arriving and one is failing; plus a queue that goes offline and a
        20-minute PanDA outage every day at 12:00."""
        online = sorted(n for n, q in self.queues.items() if q.record["status"] == "online"
                        and q.capacity >= 200)
        chosen = iter(rng.sample(online, 4 + 3 + 6 + 1))
        incidents = [Incident("drain", next(chosen), 6.0 * i, 6.0) for i in range(4)]
        incidents += [Incident("no_pilots", next(chosen), 8.0 * i, 8.0) for i in range(3)]
        incidents += [Incident("failures", next(chosen), 4.0 * i, 4.0) for i in range(6)]
        incidents.append(Incident("offline", next(chosen), 1.0, 6.0))
        incidents.append(Incident("outage", None, 12.0, 1 / 3))
        return incidents

    @property
    def harvester_queues(self) -> list[str]:
        """The queues Harvester serves (every third by name; while PanDA lists them)."""
        return sorted(self.queues)[::3]

    @property
    def apf_queues(self) -> list[str]:
        """The queues the AutoPyFactory schedd serves: the first 40 by name."""
        return sorted(self.queues)[:40]

    def stage_replay(self, day: date) -> None:
        """Set the grid up for a detection replay judged on `day`: the scenario incidents
        added, every incident on that day only (a daily one would be the queue's rhythm to a
        time-of-day baseline) but the ones that are a queue's nature (EVERY_DAY), and the
        resource_shift queue made unified: two resources (its own and its _HIMEM) every
        day."""
        scenarios = self.scenario_incidents()
        self.incidents = [i if i.kind in EVERY_DAY else replace(i, only_on=day)
                          for i in self.incidents + scenarios]
        for incident in scenarios:
            if incident.kind == "resource_shift" and incident.panda_queue is not None:
                queue = self.queues[incident.panda_queue]
                [resource] = queue.resources  # the small grid's: one per queue
                self.queues[incident.panda_queue] = replace(
                    queue, resources=(resource, f"{resource}_HIMEM"))

    def scenario_incidents(self) -> list[Incident]:
        """More labelled incidents, for the detection replay (benchmarks/detection.py), on
        queues none of the daily ones use: a sharp drain (running to 2 % at once), a slow
        one (to 10 % over SLOW_RAMP_H), and a trap: a mid-volume queue (50-150 running)
        whose every count is 45 % above or below its level at random, all day; two queues
        with a strong daily rhythm (RHYTHM_AMPLITUDE, peak at 15:00; a trap) of which one
        falls to 40 % of its level around its peak (rhythm_drain: 47 % below its day's
        median, 60 % below what that hour runs). Then one incident per layer that fails on
        its own, on queues only Harvester serves (its workers tell the layer): PanDA brokers
        no work (no_work: activated and assigned 0, running falls as slow_drain's), jobs
        assigned wait for their input (assigned_backlog: 20 times the usual), outputs wait
        for transfer (transfer_backlog: 50 times), pilots fail (pilots_failing) or wait in
        the batch system (pilots_queued) while jobs wait for them; and a trap on a unified
        queue: its jobs move from one resource to the other (resource_shift; the total
        stays).
        A replay makes them happen on its judged day (stage_replay)."""
        taken = {i.panda_queue for i in self.incidents}
        rng = random.Random(f"qmonit-scenarios:{self.seed}")
        online = sorted(n for n, q in self.queues.items() if q.record["status"] == "online"
                        and n not in taken)
        big = [n for n in online if self.queues[n].capacity >= 200]
        middle = [n for n in online if 50 <= self.queues[n].capacity <= 150]
        sharp, slow, rhythmic, drained = rng.sample(big, 4)
        noisy = rng.choice(middle)
        out = [Incident("sharp_drain", sharp, 3.0, 4.0), Incident("slow_drain", slow, 14.0, 5.0),
               Incident("noisy", noisy, 0.0, 24.0),
               Incident("rhythmic", rhythmic, 0.0, 24.0), Incident("rhythmic", drained, 0.0, 24.0),
               Incident("rhythm_drain", drained, 14.0, 3.0)]
        used = {sharp, slow, noisy, rhythmic, drained}
        apf = set(self.apf_queues)
        harvested = sorted(set(self.harvester_queues) & set(big) - apf - used)
        no_work, assigned, transfer, failing, queued, shifted = rng.sample(harvested, 6)
        # the batch layer's own failures, whose pilots wait as pilots_queued's: the
        # controller stalls (its agent queue 15,000 deep), the cluster's nodes drain
        rest = sorted(set(harvested) - {no_work, assigned, transfer, failing, queued, shifted})
        stalled, drained_out = rng.sample(rest, 2)
        return out + [Incident("controller_stalled", stalled, 12.0, 2.0),
                      Incident("mass_drain", drained_out, 15.0, 2.0),
                      Incident("no_work", no_work, 5.0, 4.0),
                      Incident("assigned_backlog", assigned, 9.0, 3.0),
                      Incident("transfer_backlog", transfer, 17.0, 3.0),
                      Incident("pilots_failing", failing, 7.0, 4.0),
                      Incident("pilots_queued", queued, 19.0, 4.0),
                      Incident("resource_shift", shifted, 10.0, 6.0)]

    def batch_state(self, slot: datetime) -> set[str]:
        """The cluster-wide batch failures active at `slot` (BATCH_WIDE)."""
        return {i.kind for i in self.incidents if i.kind in BATCH_WIDE and i.active(slot)}

    def incidents_at(self, kind: str, slot: datetime) -> list[Incident]:
        return [i for i in self.incidents if i.kind == kind and i.active(slot)]

    def incident(self, kind: str) -> Incident:
        """The first incident of a kind (the earliest in the day)."""
        return next(i for i in self.incidents if i.kind == kind)

    def active_incidents(self, queue: str, slot: datetime) -> set[str]:
        """The kinds of incident on `queue` at `slot`."""
        return self._active(queue, slot)

    def _active(self, queue: str, slot: datetime) -> set[str]:
        return {i.kind for i in self.incidents if i.panda_queue == queue and i.active(slot)}

    def pandaqueues(self, slot: datetime) -> dict[str, Any]:
        """CRIC's PanDA-queue answer at `slot` (an offline incident changes the status)."""
        out = {}
        for name, queue in self.queues.items():
            record = dict(queue.record)
            if "offline" in self._active(name, slot):
                record["status"] = "offline"
            out[name] = record
        return out

    # -- job statistics ---------------------------------------------------------------------

    def job_stats(self, slot: datetime) -> dict[str, Any]:
        """PanDA's inner statistics dict at `slot` (not to be changed: the next reader of the
        same slot gets it too); raises SourceError during an outage."""
        if self.incident("outage").active(slot):
            raise SourceError("simulated PanDA: HTTP 503: service unavailable (simulated outage)")
        if self._stats is None or self._stats[0] != slot:
            self._stats = (slot, self._job_stats(slot))
        return self._stats[1]

    def _job_stats(self, slot: datetime) -> dict[str, Any]:
        hour = slot.hour + slot.minute / 60
        rhythm = 1 + 0.15 * math.sin(2 * math.pi * (hour - 9) / 24)
        stamp = epoch_seconds(slot)
        data: dict[str, Any] = {}
        for name, queue in self.queues.items():
            active = self._active(name, slot)
            if "offline" in active:
                continue  # an offline queue drops out of PanDA's answer
            rng = random.Random(f"{self.seed}:{name}:{stamp}")
            factor = self._scenario_factor(name, slot, hour, rng) if active else 1.0
            by_label: dict[str, Any] = {}
            for label in queue.labels:
                by_resource = {}
                for number, resource in enumerate(queue.resources):
                    level = queue.capacity * rhythm / len(queue.resources) / len(queue.labels)
                    shift = 1.0
                    if "resource_shift" in active:  # the first resource's jobs move on
                        shift = SHIFTED if number == 0 else \
                            1 + (1 - SHIFTED) / (len(queue.resources) - 1)
                    by_resource[resource] = self._statuses(rng, level, active, queue.record,
                                                           factor * shift)
                by_label[label] = by_resource
            data[name] = by_label
        return data

    def _scenario_factor(self, queue: str, slot: datetime, hour: float,
                         rng: random.Random) -> float:
        """Running's share of its level under scenario incidents (1 without one)."""
        factor = 1.0
        for incident in self.incidents:
            if incident.panda_queue != queue or not incident.active(slot):
                continue
            if incident.kind == "sharp_drain":
                factor *= 0.02
            elif incident.kind in ("slow_drain", "no_work"):
                factor *= 1 - 0.9 * min(1.0, (hour - incident.start_h) / SLOW_RAMP_H)
            elif incident.kind == "noisy":
                factor *= rng.choice((0.55, 1.45))
            elif incident.kind == "rhythmic":  # on top of the grid's own 15 %
                factor *= 1 + RHYTHM_AMPLITUDE * math.sin(2 * math.pi * (hour - 9) / 24)
            elif incident.kind == "rhythm_drain":
                factor *= 0.4
        return factor

    @staticmethod
    def _statuses(rng: random.Random, level: float, active: set[str],
                  record: dict[str, Any], factor: float = 1.0) -> dict[str, int]:
        def around(mean: float, spread: float = 0.05) -> int:
            return max(0, round(rng.gauss(mean, max(1.0, mean * spread) ** 0.5 + mean * spread)))

        if record["status"] != "online":
            level *= 0.02
        running = around(level * factor)
        activated = around(level * 0.25)
        if "drain" in active:
            running = around(level * 0.1)
        if active & STARVED:
            running, activated = around(level * 0.03), around(level * 1.5)
        if "no_work" in active:
            activated = 0
        finished = around(level / 6)
        failed = around(finished * 0.04)
        if "failures" in active:
            failed = around(finished * 1.5)
        counts = {
            "assigned": around(level * 0.05), "activated": activated, "running": running,
            "finished": finished, "failed": failed,
            "starting": around(level * 0.02), "holding": around(level * 0.01),
            "transferring": around(level * 0.01), "merging": around(level * 0.005),
            "defined": around(level * 0.01), "sent": around(level * 0.003),
            "cancelled": around(level * 0.002), "closed": around(level * 0.001),
        }
        if "no_work" in active:
            counts["assigned"] = 0
        if "assigned_backlog" in active:
            counts["assigned"] = around(level)
        if "transfer_backlog" in active:
            counts["transferring"] = around(level * 0.5)
        return {status: n for status, n in counts.items() if n or status in PANDA_ALWAYS_PRESENT}


class SimulatedJobStats:
    """The simulated grid as a PanDA source, parsed by the same code as the real answer."""

    name = "panda"
    origin = "simulated PanDA"

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid

    def collect(self, slot: datetime) -> Collection:
        return parse_job_stats(self.grid.job_stats(slot), slot, "simulated PanDA")


class SimulatedTopology:
    """The simulated grid as CRIC."""

    name = "cric"
    origin = ""  # the grid in this process: nothing to ask

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid

    def probe(self) -> str:
        return "simulated"

    def load(self, slot: datetime) -> Topology:
        queues, _ = parse_pandaqueues(self.grid.pandaqueues(slot), "simulated CRIC")
        return Topology(queues, "fresh", slot, f"{len(queues)} simulated queues")


BYTES_PER_JOB = 2.0e11  # DAOD bytes a datadisk holds per analysis job its site runs
BADLY_PLACED_SHARE = 0.15  # the badly placed datadisk holds this share of its fair bytes


class SimulatedDaod:
    """The simulated grid's DAOD placement as the Rucio accounting index answers
    `_msearch`, parsed by the same code as the real answer: each datadisk holds DAOD in
    proportion to the analysis its site runs, except one (`badly_placed`: the datadisk of
    the site with the most analysis) that holds a fraction of it."""

    name = "daod"
    origin = "simulated DAOD accounting"

    def __init__(self, grid: SimulatedGrid):
        self.grid = grid
        analysis: dict[str, float] = {}
        for queue in grid.queues.values():
            for disk in queue.record["astorages"]["read_lan"]:
                weight = queue.capacity if "user" in queue.labels else 0.0
                analysis[disk] = analysis.get(disk, 0.0) + weight
        self.badly_placed = max(sorted(analysis), key=lambda disk: analysis[disk])
        self.bytes = {disk: BYTES_PER_JOB * max(weight, 20.0) *
                      (BADLY_PLACED_SHARE if disk == self.badly_placed else 1.0)
                      for disk, weight in analysis.items()}

    def answer(self) -> dict[str, Any]:
        buckets = [{"key": disk, "doc_count": 1, "1": {"value": round(size / 2.5e9)},
                    "3": {"value": size}} for disk, size in sorted(self.bytes.items())]
        return {"responses": [{"status": 200, "timed_out": False, "took": 5,
                               "_shards": {"total": 1, "successful": 1, "failed": 0},
                               "hits": {"total": len(buckets), "hits": []},
                               "aggregations": {"4": {"buckets": buckets}}}]}

    def volumes(self, until: datetime) -> tuple[list[RseVolume], list[str]]:
        return parse_msearch(self.answer(), self.origin)
