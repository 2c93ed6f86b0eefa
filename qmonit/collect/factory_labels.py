"""Per factory and label (panda_queue): the pilot counts, a message and whether it is in trouble.

AutoPyFactory's pilots by their own status; Harvester's workers by their common state,
counted as the APF status it corresponds to (HARVESTER_AS_APF), so derive reads one table
for the pilots of every queue whichever factory serves it.

AutoPyFactory posts its own per-label message to its monitor, not to HTCondor, so the
message here is qmonit's account of the same cycle in the monitor's words: PanDA's
activated jobs for the queue, the pilots queued, running and exiting, and done and
fault over the last hour. A label is in trouble when its pilots fault more than they
finish, or when jobs wait and no pilot is queued or running for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from qmonit.core.sample import Sample
from qmonit.stores.sql import naive
from qmonit.stores.state.status import APF_COUNTS

# A Harvester worker's common state, counted as the APF pilot status it corresponds to:
# queued (submitted, ready, idle), running, done and fault (failed, missed).
HARVESTER_AS_APF = {"pending": "created", "running": "running", "completed": "done",
                    "failed": "fault"}
# At least this many faults in the hour, and more faults than done pilots: in trouble.
FAULTS_IN_TROUBLE = 5


def activated_per_queue(job_samples: Iterable[Sample]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in job_samples:
        if s.measurement != "jobs" or ("job_status", "activated") not in s.tags:
            continue  # a sample's tags are (key, value) pairs: no dict for the ~70,000 others
        queue = s.tag("panda_queue")
        if queue is not None:  # PanDA's counts always have one; nothing to add it to else
            out[queue] = out.get(queue, 0.0) + float(s.field("jobs") or 0.0)
    return out


def trouble(counts: dict[str, float], activated: float, kind: str = "apf") -> str:
    """Why a label is in trouble, or "" when it is not."""
    if counts["fault"] >= FAULTS_IN_TROUBLE and counts["fault"] > counts["done"]:
        if kind == "harvester":
            return f"{counts['fault']:.0f} workers failed or missed and {counts['done']:.0f} " \
                   f"finished recently"
        return f"{counts['fault']:.0f} pilots faulted and {counts['done']:.0f} finished in " \
               f"the last hour"
    if activated > 0 and counts["created"] + counts["running"] + counts["exiting"] == 0:
        return f"{activated:.0f} activated jobs but no pilot queued or running"
    return ""


def message(counts: dict[str, float], activated: float, problem: str,
            kind: str = "apf") -> str:
    if kind == "harvester":  # PanDA's worker statistics: the workers in each status now
        text = (f"{activated:.0f} activated jobs, {counts['created']:.0f} workers queued, "
                f"{counts['running']:.0f} running; ended recently {counts['done']:.0f} "
                f"finished, {counts['fault']:.0f} failed or missed.")
    else:
        text = (f"{activated:.0f} activated jobs, {counts['created']:.0f} pilots queued, "
                f"{counts['running']:.0f} running, {counts['exiting']:.0f} exiting; last hour "
                f"{counts['done']:.0f} done, {counts['fault']:.0f} fault.")
    if problem:
        return f"{text} In trouble: {problem}."
    if activated > counts["created"]:
        return f"{text} Will submit more pilots."
    return f"{text} Enough pilots queued."


def label_rows(worker_samples: Sequence[Sample], job_samples: Sequence[Sample],
               now: datetime) -> list[dict]:
    """One row per factory (APF and Harvester) × label from this cycle's `workers` points."""
    activated = activated_per_queue(job_samples)
    labels: dict[tuple[str, str], dict] = {}
    for s in worker_samples:
        if s.measurement != "workers":  # the cycle's other samples, passed over cheaply
            continue
        kind = s.tag("factory_type")
        factory, queue = s.tag("factory"), s.tag("panda_queue")
        if kind not in ("apf", "harvester") or factory is None or queue is None:
            continue  # no label to count it under (the sources always tag both)
        key = (factory, queue)
        row = labels.setdefault(key, {
            "factory": key[0][:128], "label": key[1][:128], "factory_type": kind,
            "atlas_site": s.tag("atlas_site") or "unknown", "cloud": s.tag("cloud") or "unknown",
            **dict.fromkeys(APF_COUNTS, 0.0)})
        status = s.tag("worker_status") if kind == "apf" else HARVESTER_AS_APF.get(
            s.tag("state") or "")
        if status in APF_COUNTS:
            row[status] += float(s.field("workers") or 0.0)
    for (_, label), row in labels.items():
        waiting = activated.get(label, 0.0)
        problem = trouble(row, waiting, row["factory_type"])
        row.update(activated=waiting, in_trouble=bool(problem),
                   message=message(row, waiting, problem, row["factory_type"]),
                   updated_at=naive(now))
    return [labels[key] for key in sorted(labels)]
