"""Slurm: jobs and nodes from squeue/sinfo (the cli backend) or pyslurm.

The cli backend reads formatted text (`squeue -h -r -O ...`: one line per job and per
array task, cheap on large queues) and can read the JSON of `squeue --json`/`sinfo
--json` from Slurm 21.08 to 24.x: 21.08/22.05 give job_state as a string and plain
numbers; 23.11+ give a list and {"set", "infinite", "number"} objects. A controller
that does not answer is a source error, never zeros (squeue --json exits 0 then, with
an `errors` list). pyslurm is imported only when configured: importing it without a
reachable Slurm ends the process.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from qmonit.core.batchjobs import (
    BatchJob,
    BatchNode,
    Reservation,
    count_jobs,
    map_states,
    node_samples,
    sane_jobs,
)
from qmonit.core.bounds import MAX_CPUS
from qmonit.core.config import Config
from qmonit.core.sample import Sample, shown
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import RuleSet, load_rules
from qmonit.sources.base import MAX_JSON_DEPTH, Collection, Source, SourceError, json_depth
from qmonit.sources.kinds import check_answer
from qmonit.support.clock import Clock, SystemClock
from qmonit.support.redact import brief, child_environment

log = logging.getLogger(__name__)

SCHEDULER = "slurm"
SEP = "|"
SQUEUE_FIELDS = ("JobArrayID", "State", "Reason", "Partition", "UserName", "GroupName",
                 "Account", "NumCPUs", "tres-alloc", "NodeList", "SubmitTime", "StartTime",
                 "EndTime")
# Reason last: an admin's free text may hold the separator (the rest of the line is it)
SINFO_FIELDS = ("NodeHost", "StateLong", "CPUsState", "Gres", "GresUsed", "Timestamp", "User",
                "Reason")
SINFO_FIELDS_BEFORE_REASONS = 5  # what qmonit asked before: recorded outputs read the same
# Flags squeue shows in place of the base state; the JSON lists them after it.
SHOWN_FLAGS = ("COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
               "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "SPECIAL_EXIT", "REVOKED",
               "RESV_DEL_HOLD")
_MEMORY_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def _format(fields: Sequence[str]) -> str:
    return ",".join(f"{name}:{SEP}" for name in fields)


def parse_time(text: str) -> datetime | None:
    if not text or text in ("N/A", "NONE", "Unknown", "(null)"):
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def memory_mb(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    if not match:
        raise ValueError(f"memory {text!r} is not a number with a K/M/G/T unit")
    return float(match[1]) * _MEMORY_UNITS.get(match[2] or "M", 1)


def parse_tres(text: str) -> tuple[float, float, float]:
    """'cpu=2,mem=8000M,node=1,gres/gpu=1' -> (cpus, gpus, memory_mb). GPUs: gres/gpu, or
    where only typed counts are given ('gres/gpu:a100=2'), their sum."""
    cpus = memory = 0.0
    gpus: float | None = None
    typed = 0.0
    for item in text.strip().split(","):
        key, _, value = item.partition("=")
        if key == "cpu":
            cpus = float(value)
        elif key == "mem":
            memory = memory_mb(value)
        elif key == "gres/gpu":
            gpus = float(value)
        elif key.startswith("gres/gpu:"):
            typed += float(value)
    return cpus, typed if gpus is None else gpus, memory


def pending_reason(text: str) -> str:
    """The reason as a tag: without the node list Slurm appends ('ReqNodeNotAvail,
    UnavailableNodes:cs[100,101,102]' -> 'ReqNodeNotAvail'), which would make one series
    per set of nodes; 'None' is no reason."""
    reason = text.strip().strip("()").strip()
    reason = re.split(r",\s*UnavailableNodes:", reason, maxsplit=1)[0].strip()
    return "" if reason == "None" else reason


HostRange = tuple[str, str, int, int, int]  # prefix, suffix, first, last, digits


_HOSTLIST_ITEM = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?([^,]*)")


def hostlist_parts(text: str) -> tuple[list[str], list[HostRange]]:
    """'node[01-03,7],gpu1' -> (['gpu1'], [('node', '', 1, 3, 2), ('node', '', 7, 7, 1)]):
    plain names and numbered ranges, never expanded (n[0-2000000] is one range)."""
    hosts: list[str] = []
    ranges: list[HostRange] = []
    for match in _HOSTLIST_ITEM.finditer(text):
        prefix, numbered, suffix = match.groups()
        if not numbered:
            hosts.append(prefix + suffix)
            continue
        for part in numbered.split(","):
            low, _, high = part.partition("-")
            high = high or low
            if low.isascii() and low.isdigit() and high.isascii() and high.isdigit():
                ranges.append((prefix, suffix, int(low), int(high), len(low)))
    return hosts, ranges


def expand_hostlist(text: str) -> list[str]:
    """'node[01-03,7],gpu1' -> node01, node02, node03, node7, gpu1 (for short lists only:
    counting goes through NodeJobs, which never expands)."""
    out = []
    for item in _HOSTLIST_ITEM.finditer(text):
        hosts, ranges = hostlist_parts(item.group(0))
        out += hosts + [f"{prefix}{number:0{width}d}{suffix}"
                        for prefix, suffix, low, high, width in ranges
                        for number in range(low, high + 1)]
    return out


class NodeJobs:
    """Running jobs per node, counted from their node lists by arithmetic: `get(node)` adds
    the plain names and, per (prefix, suffix, digits), the ranges that hold the node's
    number (two binary searches), so n[0-2000000] costs one range, not 2 million names."""

    def __init__(self) -> None:
        self.plain: dict[str, int] = {}
        self.groups: dict[tuple[str, str, int], tuple[list[int], list[int]]] = {}
        self.sorted = True

    def add(self, node_list: str) -> None:
        hosts, ranges = hostlist_parts(node_list)
        for host in hosts:
            self.plain[host] = self.plain.get(host, 0) + 1
        for prefix, suffix, low, high, width in ranges:
            firsts, lasts = self.groups.setdefault((prefix, suffix, width), ([], []))
            firsts.append(low)
            lasts.append(high)
            self.sorted = False

    def get(self, node: str, default: int = 0) -> int:
        if not self.sorted:
            for firsts, lasts in self.groups.values():
                firsts.sort()
                lasts.sort()
            self.sorted = True
        count = self.plain.get(node, 0)
        for (prefix, suffix, width), (firsts, lasts) in self.groups.items():
            digits = node[len(prefix):len(node) - len(suffix)]
            if not (node.startswith(prefix) and node.endswith(suffix) and digits.isascii()
                    and digits.isdigit() and len(prefix) + len(suffix) < len(node)):
                continue
            number = int(digits)
            if f"{number:0{width}d}" == digits:  # wn[098-100] names wn099, not wn99
                count += bisect_right(firsts, number) - bisect_left(lasts, number)
        return count or default


def gres_gpus(text: str) -> float:
    """'gpu:a100:4(S:0-1),mps:100', 'gpu:2(IDX:0-1)' or, with no GPU type set,
    'gpu:(null):8(IDX:0-7)' -> 4 / 2 / 8 GPUs."""
    total = 0.0
    for item in re.split(r",(?![^(]*\))", text.replace("(null)", "")):
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += float(parts[-1])
    return total


# sinfo's StateLong: a base name (some imply a flag) and suffixes that are flags
_LONG_STATES = {
    "idle": ("IDLE", ()), "mixed": ("MIXED", ()), "mix": ("MIXED", ()),
    "allocated": ("ALLOCATED", ()), "alloc": ("ALLOCATED", ()),
    "completing": ("IDLE", ("COMPLETING",)), "comp": ("IDLE", ("COMPLETING",)),
    "down": ("DOWN", ()), "drained": ("IDLE", ("DRAIN",)), "drain": ("IDLE", ("DRAIN",)),
    "draining": ("MIXED", ("DRAIN",)), "drng": ("MIXED", ("DRAIN",)),
    "fail": ("IDLE", ("FAIL",)), "failing": ("ALLOCATED", ("FAIL",)),
    "future": ("FUTURE", ()), "futr": ("FUTURE", ()), "maint": ("IDLE", ("MAINTENANCE",)),
    "reserved": ("IDLE", ("RESERVED",)), "resv": ("IDLE", ("RESERVED",)),
    "planned": ("IDLE", ("PLANNED",)), "plnd": ("IDLE", ("PLANNED",)),
    "inval": ("IDLE", ("DRAIN", "INVALID_REG")), "unknown": ("UNKNOWN", ()),
    "unk": ("UNKNOWN", ()), "reboot": ("IDLE", ("REBOOT_REQUESTED",)),
    "reboot^": ("DOWN", ("REBOOT_ISSUED",)),
    "power_down": ("IDLE", ("POWER_DOWN",)), "powered_down": ("IDLE", ("POWERED_DOWN",)),
    "powering_down": ("IDLE", ("POWERING_DOWN",)), "powering_up": ("IDLE", ("POWERING_UP",)),
    "reboot_issued": ("IDLE", ("REBOOT_ISSUED",)), "reboot_requested": ("IDLE",
                                                                        ("REBOOT_REQUESTED",)),
    "blocked": ("IDLE", ("BLOCKED",)), "perfctrs": ("ALLOCATED", ("PERFCTRS",)),
}
_SUFFIX_FLAGS = {"*": "NOT_RESPONDING", "~": "POWERED_DOWN", "#": "POWERING_UP",
                 "%": "POWERING_DOWN", "!": "POWER_DOWN", "@": "REBOOT_REQUESTED",
                 "^": "REBOOT_ISSUED", "$": "MAINTENANCE", "-": "PLANNED", "+": "COMPLETING"}
# The order slurmrestd and sinfo --json list a node's flags in (the NODE_STATES flag array of
# src/plugins/data_parser/v0.0.4x/parsers.c), so that text gives JSON's native_state.
_FLAG_ORDER = ("EXTERNAL", "RESERVED", "UNDRAIN", "CLOUD", "RESUME", "DRAIN", "COMPLETING",
               "NOT_RESPONDING", "POWERED_DOWN", "FAIL", "POWERING_UP", "MAINTENANCE",
               "REBOOT_REQUESTED", "REBOOT_CANCELED", "POWERING_DOWN", "DYNAMIC_FUTURE",
               "REBOOT_ISSUED", "PLANNED", "INVALID_REG", "POWER_DOWN", "POWER_UP",
               "POWER_DRAIN", "DYNAMIC_NORM", "BLOCKED")


def node_state_of_text(text: str) -> tuple[str, tuple[str, ...]]:
    """sinfo's StateLong ('drained*', 'idle~', 'mixed-', 'allocated+') -> (base state,
    flags), as node_state_string() in src/common/slurm_protocol_defs.c writes them, with the
    flags in JSON's order: the same node reads the same from text and JSON."""
    name = text.strip().lower()
    flags: list[str] = []
    while name not in _LONG_STATES and name and name[-1] in _SUFFIX_FLAGS:
        flags.append(_SUFFIX_FLAGS[name[-1]])
        name = name[:-1]
    base, implied = _LONG_STATES.get(name, (name.upper() or "UNKNOWN", ()))
    known = {*implied, *flags}
    return base, (*(f for f in _FLAG_ORDER if f in known),
                  *(f for f in (*implied, *reversed(flags)) if f not in _FLAG_ORDER))


