"""Add CRIC topology to PanDA `jobs` points: site, cloud, tier, state tags; cores and HS06."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from qmonit.core.model import TOPOLOGY_TAGS, UNKNOWN
from qmonit.core.sample import Sample
from qmonit.sources.cric import QueueInfo, Topology


@dataclass
class Enriched:
    samples: list[Sample] = field(default_factory=list)
    unknown_queues: set[str] = field(default_factory=set)


def _topology_tags(info: QueueInfo | None) -> tuple[tuple[str, str], ...]:
    return tuple((tag, (getattr(info, tag) if info else None) or UNKNOWN) for tag in TOPOLOGY_TAGS)


def cores_per_job(resource: str, info: QueueInfo | None) -> float | None:
    """1 for single-core resource types; the queue's corecount for MCORE*; None if unknown."""
    if not resource.upper().startswith("MCORE"):
        return 1.0
    return float(info.corecount) if info and info.corecount else None


def enrich_jobs(samples: Iterable[Sample], topology: Topology) -> Enriched:
    """Every point keeps its count; a queue CRIC does not know gets `unknown` tags.

    cores (jobs × cores per job) and hs06 (cores × corepower) are written only when
    the factors are known: an unknown factor is missing data, not zero.
    """
    out = Enriched()
    cache: dict[str, tuple[QueueInfo | None, tuple[tuple[str, str], ...]]] = {}
    for sample in samples:
        tags = dict(sample.tags)
        queue = tags["panda_queue"]
        if queue not in cache:
            info = topology.lookup(queue)
            cache[queue] = (info, _topology_tags(info))
            if info is None:
                out.unknown_queues.add(queue)
        info, extra = cache[queue]
        jobs = float(dict(sample.fields)["jobs"])
        fields = [("jobs", jobs)]
        per_job = cores_per_job(tags["resource"], info)
        if per_job is not None:
            cores = jobs * per_job
            fields.append(("cores", cores))
            if info and info.corepower:
                fields.append(("hs06", round(cores * info.corepower, 4)))
        out.samples.append(
            Sample(sample.measurement, tuple(sorted(sample.tags + extra)), tuple(sorted(fields)),
                   sample.time)
        )
    return out


WORKER_TOPOLOGY_TAGS = ("atlas_site", "cloud")


def enrich_workers(samples: Iterable[Sample], topology: Topology) -> Enriched:
    """Pilot-factory `workers` points get the site and cloud of their panda_queue."""
    out = Enriched()
    for sample in samples:
        queue = sample.tag("panda_queue") or UNKNOWN
        info = topology.lookup(queue)
        if info is None:
            out.unknown_queues.add(queue)
        extra = tuple((tag, (getattr(info, tag) if info else None) or UNKNOWN)
                      for tag in WORKER_TOPOLOGY_TAGS)
        out.samples.append(sample._replace(tags=tuple(sorted(sample.tags + extra))))
    return out
