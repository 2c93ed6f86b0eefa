"""`qmonit states test SOURCE --input FILE...`: recorded outputs instead of the live source.

An admin checks a cluster they cannot reach, and a bug report carries the file. Each file
is told apart by its content: `squeue`/`sinfo` text in the formats qmonit asks for, or the
JSON of `squeue --json`, `sinfo --json` and slurmrestd (21.08 to 26.05); `condor_q`/
`condor_status` in `-long` or `-json`; PanDA job statistics and Harvester worker
statistics JSON (API v1 answer or bare data); CRIC's pandaqueue JSON. What collect would
write comes out: the native -> mapped table, or every sample as JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qmonit.batchjobs import count_jobs, map_states, node_samples
from qmonit.sample import Sample, slot_start
from qmonit.sources.base import SourceError
from qmonit.states.rules import RuleSet


class RecordedInputError(Exception):
    """A file that is none of the formats the source reads; names the file and why."""


def read_recorded(source: str, paths: Sequence[Path], rules: Mapping[str, RuleSet],
                  now: datetime | None = None) -> tuple[Counter, list[Sample], list[str]]:
    """(native, reason, state, cause) -> count, the samples collect would write, problems."""
    now = now or datetime.now(UTC)
    slot = slot_start(now)
    counts: Counter = Counter()
    samples: list[Sample] = []
    problems: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordedInputError(f"{path}: cannot be read ({exc})") from None
        reader = {"panda": _panda, "harvester": _harvester, "slurm": _slurm,
                  "slurm_nodes": _slurm, "htcondor": _htcondor, "apf": _htcondor,
                  "cric": _cric}[source]
        try:
            reader(source, str(path), text, rules, now, slot, counts, samples, problems)
        except SourceError as exc:
            raise RecordedInputError(str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordedInputError(f"{path}: not a {source} output qmonit reads ({exc})"
                                     ) from None
    return counts, samples, problems


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordedInputError(f"{where}: not valid JSON ({exc})") from None


def _panda(source, where, text, rules, now, slot, counts, samples, problems) -> None:
    from qmonit.sources.panda import parse_job_stats, unwrap_v1

    data = _json(text, where)
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


def _harvester(source, where, text, rules, now, slot, counts, samples, problems) -> None:
    from qmonit.sources.harvester import parse_worker_stats
    from qmonit.sources.panda import unwrap_v1

    data = _json(text, where)
    if isinstance(data, dict) and "success" in data:
        data = unwrap_v1(data, where)
    collection = parse_worker_stats(data, rules["harvester"], slot, where)
    problems += collection.problems
    for sample in collection.samples:
        native = sample.tag("worker_status") or ""
        mapped = rules["harvester"].map(native)
        counts[(native, "", mapped.state, mapped.cause)] += float(sample.field("workers") or 0)
    samples += collection.samples


def _slurm(source, where, text, rules, now, slot, counts, samples, problems) -> None:
    from qmonit.sources.slurm import (
        SEP,
        SINFO_FIELDS,
        SQUEUE_FIELDS,
        jobs_per_node,
        parse_nodes_json,
        parse_sinfo_text,
        parse_squeue_json,
        parse_squeue_text,
    )

    cluster = "recorded"
    if text.lstrip()[:1] in ("{", "["):
        doc = _json(text, where)
        kind = "jobs" if isinstance(doc, dict) and "jobs" in doc else "nodes"
    else:
        first = next((line for line in text.splitlines() if line.strip()), "")
        width = len(first.rstrip().rstrip(SEP).split(SEP))
        kind = {len(SQUEUE_FIELDS): "jobs", len(SINFO_FIELDS): "nodes"}.get(width)
        if kind is None:
            raise RecordedInputError(
                f"{where}: {width} '|'-separated fields: neither squeue -O "
                f"{','.join(SQUEUE_FIELDS)} nor sinfo -N -O {','.join(SINFO_FIELDS)}")
        doc = text
    if kind == "jobs":
        jobs, found = parse_squeue_json(doc) if not isinstance(doc, str) else \
            parse_squeue_text(doc)
        problems += [f"{where}: {p}" for p in found]
        jobs = map_states(jobs, rules["slurm"], now)
        if source == "slurm":
            for job in jobs:
                counts[(job.native_state, job.reason, job.state, job.cause)] += job.tasks
            samples += count_jobs(jobs, cluster, "slurm", slot)
        return
    found: list[str] = []
    nodes = parse_nodes_json(doc, {}, rules["slurm_nodes"], found) if not isinstance(
        doc, str) else parse_sinfo_text(doc, jobs_per_node([]), rules["slurm_nodes"], found)
    problems += [f"{where}: {p}" for p in found]
    if source == "slurm_nodes":
        for node in nodes:
            counts[(node.native_state, "", node.node_state, "")] += 1
    samples += node_samples(nodes, cluster, "slurm", slot)


def _htcondor(source, where, text, rules, now, slot, counts, samples, problems) -> None:
    from qmonit.sources.condor_files import parse_ads
    from qmonit.sources.htcondor import job_from_ad, nodes_from_slots

    ads = parse_ads(text)
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


def _cric(source, where, text, rules, now, slot, counts, samples, problems) -> None:
    from dataclasses import asdict

    from qmonit.sources.cric import parse_pandaqueues

    data = _json(text, where)
    if isinstance(data, dict) and ("panda_resource" in data or "nickname" in data):
        data = {str(data.get("nickname") or data.get("panda_resource")): data}  # one record
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