def node_state_of_json(state: Any, flags: Any = ()) -> tuple[str, tuple[str, ...]]:
    """JSON node state -> (base state, flags): "idle" with state_flags ["DRAIN"] (21.08,
    22.05), or ["IDLE", "DRAIN"] (23.02+, the base first)."""
    states = [str(s).upper() for s in (state if isinstance(state, list) else [state]) if s]
    extra = [str(f).upper() for f in (flags or []) if f]
    if not states:
        return "UNKNOWN", tuple(extra)
    return states[0], (*states[1:], *extra)


def native_node_state(base: str, flags: Sequence[str]) -> str:
    """The native state kept beside the common one: 'IDLE+DRAIN', as newer Slurm joins it."""
    return "+".join((base, *flags))


def map_node(rules: RuleSet, base: str, flags: Sequence[str]) -> str:
    return rules.map(base, f",{','.join(flags)},").state


def parse_squeue_text(text: str) -> tuple[list[BatchJob], list[str]]:
    jobs, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = [value.strip() for value in line.rstrip().rstrip(SEP).split(SEP)]
        if len(values) != len(SQUEUE_FIELDS):
            problems.append(f"squeue line {number}: {len(values)} fields, expected "
                            f"{len(SQUEUE_FIELDS)}; skipped: {brief(line, 120)!r}")
            continue
        row = dict(zip(SQUEUE_FIELDS, values, strict=True))
        try:
            cpus, gpus, memory = parse_tres(row["tres-alloc"])
        except ValueError as exc:
            problems.append(f"squeue line {number} (job {row['JobArrayID']}): {exc}; skipped")
            continue
        account = row["Account"] if row["Account"] not in ("", "(null)") else row["GroupName"]
        jobs.append(BatchJob(
            job_id=row["JobArrayID"], owner=row["UserName"], group=account,
            partition=row["Partition"], native_state=row["State"],
            reason=pending_reason(row["Reason"]),
            worker=row["NodeList"], submit_time=parse_time(row["SubmitTime"]),
            start_time=parse_time(row["StartTime"]), end_time=parse_time(row["EndTime"]),
            cpus=cpus or float(row["NumCPUs"] or 0), gpus=gpus, memory_mb=memory))
    return jobs, problems


