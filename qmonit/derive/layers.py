"""Which layer under PanDA is likely at fault for a finding, with the evidence that says so.

A shifter has to send a ticket to the right people: PanDA (the queue is not brokered to, or
no work is: running falls with no job activated for it),
the pilot factory (Harvester or AutoPyFactory submits no pilots, or they fail), the batch
system or site (pilots wait in its queue, or run while PanDA's jobs do not, or jobs fail
there) or qmonit's own monitoring (a source it cannot read). The evidence is what qmonit
collected this cycle: CRIC's status, and per factory and label (panda_queue) the pilots
queued, running, done and failed (`factory_labels`). Where that data is missing the layer
is "unknown", never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qmonit.derive.rules import NOT_RUNNING_STATES, Finding

PANDA, FACTORY, SITE, MONITORING, UNKNOWN = ("panda", "pilot factory", "batch/site",
                                             "monitoring", "unknown")
LAYERS = (PANDA, FACTORY, SITE, MONITORING, UNKNOWN)
FAULTS_MANY = 5  # at least this many failed pilots, and more than finished: the factory's
LAYER_STATUSES = ("running", "activated", "assigned")  # the queue's counts attribute reads


@dataclass(frozen=True)
class Layer:
    name: str
    evidence: str


@dataclass(frozen=True)
class Pilots:
    """One queue's pilots this cycle, summed over the factories that serve it."""

    factories: str  # "CERN_central_A (harvester)", ...
    queued: float
    running: float
    done: float
    failed: float

    @classmethod
    def of(cls, rows: Iterable[Mapping]) -> Pilots | None:
        rows = list(rows)
        if not rows:
            return None
        return cls(", ".join(sorted(f"{r['factory']} ({r['factory_type']})" for r in rows)),
                   sum(r["created"] for r in rows), sum(r["running"] + r["exiting"] for r in rows),
                   sum(r["done"] for r in rows), sum(r["fault"] for r in rows))


def attribute(finding: Finding, queue_status: str | None, pilots: Pilots | None,
              pilots_stale: bool, panda: Mapping[str, float], batch: str = "") -> Layer:
    """The likely layer of a violated finding (see the module's docstring); `panda`: the
    queue's job counts this cycle per job_status, over its prod_sources and resources;
    `batch`: what the batch cluster of its site shows wrong (batch_health), said as evidence
    when the layer is the batch system or site."""
    layer = _attribute(finding, queue_status, pilots, pilots_stale, panda)
    if layer.name == SITE and batch:
        return Layer(SITE, f"{layer.evidence}; the batch system: {batch}")
    return layer


def _attribute(finding: Finding, queue_status: str | None, pilots: Pilots | None,
               pilots_stale: bool, panda: Mapping[str, float]) -> Layer:
    queue, rule = finding.key[0], finding.rule
    if queue.startswith("source:"):
        return Layer(MONITORING, f"qmonit cannot read {queue[len('source:'):]}: "
                     f"{finding.reason}")
    if queue_status in NOT_RUNNING_STATES:
        return Layer(PANDA, f"CRIC status {queue_status}: PanDA does not broker jobs to it")
    if rule == "stale":  # the queue: PanDA stopped listing it
        return Layer(PANDA, "PanDA lists no jobs for the queue any more")
    if rule == "backlog":
        if finding.metric.startswith("assigned"):
            return Layer(PANDA, "jobs assigned to the queue wait for their input data or "
                         "dispatch")
        return Layer(SITE, "jobs wait for their outputs to be transferred (the site's "
                     "storage)")
    if rule == "drop" and panda.get("activated", 0.0) == 0:
        # no job waits for the queue's pilots: they run out of work, the site is not at fault
        return Layer(PANDA, "no work brokered: 0 jobs activated for the queue, "
                     f"{panda.get('assigned', 0.0):.0f} assigned")
    if pilots is None:
        return Layer(UNKNOWN, "pilot data stale this cycle" if pilots_stale else
                     "no pilot factory reports this queue")
    p = pilots
    counts = (f"{p.factories}: {p.queued:.0f} pilots queued, {p.running:.0f} running, "
              f"{p.done:.0f} done, {p.failed:.0f} failed")
    if p.failed >= FAULTS_MANY and p.failed > p.done:
        return Layer(FACTORY, f"pilots fail: {counts}")
    if rule == "failing":
        return Layer(SITE, f"jobs fail at the site, its pilots do not: {counts}")
    if p.queued + p.running == 0:
        return Layer(FACTORY, f"no pilots submitted: {counts}")
    if p.queued > p.running:
        return Layer(SITE, f"pilots wait in the batch system: {counts}")
    return Layer(SITE, f"pilots run but PanDA runs {panda.get('running', 0.0):.0f} jobs: "
                 f"{counts}")
