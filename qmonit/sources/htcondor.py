"""HTCondor: job counts per schedd, slot use per node, and APF pilots, via the v2 bindings.

Schedds (named, or every one the collector knows) are asked with a projection, never by
parsing text. Jobs are counted by the configured attributes (Owner -> owner,
AccountingGroup -> group, x509UserProxyVOName -> vo); a factory schedd's pilots also go
to `workers` with APF's states, plus done and fault over the last hour from the schedd
history. A schedd that does not answer is an error for that schedd only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from qmonit.core.batchjobs import (
    BatchJob,
    BatchNode,
    count_jobs,
    map_states,
    node_samples,
    sane_jobs,
)
from qmonit.core.config import Config
from qmonit.core.sample import Sample, make_sample
from qmonit.core.settings import HtcondorSection
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import Collection, Source, SourceError
from qmonit.support.clock import Clock, SystemClock

log = logging.getLogger(__name__)

SCHEDULER = "htcondor"
JOB_STATUS = {1: "Idle", 2: "Running", 3: "Removing", 4: "Completed", 5: "Held",
              6: "TransferringOutput", 7: "Suspended"}
TAG_NAMES = {"Owner": "owner", "AccountingGroup": "group", "x509UserProxyVOName": "vo"}
JOB_PROJECTION = ("ClusterId", "ProcId", "JobStatus", "LastJobStatus", "HoldReasonCode",
                  "EnteredCurrentStatus", "QDate", "JobStartDate", "CompletionDate",
                  "RequestCpus", "RequestGpus", "RequestMemory", "RemoteHost", "ExitCode",
                  # what the default RequestMemory expression refers to: without them it
                  # evaluates to Undefined in a projected ad (0 MB for every job)
                  "MemoryUsage", "ResidentSetSize", "ImageSize")
SLOT_PROJECTION = ("Machine", "Name", "SlotType", "State", "Activity", "Cpus",
                   "TotalSlotCpus", "Gpus", "TotalSlotGpus")
# APF's pilot states from a factory schedd's JobStatus
APF_STATES = {"Idle": "created", "Running": "running", "Removing": "exiting",
              "TransferringOutput": "exiting", "Held": "fault", "Suspended": "running"}
HISTORY_S = 3600


class Schedd(Protocol):
    name: str

    def query(self, constraint: str, projection: Sequence[str]) -> list[Mapping[str, Any]]: ...

    def history(self, constraint: str,
                projection: Sequence[str]) -> list[Mapping[str, Any]]: ...


class Pool(Protocol):
    def schedds(self) -> list[Schedd]: ...

    def slots(self, projection: Sequence[str]) -> list[Mapping[str, Any]]: ...

    def daemon_ads(self, daemon: str, projection: Sequence[str]
                   ) -> list[Mapping[str, Any]]: ...  # the pool's schedd or negotiator ads


def tag_name(attribute: str) -> str:
    if attribute in TAG_NAMES:
        return TAG_NAMES[attribute]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", attribute).lower()


def value(ad: Mapping[str, Any], attribute: str) -> Any:
    """An attribute's evaluated value; None when missing, undefined or an error.

    classad2.Value.Undefined equals 2 (the Running status), so a Value is never a number.
    """
    if attribute not in ad:
        return None
    try:
        found = ad.eval(attribute) if hasattr(ad, "eval") else ad[attribute]
    except Exception:  # noqa: BLE001 - an expression that does not evaluate is missing data
        return None
    if type(found).__name__ == "Value" or found is None:
        return None
    return found


def number(ad: Mapping[str, Any], attribute: str) -> float | None:
    found = value(ad, attribute)
    if isinstance(found, bool) or not isinstance(found, (int, float)):
        return None
    return float(found)


def _when(ad: Mapping[str, Any], attribute: str) -> datetime | None:
    seconds = number(ad, attribute)
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def job_from_ad(ad: Mapping[str, Any], schedd: str, group_by: Sequence[str],
                label_attribute: str = "") -> BatchJob:
    """One job ad -> BatchJob; raises ValueError naming what is wrong (an infinite
    ClusterId or JobStatus, a QDate of 1e30 too: one job, not the schedd's whole answer)."""
    try:
        return _job_from_ad(ad, schedd, group_by, label_attribute)
    except (OverflowError, OSError) as exc:  # int(inf), a time past time_t
        raise ValueError(f"a number out of range: {exc}") from None


def _job_from_ad(ad: Mapping[str, Any], schedd: str, group_by: Sequence[str],
                 label_attribute: str) -> BatchJob:
    status = number(ad, "JobStatus")
    if status is None or int(status) not in JOB_STATUS:
        raise ValueError(f"JobStatus {value(ad, 'JobStatus')!r} is not 1-7")
    last = number(ad, "LastJobStatus")
    hold = number(ad, "HoldReasonCode")
    texts = {attr: str(value(ad, attr) or "") for attr in group_by}
    extra = tuple((tag_name(attr), texts[attr] or "none") for attr in group_by
                  if attr not in ("Owner", "AccountingGroup"))
    if label_attribute:
        extra += (("panda_queue", str(value(ad, label_attribute) or "unknown")),)
    state = JOB_STATUS[int(status)]
    entered = _when(ad, "EnteredCurrentStatus")
    return BatchJob(
        job_id=f"{schedd}#{int(number(ad, 'ClusterId') or 0)}.{int(number(ad, 'ProcId') or 0)}",
        owner=texts.get("Owner", ""), group=texts.get("AccountingGroup", ""), partition=schedd,
        native_state=state, reason=str(int(hold)) if hold is not None and state == "Held" else "",
        substate=JOB_STATUS.get(int(last), "") if last is not None else "",
        worker=str(value(ad, "RemoteHost") or ""), submit_time=_when(ad, "QDate"),
        start_time=entered if state != "Idle" else None,
        end_time=_when(ad, "CompletionDate") or (entered if state == "Removing" else None),
        cpus=number(ad, "RequestCpus") or 0.0, gpus=number(ad, "RequestGpus") or 0.0,
        memory_mb=number(ad, "RequestMemory") or 0.0, extra=extra)


def nodes_from_slots(slots: Iterable[Mapping[str, Any]]) -> list[BatchNode]:
    """Startd slot ads (static, partitionable and dynamic) -> one BatchNode per machine.

    A partitionable slot holds the machine's resources (TotalSlotCpus) and what is left
    (Cpus); its dynamic slots are the jobs, not more resources, so they only count jobs.
    """
    machines: dict[str, dict[str, Any]] = {}
    for ad in slots:
        machine = str(value(ad, "Machine") or value(ad, "Name") or "unknown")
        acc = machines.setdefault(machine, {"cpus": 0.0, "alloc": 0.0, "gpus": 0.0,
                                            "gpus_alloc": 0.0, "jobs": 0.0, "states": set()})
        kind = str(value(ad, "SlotType") or "Static")
        state = str(value(ad, "State") or "Unknown")
        cpus = number(ad, "Cpus") or 0.0
        gpus = number(ad, "Gpus") or 0.0
        if state == "Claimed":
            acc["jobs"] += 1
        if kind == "Dynamic":
            continue
        acc["states"].add(state)
        if kind == "Partitionable":
            total, total_gpus = number(ad, "TotalSlotCpus") or cpus, \
                number(ad, "TotalSlotGpus") or gpus
            acc["cpus"] += total
            acc["alloc"] += total - cpus
            acc["gpus"] += total_gpus
            acc["gpus_alloc"] += total_gpus - gpus
        else:
            acc["cpus"] += cpus
            acc["gpus"] += gpus
            if state == "Claimed":
                acc["alloc"] += cpus
                acc["gpus_alloc"] += gpus
    out = []
    for machine, acc in machines.items():
        if acc["states"] & {"Drained", "Owner"}:
            node_state = "drained" if "Drained" in acc["states"] else "owner"
        elif acc["alloc"] <= 0:
            node_state = "idle"
        elif acc["alloc"] >= acc["cpus"]:
            node_state = "allocated"
        else:
            node_state = "mixed"
        out.append(BatchNode(machine, node_state, acc["cpus"], acc["alloc"], acc["gpus"],
                             acc["gpus_alloc"], acc["jobs"]))
    return out


def pilot_samples(jobs: Iterable[BatchJob], ended: Iterable[Mapping[str, Any]], factory: str,
                  label_attribute: str, rules: RuleSet, slot: datetime) -> list[Sample]:
    """A factory's pilots per label and APF state; done and fault over the last hour."""
    counts: dict[tuple[str, str], float] = {}
    for job in jobs:
        label = dict(job.extra).get("panda_queue", "unknown")
        apf_state = "done" if job.native_state == "Completed" else \
            APF_STATES.get(job.native_state, "fault")
        counts[(label, apf_state)] = counts.get((label, apf_state), 0.0) + 1
    for label in {lbl for lbl, _ in counts}:
        for apf_state in ("done", "fault"):
            counts.setdefault((label, apf_state), 0.0)
    for ad in ended:
        label = str(value(ad, label_attribute) or "unknown")
        good = number(ad, "JobStatus") == 4 and number(ad, "ExitCode") == 0
        key = (label, "done" if good else "fault")
        counts[key] = counts.get(key, 0.0) + 1
    return [make_sample("workers", {"factory": factory, "factory_type": "apf",
                                    "panda_queue": label, "job_type": "pilot",
                                    "resource_type": "unknown", "worker_status": apf_state,
                                    "state": rules.map(apf_state).state},
                        {"workers": count}, slot)
            for (label, apf_state), count in sorted(counts.items())]


class HTCondorSource:
    name = "htcondor"

    def __init__(self, settings: HtcondorSection, rules: RuleSet, apf_rules: RuleSet,
                 pool: Pool | None = None, clock: Clock | None = None):
        self.cluster = settings.cluster
        self.group_by = settings.group_by
        self.factories = set(settings.factory_schedds)
        self.label_attribute = settings.label_attribute
        self.rules = rules
        self.apf_rules = apf_rules
        self.pool = pool or BindingsPool(settings)
        self.clock = clock or SystemClock()  # how long a job has been in its state

    @property
    def origin(self) -> str:
        return f"HTCondor pool of cluster {self.cluster}"

    def collect(self, slot: datetime) -> Collection:
        now = self.clock.now()
        mapped_jobs: list[BatchJob] = []  # every schedd's, with their states
        out = Collection(jobs=mapped_jobs, cluster=self.cluster)
        try:
            schedds = self.pool.schedds()
        except Exception as exc:  # noqa: BLE001 - the bindings raise HTCondorException
            raise SourceError(f"HTCondor collector: {exc}") from None
        answered = 0
        since = int(now.timestamp()) - HISTORY_S  # factory pilots ended within the hour
        for schedd in schedds:
            factory = schedd.name in self.factories
            label = self.label_attribute if factory else ""
            projection = [*JOB_PROJECTION, *self.group_by, *([label] if label else [])]
            try:
                ads = schedd.query("true", projection)
                ended = schedd.history(f"EnteredCurrentStatus >= {since}", projection) \
                    if factory else []
            except Exception as exc:  # noqa: BLE001 - HTCondorException and transport errors
                out.problems.append(f"HTCondor schedd {schedd.name}: {exc}; its jobs are not "
                                    f"counted this cycle")
                continue
            answered += 1
            jobs = []
            for ad in ads:
                try:
                    jobs.append(job_from_ad(ad, schedd.name, self.group_by, label))
                except ValueError as exc:
                    out.problems.append(f"HTCondor schedd {schedd.name}: job "
                                        f"{value(ad, 'ClusterId')}.{value(ad, 'ProcId')}: "
                                        f"{exc}; skipped")
            jobs = sane_jobs(jobs, f"HTCondor schedd {schedd.name}", out.problems)
            mapped = map_states(jobs, self.rules, now)
            mapped_jobs += mapped
            out.samples += count_jobs(mapped, self.cluster, SCHEDULER, slot)
            if factory:
                out.samples += pilot_samples(mapped, ended, schedd.name, label, self.apf_rules,
                                             slot)
        if schedds and not answered:
            raise SourceError(f"HTCondor: no schedd answered: {'; '.join(out.problems)}")
        try:
            out.samples += node_samples(nodes_from_slots(self.pool.slots(SLOT_PROJECTION)),
                                        self.cluster, SCHEDULER, slot)
        except Exception as exc:  # noqa: BLE001
            out.problems.append(f"HTCondor collector: slot ads: {exc}; batch_nodes not written")
        out.samples += self.daemon_health(slot, out.problems)
        return out

    def daemon_health(self, slot: datetime, problems: list[str]) -> list[Sample]:
        """The schedds' and the negotiator's own ads (duty cycle, jobs, negotiation cycle)
        as `batch_scheduler`; a pool without a negotiator (a factory's) has none to say."""
        from qmonit.sources import scheduler_health as health

        out: list[Sample] = []
        for daemon, specs in health.DAEMON_SPECS.items():
            origin = f"HTCondor collector: {daemon} ads"
            try:
                ads = self.pool.daemon_ads(daemon, ["Name", *(spec.key for spec in specs)])
                if ads:
                    samples, skipped = health.daemon_ad_samples(ads, daemon, self.cluster,
                                                                origin, slot)
                    out += samples
                    problems += skipped
            except SourceError as exc:
                problems.append(f"{exc}; batch_scheduler not written for the {daemon}")
            except Exception as exc:  # noqa: BLE001 - HTCondorException and transport errors
                problems.append(f"{origin}: {exc}; batch_scheduler not written for the "
                                f"{daemon}")
        return out


class BindingsPool:
    """The real pool through htcondor2, imported on first use."""

    def __init__(self, settings: HtcondorSection):
        self.collector_host = settings.collector or None
        self.names = settings.schedds

    def _collector(self) -> tuple[Any, Any]:  # (the htcondor2 module, its Collector)
        import htcondor2

        return htcondor2, htcondor2.Collector(self.collector_host)

    def schedds(self) -> list[Schedd]:
        htcondor2, collector = self._collector()
        if self.names:
            ads = [collector.locate(htcondor2.DaemonType.Schedd, name) for name in self.names]
        else:
            ads = collector.locateAll(htcondor2.DaemonType.Schedd)
        return [BindingsSchedd(str(ad.get("Name")), htcondor2.Schedd(ad)) for ad in ads]

    def slots(self, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        htcondor2, collector = self._collector()
        return collector.query(htcondor2.AdType.Startd, projection=list(projection))

    def daemon_ads(self, daemon: str, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        htcondor2, collector = self._collector()
        kind = {"schedd": htcondor2.AdType.Schedd,
                "negotiator": htcondor2.AdType.Negotiator}[daemon]
        return collector.query(kind, projection=list(projection))


class BindingsSchedd:
    def __init__(self, name: str, schedd: Any):
        self.name = name
        self.schedd = schedd

    def query(self, constraint: str, projection: Sequence[str]) -> list[Mapping[str, Any]]:
        return self.schedd.query(constraint=constraint, projection=list(projection))

    def history(self, constraint: str,
                projection: Sequence[str]) -> list[Mapping[str, Any]]:
        return self.schedd.history(constraint=constraint, projection=list(projection))


def from_config(cfg: Config, rules: Mapping[str, RuleSet], clock: Clock) -> list[Source]:
    """The registry's builder: one HTCondor pool (its schedds, factories and slots)."""
    return [HTCondorSource(cfg.settings.htcondor, rules["htcondor"], rules["apf"],
                           clock=clock)]