def parse_sinfo_text(text: str, jobs_per_node: Mapping[str, int] | NodeJobs,
                     rules: RuleSet | None = None,
                     problems: list[str] | None = None) -> list[BatchNode]:
    """`sinfo -h -N -O NodeHost,StateLong,CPUsState,Gres,GresUsed` -> one record a node
    (a node is listed once per partition); a line that does not parse is reported."""
    rules = rules or node_rules()
    nodes: dict[str, BatchNode] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = [value.strip() for value in
                  line.rstrip().removesuffix(SEP).split(SEP, len(SINFO_FIELDS) - 1)]
        if len(values) == SINFO_FIELDS_BEFORE_REASONS:
            values += ["", "", ""]
        if len(values) != len(SINFO_FIELDS):
            _report(problems, f"sinfo line {number}: {len(values)} fields, expected "
                              f"{len(SINFO_FIELDS)}; skipped: {brief(line, 120)!r}")
            continue
        name, state_long, cpu_states, gres, gres_used, stamp, by, reason = values
        if name in nodes:
            continue
        try:
            alloc, _idle, _other, total = (float(n) for n in cpu_states.split("/"))
        except ValueError:
            _report(problems, f"sinfo line {number} (node {name}): CPUsState {cpu_states!r} "
                              "is not A/I/O/T; skipped")
            continue
        base, flags = node_state_of_text(state_long)
        reason = "" if reason in ("none", "None") else reason
        nodes[name] = BatchNode(name, map_node(rules, base, flags), total, alloc,
                                gres_gpus(gres), gres_gpus(gres_used),
                                float(jobs_per_node.get(name, 0)),
                                native_node_state(base, flags), reason,
                                by if reason and by not in ("Unknown", "N/A") else "",
                                parse_time(stamp) if reason else None)
    return list(nodes.values())


