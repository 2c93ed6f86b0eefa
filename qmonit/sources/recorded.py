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
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from qmonit.core.batchjobs import count_jobs, map_states, node_samples
from qmonit.core.sample import Sample, slot_start
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import SourceError
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


def read_recorded(source: str, paths: Sequence[Path], rules: Mapping[str, RuleSet],
                  now: datetime | None = None) -> tuple[Counter, list[Sample], list[str]]:
    """(native, reason, state, cause) -> count, the samples collect would write, problems.
    A file of a kind the source does not read is refused before any reader runs."""
    now = now or datetime.now(UTC)
    slot = slot_start(now)
    counts: Counter = Counter()
    samples: list[Sample] = []
    problems: list[str] = []
    reader = {"panda": _panda, "harvester": _harvester, "slurm": _slurm,
              "slurm_nodes": _slurm, "htcondor": _htcondor, "apf": _htcondor,
              "cric": _cric}[source]
    for path in paths:
        recorded = _recorded_file(Path(path))
        refused = refusal(source, recorded.kind)
        if refused:
            raise RecordedInputError(f"{recorded.where}: {refused}")
        try:
            reader(source, recorded, rules, now, slot, counts, samples, problems)
        except SourceError as exc:  # the right kind, but the source said it failed
            raise RecordedInputError(str(exc), exit_code=1) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordedInputError(f"{path}: not a {source} output qmonit reads ({exc})"
                                     ) from None
    return counts, samples, problems


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


def _panda(source: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
           now: datetime, slot: datetime, counts: Counter, samples: list[Sample],
           problems: list[str]) -> None:
    from qmonit.sources.panda import parse_job_stats, unwrap_v1

    data, where = recorded.doc, recorded.where
    if isinstance(data, dict) and "success" in data:
        data = unwrap_v1(data, where)
    collection = parse_job_stats(data, slot, where)
    problems += collection.problems
    for sample in collection.samples:
        native = sample.tag("job_status") or ""
        mapped = rules["panda"].map(native)
        counts[(native, "", mapped.state, mapped.cause)] += float(sample.field("jobs") or 0)
        samples.append(sample._replace(tags=tuple(sorted((*sample.tags,
                                                          ("state", mapped.state))))))


def _harvester(source: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
               now: datetime, slot: datetime, counts: Counter, samples: list[Sample],
               problems: list[str]) -> None:
    from qmonit.sources.harvester import parse_worker_stats
    from qmonit.sources.panda import unwrap_v1

    data, where = recorded.doc, recorded.where
    if isinstance(data, dict) and "success" in data:
        data = unwrap_v1(data, where)
    collection = parse_worker_stats(data, rules["harvester"], slot, where)
    problems += collection.problems
    for sample in collection.samples:
        native = sample.tag("worker_status") or ""
        mapped = rules["harvester"].map(native)
        counts[(native, "", mapped.state, mapped.cause)] += float(sample.field("workers") or 0)
    samples += collection.samples


def _slurm(source: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
           now: datetime, slot: datetime, counts: Counter, samples: list[Sample],
           problems: list[str]) -> None:
    from qmonit.sources.slurm import (
        check_json_errors,
        jobs_per_node,
        parse_nodes_json,
        parse_sinfo_text,
        parse_squeue_json,
        parse_squeue_text,
    )

    cluster = "recorded"
    doc, where, kind = recorded.doc, recorded.where, recorded.kind.key
    if kind == SLURM_ERROR:
        check_json_errors(doc, where)  # raises, naming Slurm's error
    if kind in (SLURM_JOBS, SQUEUE_TEXT):
        jobs, found = parse_squeue_text(doc) if kind == SQUEUE_TEXT else parse_squeue_json(doc)
        problems += [f"{where}: {p}" for p in found]
        jobs = map_states(jobs, rules["slurm"], now)
        for job in jobs:
            counts[(job.native_state, job.reason, job.state, job.cause)] += job.tasks
        samples += count_jobs(jobs, cluster, "slurm", slot)
        return
    if kind == SLURM_PARTITIONS:  # slurmrestd /partitions: each partition's own totals
        from qmonit.sources.slurm_partitions import parse_partitions_json, partition_samples

        listed: list[str] = []
        samples += partition_samples(parse_partitions_json(doc, listed), cluster, "slurm",
                                     slot, listed)
        problems += [f"{where}: {p}" for p in listed]
        return
    found: list[str] = []
    nodes = parse_nodes_json(doc, {}, rules["slurm_nodes"], found) if not isinstance(
        doc, str) else parse_sinfo_text(doc, jobs_per_node([]), rules["slurm_nodes"], found)
    problems += [f"{where}: {p}" for p in found]
    if source == "slurm_nodes":
        for node in nodes:
            counts[(node.native_state, "", node.node_state, "")] += 1
    samples += node_samples(nodes, cluster, "slurm", slot)


def _htcondor(source: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
              now: datetime, slot: datetime, counts: Counter, samples: list[Sample],
              problems: list[str]) -> None:
    from qmonit.sources.condor_files import parse_ads
    from qmonit.sources.htcondor import job_from_ad, nodes_from_slots

    where = recorded.where
    ads = parse_ads(recorded.text)
    jobs, slots = [], []
    for number, ad in enumerate(ads):
        if "JobStatus" in ad:
            try:
                jobs.append(job_from_ad(ad, "recorded", ("Owner", "AccountingGroup")))
            except ValueError as exc:
                problems.append(f"{where}: ad {number}: {exc}; skipped")
        elif "SlotType" in ad or "Activity" in ad:
            slots.append(ad)
        else:
            problems.append(f"{where}: ad {number} is neither a job nor a slot; skipped")
    jobs = map_states(jobs, rules["htcondor"], now)
    for job in jobs:
        counts[(job.native_state, job.reason, job.state, job.cause)] += 1
    samples += count_jobs(jobs, "recorded", "htcondor", slot)
    samples += node_samples(nodes_from_slots(slots), "recorded", "htcondor", slot)


def _cric(source: str, recorded: RecordedFile, rules: Mapping[str, RuleSet],
          now: datetime, slot: datetime, counts: Counter, samples: list[Sample],
          problems: list[str]) -> None:
    from dataclasses import asdict

    from qmonit.sources.cric import parse_pandaqueues

    data, where = recorded.doc, recorded.where
    if recorded.kind.key == CRIC_RECORD:  # one queuedata.json record
        data = {str(data.get("nickname") or data.get("panda_resource")): data}
    queues, found = parse_pandaqueues(data, where)
    problems += found
    for name, queue in queues.items():
        info = {k: v for k, v in asdict(queue).items() if v not in (None, (), "")}
        status = str(info.get("queue_status", "unknown"))
        counts[(name, "", status, str(info.get("cloud", "")))] += 1
        samples.append(Sample("cric", tuple(sorted((k, str(v)) for k, v in info.items()
                                                   if k != "datadisks")),
                              (("datadisks", ",".join(queue.datadisks)),), slot))


def samples_json(samples: Sequence[Sample]) -> str:
    """One JSON object a line: {"measurement", "tags", "fields"}."""
    return "".join(json.dumps({"measurement": s.measurement, "tags": dict(s.tags),
                               "fields": dict(s.fields)}, sort_keys=True) + "\n"
                   for s in samples)
