"""The first half of a collect cycle: every source asked, its answer normalised and summed
into the levels.

Nothing here reads or writes a store, so a slot's fetch can run in another process
while an earlier slot is written (`qmonit demo` does), and hand back what it got.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from qmonit.collect.components import Components
from qmonit.collect.enrich import enrich_jobs, enrich_workers
from qmonit.core.batchjobs import BatchJob, BatchNode, Reservation
from qmonit.core.levels import aggregate
from qmonit.core.sample import Sample
from qmonit.core.states.rules import with_state_tag
from qmonit.sources.base import PARSE_ERRORS, Source, SourceError
from qmonit.sources.cric import Topology

log = logging.getLogger(__name__)


@dataclass
class SourceAnswer:
    """One source's answer for the slot: its samples with state and topology tags (None when
    the source failed, `message` saying why), the records it skipped, the level points
    (write-time aggregates) and series ids of its samples, and, for a scheduler source, its jobs
    (batch_jobs_current) on `cluster`."""

    source: str
    samples: list[Sample] | None
    problems: list[str] = field(default_factory=list)
    message: str = ""
    duration_s: float = 0.0
    jobs: list[BatchJob] | None = None
    cluster: str = ""
    nodes: list[BatchNode] | None = None  # a scheduler's nodes (their reasons)
    reservations: list[Reservation] | None = None  # Slurm's, when read
    levels: list[Sample] | None = None  # None: not summed yet
    series_ids: list[int] | None = None  # of `samples`, in their order (None: not worked out)


@dataclass
class SlotFetch:
    slot: datetime
    topology: Topology
    topology_s: float
    answers: list[SourceAnswer]
    unknown_queues: set[str]


def fetch(parts: Components, slot: datetime) -> SlotFetch:
    """Load the topology and ask every source for `slot`; a failed source is an answer too."""
    clock = time.monotonic()
    topology = parts.topology.load(slot)
    topology_s = time.monotonic() - clock
    unknown: set[str] = set()
    answers = []
    for source in parts.sources:
        clock = time.monotonic()
        try:
            collection = source.collect(slot)
        except SourceError as exc:
            answers.append(SourceAnswer(source.name, None, message=str(exc),
                                        duration_s=time.monotonic() - clock))
            continue
        except PARSE_ERRORS as exc:  # an answer no parser could take: this source failed
            log.error("%s: its answer could not be parsed", source.name, exc_info=True)
            answers.append(SourceAnswer(source.name, None, message=parse_failure(source, exc),
                                        duration_s=time.monotonic() - clock))
            continue
        samples = normalize(parts, source.name, collection.samples, topology, unknown)
        answers.append(SourceAnswer(
            source.name, samples, collection.problems, duration_s=time.monotonic() - clock,
            jobs=collection.jobs, cluster=collection.cluster, nodes=collection.nodes,
            reservations=collection.reservations,
            levels=aggregate(samples), series_ids=list(map(parts.series_ids, samples))))
    return SlotFetch(slot, topology, topology_s, answers, unknown)


def parse_failure(source: Source, exc: BaseException) -> str:
    """What a source whose answer broke a parser failed of (RecursionError's message says
    nothing a user can act on)."""
    plain: dict[type[BaseException], str] = {RecursionError: "nested too deep",
                                             MemoryError: "too large for memory"}
    what = plain.get(type(exc), str(exc))
    return f"{source.name}: its answer could not be parsed ({type(exc).__name__}: {what})"


def normalize(parts: Components, source: str, samples: list[Sample], topology: Topology,
              unknown_queues: set[str]) -> list[Sample]:
    """State rules, then topology: PanDA jobs get `state` and CRIC tags, pilots site and cloud
    (queues CRIC does not know are added to `unknown_queues`)."""
    if source == "panda":
        enriched = enrich_jobs(with_state_tag(samples, parts.rules["panda"], "job_status"),
                               topology)
        unknown_queues |= enriched.unknown_queues
        return enriched.samples
    workers = [s for s in samples if s.measurement == "workers"]
    if not workers:
        return samples
    enriched = enrich_workers(workers, topology)
    unknown_queues |= enriched.unknown_queues
    return [s for s in samples if s.measurement != "workers"] + enriched.samples