def _report(problems: list[str] | None, problem: str) -> None:
    if problems is None:
        log.warning(problem)
    else:
        problems.append(problem)


_NODE_RULES: RuleSet | None = None


def node_rules() -> RuleSet:
    """The built-in node state rules (the configured ones come from the source)."""
    global _NODE_RULES
    if _NODE_RULES is None:
        _NODE_RULES = load_rules("slurm_nodes")
    return _NODE_RULES


# -- JSON (squeue --json / sinfo --json / slurmrestd) ----------------------------------------

def _number(value: Any) -> float | None:
    """A plain number (<= 22.05) or {"set", "infinite", "number"} (23.11+)."""
    if isinstance(value, dict):
        if not value.get("set") or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _epoch(value: Any) -> datetime | None:
    seconds = _number(value)
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _native_state(value: Any) -> str:
    states = value if isinstance(value, list) else [value]
    states = [str(s) for s in states if s]
    for flag in SHOWN_FLAGS:
        if flag in states:
            return flag
    return states[0] if states else "UNKNOWN"


# A pending array up to this many tasks is listed task by task (batch_jobs_current shows
# each, as squeue -r does); a longer one is one record that counts its tasks.
ARRAY_TASKS_LISTED = 10_000


def _array_tasks(text: str) -> list[str]:
    """'1-3,7', '0-9%2' or '1-9:2' -> task ids; only for arrays of ARRAY_TASKS_LISTED."""
    tasks = []
    for part in text.split("%")[0].split(","):
        span, _, step = part.partition(":")
        low, _, high = span.partition("-")
        if array_task_count(part):
            tasks += [str(n) for n in range(int(low), int(high or low) + 1, int(step or 1))]
    return tasks


def array_task_count(text: str) -> int:
    """'1-3,7', '0-9%2' or '1-99:2' -> how many tasks (a pending array is one record for
    all its tasks), by arithmetic: '_[1-100000]' is never a list."""
    count = 0
    for part in text.split("%")[0].split(","):
        span, _, step = part.partition(":")
        low, _, high = span.partition("-")
        high, step = high or low, step or "1"
        if all(n.isascii() and n.isdigit() for n in (low, high, step)) and int(step) > 0 \
                and int(high) >= int(low):
            count += (int(high) - int(low)) // int(step) + 1
    return count


def check_json_errors(doc: Any, what: str) -> None:
    if not isinstance(doc, dict):
        raise SourceError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    errors = doc.get("errors") or []
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {"error": errors[0]}
        text = first.get("description") or first.get("error") or str(first)
        raise SourceError(f"{what}: Slurm reported an error: {text}")


