"""`qmonit states test SOURCE --input FILE...`: recorded outputs instead of the live source.

An admin checks a cluster they cannot reach, and a bug report carries the file. Each file
is told apart by its content: `squeue`/`sinfo` text in the formats qmonit asks for, or the
JSON of `squeue --json`, `sinfo --json` and slurmrestd (21.08 to 26.05); `condor_q`/
`condor_status` in `-long` or `-json`; PanDA job statistics and Harvester worker
statistics JSON (API v1 answer or bare data); CRIC's pandaqueue JSON. A file of a kind the
source does not read (a jobs answer given for nodes, a slurmrestd /partitions answer given
for nodes, a queuedata.json given to slurm) is refused with exit code 2, naming what it
looks like instead (qmonit/sources/kinds.py), never read as zero samples. What collect
would write comes out: the native -> mapped table, or every sample as JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from qmonit.core.batchjobs import count_jobs, map_states, node_samples
from qmonit.core.sample import Sample, slot_start
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import SourceError
from qmonit.sources.condor_files import parse_ads
from qmonit.sources.cric import parse_pandaqueues
from qmonit.sources.harvester import parse_worker_stats
from qmonit.sources.htcondor import job_from_ad, nodes_from_slots
from qmonit.sources.kinds import (
    CRIC_RECORD,
    SLURM_ERROR,
    SLURM_JOBS,
    SLURM_PARTITIONS,
    SQUEUE_TEXT,
    Kind,
    kind_of,
    kind_of_text,
    refusal,
)
from qmonit.sources.panda import parse_job_stats, unwrap_v1
from qmonit.sources.slurm import (
    check_json_errors,
    jobs_per_node,
    parse_nodes_json,
    parse_sinfo_text,
    parse_squeue_json,
    parse_squeue_text,
)
from qmonit.sources.slurm_partitions import parse_partitions_json, partition_samples
from qmonit.sources.trial import StateCounts

RECORDED_CLUSTER = "recorded"  # the cluster (and schedd) tag of what recorded files give


class RecordedInputError(Exception):
    """A file that is none of the formats the source reads (exit code 2), or a recorded
    answer in which the source itself reported failure (exit code 1); names the file."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class RecordedFile(NamedTuple):
    where: str  # the path, as messages name it
    text: str
    doc: Any  # the decoded JSON, or the text when it is not JSON
    kind: Kind


@dataclass
class Recorded:
    """What recorded files gave: (native, reason, state, cause) -> count, the samples
    collect would write, and the records skipped (with why)."""

    counts: StateCounts = field(default_factory=lambda: defaultdict(float))
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Recorded) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
        self.samples += other.samples
        self.problems += other.problems


class RecordedReader(Protocol):
    """A source's reader of one recorded file (the registry names it): `rule_set` is the
    one asked for (slurm counts jobs, slurm_nodes nodes)."""

    def __call__(self, rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
                 now: datetime) -> Recorded: ...


def read_recorded(rule_set: str, reader: RecordedReader, paths: Sequence[Path],
                  rules: Mapping[str, RuleSet], now: datetime) -> Recorded:
    """Every file read by `reader` (the registry's for `rule_set`), their results summed.
    A file of a kind the reader does not take is refused before the reader runs."""
    total = Recorded()
    for path in paths:
        recorded = _recorded_file(Path(path))
        refused = refusal(rule_set, recorded.kind)
        if refused:
            raise RecordedInputError(f"{recorded.where}: {refused}")
        try:
            total.add(reader(rule_set, recorded, rules, now))
        except SourceError as exc:  # the right kind, but the source said it failed
            raise RecordedInputError(str(exc), exit_code=1) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordedInputError(f"{path}: not a {rule_set} output qmonit reads ({exc})"
                                     ) from None
    return total