def parse_squeue_json(doc: Any) -> tuple[list[BatchJob], list[str]]:
    check_json_errors(doc, "squeue --json")
    jobs, problems = [], []
    for number, record in enumerate(doc.get("jobs") or []):
        if not isinstance(record, dict) or "job_id" not in record:
            problems.append(f"squeue --json: job record {number} has no job_id; skipped")
            continue
        tres = record.get("tres_alloc_str") or record.get("tres_req_str") or ""
        try:
            cpus, gpus, memory = parse_tres(tres)
            gpus = gpus or requested_gpus(record)
        except ValueError as exc:
            problems.append(f"squeue --json: job {record['job_id']}: {exc}; skipped")
            continue
        try:
            jobs += _json_jobs(record, cpus, gpus, memory)
        except (ValueError, OverflowError, OSError) as exc:  # a time past time_t, an id of inf
            problems.append(f"squeue --json: job {record['job_id']}: a number out of range: "
                            f"{exc}; skipped")
    return jobs, problems


def _tres_gpus(text: str) -> float:
    """GPUs of a tres_per_* string: 'gres/gpu:2', 'gres/gpu:h100:1,gres/gpu:h200:1'
    (tres_per_job/node) or 'cpu=4,gres/gpu:h100=1', 'gres/gpu=2' (tres_per_task, as
    src/common/slurm_opt.c writes it) -> 2 / 2 / 1 / 2; older Slurm's 'gres:gpu:2' or
    'gpu:2' alike. A count left out is one, as in --gres=gpu."""
    total = 0.0
    for part in text.split(","):
        item = part.strip().replace("=", ":").removeprefix("gres/").removeprefix("gres:")
        if item == "gpu" or item.startswith("gpu:"):
            count = item.rsplit(":", 1)[-1]
            total += float(count) if count.isdigit() else 1.0
    return total


def requested_gpus(record: dict) -> float:
    """GPUs of a job whose tres strings carry none (a cluster whose AccountingStorageTRES
    does not track gres/gpu), in this order: what its nodes hold for it (gres_detail, one
    string a node, running jobs), then the request per job, per node x nodes, per task x
    tasks. 0 when none says."""
    held = sum(gres_gpus(str(d)) for d in record.get("gres_detail") or [])
    if held:
        return held
    per_job = _tres_gpus(str(record.get("tres_per_job") or ""))
    if per_job:
        return per_job
    per_node = _tres_gpus(str(record.get("tres_per_node") or ""))
    if per_node:
        return per_node * (_number(record.get("node_count")) or 1.0)
    per_task = _tres_gpus(str(record.get("tres_per_task") or ""))
    return per_task * (_number(record.get("tasks")) or 1.0) if per_task else 0.0


def _json_jobs(record: dict, cpus: float, gpus: float, memory: float) -> list[BatchJob]:
    """One squeue --json record -> its job(s): itself, its array tasks, or its pending array
    as one record. Raises ValueError/OverflowError for a time or an id out of range."""
    reason = pending_reason(str(record.get("state_reason") or ""))
    account = record.get("account") or record.get("group_name") or ""
    base = BatchJob(
        job_id=str(record["job_id"]), owner=str(record.get("user_name") or ""),
        group=str(account), partition=str(record.get("partition") or ""),
        native_state=_native_state(record.get("job_state")),
        reason=reason, worker=str(record.get("nodes") or ""),
        submit_time=_epoch(record.get("submit_time")),
        start_time=_epoch(record.get("start_time")), end_time=_epoch(record.get("end_time")),
        cpus=cpus or (_number(record.get("cpus")) or 0.0), gpus=gpus, memory_mb=memory)
    task = _number(record.get("array_task_id"))
    array_id = _number(record.get("array_job_id"))
    task_string = str(record.get("array_task_string") or "")
    pending_tasks = array_task_count(task_string)
    if array_id and task is not None:
        return [_with_id(base, f"{int(array_id)}_{int(task)}")]
    if array_id and 0 < pending_tasks <= ARRAY_TASKS_LISTED:
        return [_with_id(base, f"{int(array_id)}_{t}") for t in _array_tasks(task_string)]
    if array_id and pending_tasks:  # one record, as squeue without -r shows it
        return [replace(base, job_id=f"{int(array_id)}_[{task_string}]", tasks=pending_tasks)]
    return [base]


def _with_id(job: BatchJob, job_id: str) -> BatchJob:
    return replace(job, job_id=job_id)


def parse_nodes_json(doc: Any, jobs_per_node: Mapping[str, int] | NodeJobs,
                     rules: RuleSet | None = None,
                     problems: list[str] | None = None) -> list[BatchNode]:
    """`sinfo --json` or slurmrestd /nodes, any version: a `nodes` list (21.08-22.05
    sinfo, every slurmrestd /nodes) or, since 23.02, an `sinfo` list of node groups (one
    node each with `sinfo -N`; a group of several shares its CPU counts out evenly). A group's
    `gres` is one node's string, copied by sinfo into the group (`_update_sinfo` in
    src/sinfo/sinfo.c), not a sum: every node of the group has those GPUs."""
    check_json_errors(doc, "sinfo --json")
    rules = rules or node_rules()
    nodes: dict[str, BatchNode] = {}

    def add(name: str, base: str, flags: tuple[str, ...], cpus: float, alloc: float,
            gpus: float, gpus_used: float, why: tuple[str, str, datetime | None]) -> None:
        if name and name not in nodes:  # a node is listed once per partition
            nodes[name] = BatchNode(name, map_node(rules, base, flags), cpus, alloc, gpus,
                                    gpus_used, float(jobs_per_node.get(name, 0)),
                                    native_node_state(base, flags), *why)

    for record in doc.get("nodes") or []:
        if not isinstance(record, dict):
            continue
        base, flags = node_state_of_json(record.get("state"), record.get("state_flags"))
        add(str(record.get("name") or record.get("hostname") or ""), base, flags,
            _number(record.get("cpus")) or 0.0, _number(record.get("alloc_cpus")) or 0.0,
            gres_gpus(str(record.get("gres") or "")),
            gres_gpus(str(record.get("gres_used") or "")),
            _reason(record.get("reason"), record.get("reason_set_by_user"),
                    record.get("reason_changed_at")))
    for number, group in enumerate(doc.get("sinfo") or []):
        if not isinstance(group, dict):
            continue
        names = (group.get("nodes") or {}).get("nodes") or []
        if not names:
            _report(problems, f"sinfo --json: node group {number} names no node; skipped")
            continue
        share = 1.0 / len(names)
        cpus, gres = group.get("cpus") or {}, group.get("gres") or {}
        base, flags = node_state_of_json((group.get("node") or {}).get("state"))
        why = group.get("reason")
        why = why if isinstance(why, dict) else {}
        for name in names:
            add(str(name), base, flags, (_number(cpus.get("total")) or 0.0) * share,
                (_number(cpus.get("allocated")) or 0.0) * share,
                gres_gpus(str(gres.get("total") or "")),
                gres_gpus(str(gres.get("used") or "")),
                _reason(why.get("description"), why.get("user"), why.get("time")))
    return list(nodes.values())


def _reason(text: Any, by: Any, at: Any) -> tuple[str, str, datetime | None]:
    """A node's reason, who set it and when (Unix seconds, plain or {"number"}), from any
    sinfo --json or slurmrestd version; no reason: ("", "", None)."""
    reason = text.strip() if isinstance(text, str) else ""
    if not reason:
        return "", "", None
    try:
        when = _epoch(at)
    except (OverflowError, ValueError, OSError):  # a time no clock can show: not said
        when = None
    return reason, by.strip() if isinstance(by, str) else "", when


_PAIR = re.compile(r"(\w+)=(\S*)")
_UNSET = ("", "(null)", "N/A", "n/a")