def _recorded_file(path: Path) -> RecordedFile:
    """The file read, decoded when it is JSON, and its kind."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordedInputError(f"{path}: cannot be read ({exc})") from None
    if text.lstrip()[:1] in ("{", "["):
        doc = _json(text, where)
        return RecordedFile(where, text, doc, kind_of(doc))
    return RecordedFile(where, text, text, kind_of_text(text))


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RecordedInputError(f"{where}: not valid JSON ({exc})") from None


def _v1_data(recorded: RecordedFile) -> Any:
    """PanDA's and Harvester's statistics, out of an API v1 envelope when in one."""
    data = recorded.doc
    if isinstance(data, dict) and "success" in data:
        data = unwrap_v1(data, recorded.where)
    return data


def read_panda(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
               now: datetime) -> Recorded:
    """PanDA job statistics: each count by its job_status, mapped by the panda rules (the
    samples carry the mapped state, as derive gives it)."""
    collection = parse_job_stats(_v1_data(recorded), slot_start(now), recorded.where)
    out = Recorded(problems=collection.problems)
    for sample in collection.samples:
        native = sample.tag("job_status") or ""
        mapped = rules["panda"].map(native)
        out.counts[(native, "", mapped.state, mapped.cause)] += float(
            sample.field("jobs") or 0)
        out.samples.append(sample._replace(tags=tuple(sorted((*sample.tags,
                                                              ("state", mapped.state))))))
    return out


def read_harvester(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
                   now: datetime) -> Recorded:
    """Harvester worker statistics: each count by its worker_status."""
    collection = parse_worker_stats(_v1_data(recorded), rules["harvester"], slot_start(now),
                                    recorded.where)
    out = Recorded(samples=collection.samples, problems=collection.problems)
    for sample in collection.samples:
        native = sample.tag("worker_status") or ""
        mapped = rules["harvester"].map(native)
        out.counts[(native, "", mapped.state, mapped.cause)] += float(
            sample.field("workers") or 0)
    return out


def read_slurm(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
               now: datetime) -> Recorded:
    """squeue/sinfo text or JSON, slurmrestd's answers: jobs counted for the slurm rules,
    nodes for slurm_nodes; partitions give their samples only."""
    doc, where, kind = recorded.doc, recorded.where, recorded.kind.key
    if kind == SLURM_ERROR:
        check_json_errors(doc, where)  # raises, naming Slurm's error
    if kind in (SLURM_JOBS, SQUEUE_TEXT):
        jobs, found = parse_squeue_text(doc) if kind == SQUEUE_TEXT else parse_squeue_json(doc)
        out = Recorded(problems=[f"{where}: {p}" for p in found])
        jobs = map_states(jobs, rules["slurm"], now)
        for job in jobs:
            out.counts[(job.native_state, job.reason, job.state, job.cause)] += job.tasks
        out.samples += count_jobs(jobs, RECORDED_CLUSTER, "slurm", slot_start(now))
        return out
    if kind == SLURM_PARTITIONS:  # slurmrestd /partitions: each partition's own totals
        listed: list[str] = []
        samples = partition_samples(parse_partitions_json(doc, listed), RECORDED_CLUSTER,
                                    "slurm", slot_start(now), listed)
        return Recorded(samples=samples, problems=[f"{where}: {p}" for p in listed])
    return _slurm_nodes(rule_set, recorded, rules, now)


def _slurm_nodes(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
                 now: datetime) -> Recorded:
    """sinfo text or JSON, slurmrestd /nodes: the node samples; counted for slurm_nodes."""
    doc = recorded.doc
    found: list[str] = []
    nodes = parse_nodes_json(doc, {}, rules["slurm_nodes"], found) if not isinstance(
        doc, str) else parse_sinfo_text(doc, jobs_per_node([]), rules["slurm_nodes"], found)
    out = Recorded(samples=node_samples(nodes, RECORDED_CLUSTER, "slurm", slot_start(now)),
                   problems=[f"{recorded.where}: {p}" for p in found])
    if rule_set == "slurm_nodes":
        for node in nodes:
            out.counts[(node.native_state, "", node.node_state, "")] += 1
    return out


def read_htcondor(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
                  now: datetime) -> Recorded:
    """condor_q/condor_status ads: jobs mapped by the htcondor rules, slots as nodes; an ad
    that is neither is reported and skipped."""
    out = Recorded()
    jobs, slots = [], []
    for number, ad in enumerate(parse_ads(recorded.text)):
        if "JobStatus" in ad:
            try:
                jobs.append(job_from_ad(ad, RECORDED_CLUSTER, ("Owner", "AccountingGroup")))
            except ValueError as exc:
                out.problems.append(f"{recorded.where}: ad {number}: {exc}; skipped")
        elif "SlotType" in ad or "Activity" in ad:
            slots.append(ad)
        else:
            out.problems.append(f"{recorded.where}: ad {number} is neither a job nor a slot; "
                                "skipped")
    jobs = map_states(jobs, rules["htcondor"], now)
    for job in jobs:
        out.counts[(job.native_state, job.reason, job.state, job.cause)] += 1
    slot = slot_start(now)
    out.samples += count_jobs(jobs, RECORDED_CLUSTER, "htcondor", slot)
    out.samples += node_samples(nodes_from_slots(slots), RECORDED_CLUSTER, "htcondor", slot)
    return out


def read_cric(rule_set: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
              now: datetime) -> Recorded:
    """CRIC's pandaqueues (the topology, no state rules): each queue by its status and
    cloud, and the `cric` sample of its topology tags."""
    data = recorded.doc
    if recorded.kind.key == CRIC_RECORD:  # one queuedata.json record
        data = {str(data.get("nickname") or data.get("panda_resource")): data}
    queues, found = parse_pandaqueues(data, recorded.where)
    out = Recorded(problems=found)
    for name, queue in queues.items():
        info = {k: v for k, v in asdict(queue).items() if v not in (None, (), "")}
        status = str(info.get("queue_status", "unknown"))
        out.counts[(name, "", status, str(info.get("cloud", "")))] += 1
        out.samples.append(Sample("cric", tuple(sorted((k, str(v)) for k, v in info.items()
                                                       if k != "datadisks")),
                                  (("datadisks", ",".join(queue.datadisks)),), slot_start(now)))
    return out


def samples_json(samples: Sequence[Sample]) -> str:
    """One JSON object a line: {"measurement", "tags", "fields"}."""
    return "".join(json.dumps({"measurement": s.measurement, "tags": dict(s.tags),
                               "fields": dict(s.fields)}, sort_keys=True) + "\n"
                   for s in samples)