def parse_reservations_text(text: str, problems: list[str]) -> list[Reservation]:
    """`scontrol show reservations -o` (one line each, Key=Value pairs) -> reservations;
    "No reservations in the system" is none; a line without a name is reported."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("No reservations"):
            continue
        pairs = dict(_PAIR.findall(line))
        name = pairs.get("ReservationName", "")
        if not name:
            problems.append(f"scontrol show reservations line {number}: no ReservationName; "
                            f"skipped: {brief(line, 120)!r}")
            continue
        out.append(Reservation(
            name, _text(pairs.get("Nodes")), _count(pairs.get("NodeCnt")),
            parse_time(pairs.get("StartTime", "")), parse_time(pairs.get("EndTime", "")),
            _text(pairs.get("Flags")), _text(pairs.get("State")), _text(pairs.get("Users")),
            _text(pairs.get("Accounts")), _text(pairs.get("PartitionName"))))
    return out


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value) if isinstance(value, str | int | float) else ""
    return "" if text in _UNSET else text[:1024]


def _count(value: Any) -> float:
    number = _number(value) if not isinstance(value, str) else \
        (float(value) if value.isdigit() else None)
    return number if number is not None and 0 <= number <= MAX_CPUS else 0.0


def parse_reservations_json(doc: Any, problems: list[str], now: datetime
                            ) -> list[Reservation]:
    """slurmrestd /reservations or `scontrol show reservations --json`, any version: times
    plain or {"number"}, flags a list; ACTIVE when it covers `now` (JSON does not say)."""
    check_json_errors(doc, "scontrol show reservations --json")
    out = []
    for number, record in enumerate(doc.get("reservations") or []):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str) \
                or not record["name"]:
            problems.append(f"reservations: record {number} has no name; skipped")
            continue
        try:
            start, end = _epoch(record.get("start_time")), _epoch(record.get("end_time"))
        except (OverflowError, ValueError, OSError):
            problems.append(f"reservations: {shown(record['name'])}: a time past any clock; "
                            "skipped")
            continue
        out.append(Reservation(
            record["name"][:255], _text(record.get("node_list")),
            _count(record.get("node_count")), start, end, _text(record.get("flags")),
            "ACTIVE" if start and end and start <= now < end else "INACTIVE",
            _text(record.get("users")), _text(record.get("accounts")),
            _text(record.get("partition"))))
    return out


def jobs_per_node(jobs: Sequence[BatchJob]) -> NodeJobs:
    """Running jobs per node (`.get(node, 0)`), their node lists counted, not expanded."""
    counts = NodeJobs()
    for job in jobs:
        if job.worker and job.native_state in ("RUNNING", "COMPLETING", "CONFIGURING"):
            counts.add(job.worker)
    return counts


Runner = Callable[[list[str], float], str]


def run_command(argv: list[str], timeout: float) -> str:
    """Run a Slurm client; its failure (or a timeout) is a SourceError naming the command."""
    try:
        # no QMONIT_* secret, nor any other, reaches the scheduler's client
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_environment())
    except FileNotFoundError:
        raise SourceError(f"{argv[0]}: not found (install the Slurm client or set "
                          f"[slurm] bin_dir)") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"{argv[0]}: no answer within {timeout:g} s") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise SourceError(f"{argv[0]} exited {done.returncode}: "
                          f"{message[-1] if message else 'no message'}")
    return done.stdout


class SlurmSource:
    """One Slurm cluster through its command-line clients."""

    name = "slurm"

    def __init__(self, settings: SlurmSection, rules: RuleSet, run: Runner = run_command,
                 node_rules: RuleSet | None = None, clock: Clock | None = None):
        self.node_rules = node_rules
        self.cluster = settings.cluster
        self.bin_dir = settings.bin_dir
        self.use_json = settings.format == "json"
        self.timeout = settings.timeout_s
        self.clock = clock or SystemClock()  # how long a job has been in its state
        self.rules = rules
        self.run = run
        self.nodes_doc: Any = None  # the sinfo --json read_nodes read, for the partitions

    @property
    def origin(self) -> str:
        return f"Slurm cluster {self.cluster} ({'JSON' if self.use_json else 'text'} clients)"

    def _cmd(self, name: str) -> str:
        return f"{self.bin_dir}/{name}" if self.bin_dir else name

    def read_jobs(self) -> tuple[list[BatchJob], list[str]]:
        if self.use_json:
            return parse_squeue_json(self._json([self._cmd("squeue"), "--json"],
                                                "squeue --json"))
        return parse_squeue_text(self.run([self._cmd("squeue"), "-h", "-a", "-r", "-O",
                                           _format(SQUEUE_FIELDS)], self.timeout))

    def read_nodes(self, per_node: Mapping[str, int] | NodeJobs,
                   problems: list[str] | None = None) -> list[BatchNode]:
        if self.use_json:  # -N: since 23.02 one group per node, not per state
            self.nodes_doc = self._json([self._cmd("sinfo"), "-N", "--json"], "sinfo --json")
            return parse_nodes_json(self.nodes_doc, per_node, self.node_rules, problems)
        return parse_sinfo_text(self.run([self._cmd("sinfo"), "-h", "-N", "-O",
                                          _format(SINFO_FIELDS)], self.timeout), per_node,
                                self.node_rules, problems)

    def _json(self, argv: list[str], reader: str | None = None) -> Any:
        """The command's JSON output; with `reader` (qmonit/sources/kinds.py), output of
        another kind (a jobs answer where nodes were asked for) is a SourceError, not zeros."""
        text = self.run(argv, self.timeout)
        too_deep = False
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise SourceError(f"{' '.join(argv)}: output is not valid JSON ({exc})") from None
        except RecursionError:  # deeper than the interpreter's stack
            too_deep = True
        if too_deep or json_depth(doc, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            raise SourceError(f"{' '.join(argv)}: output is not valid JSON (nested deeper "
                              f"than {MAX_JSON_DEPTH} levels)")
        if reader is not None:
            check_answer(reader, doc, " ".join(argv), "printed")
        return doc

    def collect(self, slot: datetime) -> Collection:
        now = self.clock.now()
        jobs, problems = self.read_jobs()
        jobs = sane_jobs(jobs, f"Slurm {self.cluster}", problems)
        if self.use_json:  # squeue --json also lists jobs that ended in the last minutes
            jobs = [j for j in jobs if j.native_state in ("PENDING", "RUNNING", "SUSPENDED")
                    or j.native_state in SHOWN_FLAGS]
        nodes = self.read_nodes(jobs_per_node(jobs), problems)
        mapped = map_states(jobs, self.rules, now)
        samples = count_jobs(mapped, self.cluster, SCHEDULER, slot)
        samples += node_samples(nodes, self.cluster, SCHEDULER, slot)
        samples += self.read_partitions(nodes, slot, problems)
        reservations = self.read_reservations(problems)
        samples += self.read_scheduler(slot, problems)
        return Collection(samples, problems, jobs=mapped, cluster=self.cluster, nodes=nodes,
                          reservations=reservations)

    def read_scheduler(self, slot: datetime, problems: list[str]) -> list[Sample]:
        """slurmctld's own health (`sdiag --json`, or `sdiag` where the client has no JSON
        or is the text format's); a failure is a problem, never a reading of zeros."""
        from qmonit.sources import scheduler_health as health

        if self.use_json:
            try:
                text = self.run([self._cmd("sdiag"), "--json"], self.timeout)
                sample, skipped = health.parse_diag_json(text, self.cluster, "sdiag --json",
                                                         slot)
                problems += skipped
                return [sample]
            except SourceError as exc:  # Slurm 22.05's sdiag prints no JSON: its text
                log.info("%s; reading sdiag's text", exc)
        try:
            sample, skipped = health.parse_sdiag_text(
                self.run([self._cmd("sdiag")], self.timeout), self.cluster, "sdiag", slot)
        except SourceError as exc:
            problems.append(f"{exc}; batch_scheduler not written")
            return []
        problems += skipped
        return [sample]

    def read_reservations(self, problems: list[str]) -> list[Reservation] | None:
        """The reservations (JSON where scontrol has it, else its text); a failure is a
        problem (the jobs and nodes still count) and None: the reservations stored stay as
        they were rather than vanish."""
        if self.use_json:
            try:
                return parse_reservations_json(self._json(
                    [self._cmd("scontrol"), "--json", "show", "reservations"]), problems,
                    self.clock.now())
            except SourceError as exc:  # scontrol of Slurm 22.05 has no --json: its text
                log.info("%s; reading scontrol's text", exc)
        try:
            return parse_reservations_text(self.run(
                [self._cmd("scontrol"), "show", "reservations", "-o"], self.timeout), problems)
        except SourceError as exc:
            problems.append(f"{exc}; batch_reservations not updated")
            return None

    def read_partitions(self, nodes: Sequence[BatchNode], slot: datetime,
                        problems: list[str]) -> list[Sample]:
        """`batch_partitions`: from the sinfo --json read_nodes read, or (text) one more
        sinfo call listing each node once per partition; node states are the nodes'."""
        from qmonit.sources import slurm_partitions as parts  # it reads this module's helpers

        states = parts.node_states(nodes)
        if self.use_json:
            counts = parts.partitions_of_nodes_json(self.nodes_doc, states, problems)
        else:
            counts = parts.partitions_of_text(self.run(
                [self._cmd("sinfo"), "-h", "-N", "-O", _format(parts.PARTITION_FIELDS)],
                self.timeout), states, problems)
        return parts.partition_samples(counts, self.cluster, SCHEDULER, slot, problems)


def from_config(cfg: Config, rules: Mapping[str, RuleSet], clock: Clock) -> list[Source]:
    """The registry's builder: one Slurm cluster, through its clients or pyslurm."""
    settings = cfg.settings.slurm
    if settings.backend == "pyslurm":
        from qmonit.sources.slurm_pyslurm import PyslurmSource  # only when configured

        return [PyslurmSource(settings, rules["slurm"], clock)]
    return [SlurmSource(settings, rules["slurm"], node_rules=rules["slurm_nodes"],
                        clock=clock)]
