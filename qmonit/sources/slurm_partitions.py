"""Slurm partitions: each partition's state, nodes and CPUs, as `batch_partitions` points.

Three inputs. slurmrestd `/partitions` (or `scontrol show partitions --json`) gives a
partition's own totals and state only: `total_nodes`, `total_cpus` and a `state` string up
to v0.0.38, `nodes.total`, `cpus.total` and a `partition.state` list since v0.0.39. The node
records of `sinfo --json` (a `nodes` list naming each node's `partitions` up to 22.05, and
every slurmrestd `/nodes`; `sinfo` node groups, each with its `partition` object, since
23.02) and, for the text path, `sinfo -h -N -O NodeHost,PartitionName,Available,CPUsState`
(one line per node and partition) give the sums over the partition's nodes: CPUs, allocated
CPUs, and nodes per common node state, the state read from the cycle's `batch_nodes`
records, so the two measurements always agree on what a node is doing. A node belonging
to several partitions counts in each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qmonit.core.batchjobs import BatchNode, node_problem
from qmonit.core.bounds import MAX_CPUS, field_problem
from qmonit.core.sample import Sample, make_sample, shown
from qmonit.core.states.rules import NODE_STATES
from qmonit.sources.base import SourceError
from qmonit.sources.slurm import SEP, _number, check_json_errors
from qmonit.support.redact import brief

MEASUREMENT = "batch_partitions"
PARTITION_FIELDS = ("NodeHost", "PartitionName", "Available", "CPUsState")
UNKNOWN_STATE = "UNKNOWN"
# sinfo's Available column ("up", "inact", "inactive" on 22.05) in Slurm's JSON words
_STATE_WORDS = {"INACT": "INACTIVE", "N/A": "", "(NULL)": ""}
# a partition's totals: the largest machines have about 10^5 nodes and 10^7 cores
MAX_NODES = 1e7
MAX_PARTITION_CPUS = 1e9


@dataclass(slots=True)
class PartitionCount:
    """One partition's figures; `cpus_alloc` and `by_state` are None where only the
    partition's own totals were read (slurmrestd /partitions), never a made-up 0."""

    partition: str
    state: str
    nodes: float = 0.0
    cpus: float = 0.0
    cpus_alloc: float | None = None
    by_state: dict[str, float] | None = None


def partition_state(value: Any) -> str:
    """A partition's state as Slurm's JSON words it: UP, DOWN, DRAIN, INACTIVE (several
    joined by '+'), from ["UP"] (v0.0.39+), "UP" (v0.0.37-38) or "inact" (sinfo text);
    UNKNOWN where the input has none (sinfo --json before 23.11, slurmrestd /nodes)."""
    states = value if isinstance(value, list) else [value]
    words = (str(state).strip().upper() for state in states if state is not None)
    return "+".join(w for w in (_STATE_WORDS.get(w, w) for w in words) if w) or UNKNOWN_STATE


def node_states(nodes: Iterable[BatchNode]) -> dict[str, str]:
    """Node name -> common node state, of the nodes `batch_nodes` writes (a node with
    unusable numbers is skipped there, so it counts as unknown here)."""
    return {n.node: n.node_state for n in nodes if node_problem(n) is None}


class _Tally:
    """Partitions summed from node records (a node, a node group or a text line), in the
    order they come; a node listed twice in one partition counts once."""

    def __init__(self, states: Mapping[str, str]):
        self.states = states
        self.partitions: dict[str, PartitionCount] = {}
        self.counted: set[tuple[str, str]] = set()

    def add(self, partition: str, state: str, names: Sequence[str], cpus: float,
            cpus_alloc: float) -> None:
        count = self.partitions.get(partition)
        if count is None:
            count = self.partitions[partition] = PartitionCount(
                partition, state, cpus_alloc=0.0, by_state=dict.fromkeys(NODE_STATES, 0.0))
        elif count.state == UNKNOWN_STATE:
            count.state = state
        new = [name for name in names if (partition, name) not in self.counted]
        if not new:
            return  # the same record again: its CPUs are in already
        by_state = count.by_state
        assert by_state is not None and count.cpus_alloc is not None  # made so just above
        for name in new:
            self.counted.add((partition, name))
            mapped = self.states.get(name, "unknown")
            by_state[mapped if mapped in by_state else "unknown"] += 1
        count.nodes += len(new)
        count.cpus += cpus
        count.cpus_alloc += cpus_alloc

    def result(self) -> list[PartitionCount]:
        return list(self.partitions.values())


def _object(value: Any) -> dict[str, Any]:
    """A JSON object as it is; anything else (missing, null, a list) as an empty one."""
    return value if isinstance(value, dict) else {}


def _cpu_problem(cpus: float, alloc: float, nodes: int) -> str | None:
    return (field_problem("cpus", cpus, MAX_CPUS * nodes)
            or field_problem("cpus_alloc", alloc, MAX_CPUS * nodes))


def partitions_of_nodes_json(doc: Any, states: Mapping[str, str],
                             problems: list[str]) -> list[PartitionCount]:
    """`sinfo --json` of any version, or a slurmrestd /nodes answer: per partition the sums
    over its nodes (a node record's `cpus`/`alloc_cpus`, a node group's `cpus.total`/
    `cpus.allocated`, which sinfo sums over the group's nodes)."""
    check_json_errors(doc, "sinfo --json")
    tally = _Tally(states)
    for record in _listed(doc, "nodes"):
        if not isinstance(record, dict):
            continue  # reported by the node reader
        name = str(record.get("name") or record.get("hostname") or "")
        partitions = record.get("partitions")
        if not name or not isinstance(partitions, list):
            continue
        cpus, alloc = _number(record.get("cpus")) or 0.0, _number(record.get("alloc_cpus")) or 0.0
        problem = _cpu_problem(cpus, alloc, 1)
        if problem:
            problems.append(f"sinfo --json: node {shown(name)}: {problem}; not counted in its "
                            "partitions")
            continue
        for partition in partitions:
            if partition:
                tally.add(str(partition), UNKNOWN_STATE, [name], cpus, alloc)
    for number, group in enumerate(_listed(doc, "sinfo")):
        _add_group(tally, number, group, problems)
    return tally.result()


def _listed(doc: dict, key: str) -> list:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _add_group(tally: _Tally, number: int, group: Any, problems: list[str]) -> None:
    """One node group of `sinfo --json` (23.02+) into its partition."""
    if not isinstance(group, dict):
        return  # reported by the node reader
    partition = group.get("partition")
    info = partition if isinstance(partition, dict) else {"name": partition}
    nodes = group.get("nodes")
    names = nodes.get("nodes") if isinstance(nodes, dict) else None
    if not info.get("name") or not isinstance(names, list) or not names:
        return  # a node in no partition, or a group naming no node (reported as a node)
    cpus = _object(group.get("cpus"))
    total, alloc = _number(cpus.get("total")) or 0.0, _number(cpus.get("allocated")) or 0.0
    problem = _cpu_problem(total, alloc, len(names))
    if problem:
        problems.append(f"sinfo --json: node group {number}: {problem}; not counted in "
                        f"partition {shown(str(info['name']))}")
        return
    own = _object(info.get("partition"))
    tally.add(str(info["name"]), partition_state(own.get("state")), [str(n) for n in names],
              total, alloc)


def partitions_of_text(text: str, states: Mapping[str, str],
                       problems: list[str]) -> list[PartitionCount]:
    """`sinfo -h -N -O NodeHost,PartitionName,Available,CPUsState` (each field ending in
    '|'): one line per node and partition; a line that does not parse is reported."""
    tally = _Tally(states)
    state_of: dict[str, str] = {}  # Available -> state, read once per word
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        values = [value.strip() for value in line.rstrip().rstrip(SEP).split(SEP)]
        if len(values) != len(PARTITION_FIELDS):
            problems.append(f"sinfo partitions line {number}: {len(values)} fields, expected "
                            f"{len(PARTITION_FIELDS)}; skipped: {brief(line, 120)!r}")
            continue
        name, partition, available, cpu_states = values
        try:
            alloc, _idle, _other, total = (float(n) for n in cpu_states.split("/"))
        except ValueError:
            problems.append(f"sinfo partitions line {number} (node {shown(name)}): CPUsState "
                            f"{brief(cpu_states, 40)!r} is not A/I/O/T; skipped")
            continue
        problem = _cpu_problem(total, alloc, 1)
        if problem or not name or not partition:
            problems.append(f"sinfo partitions line {number}: "
                            f"{problem or 'no node or partition name'}; skipped")
            continue
        state = state_of.get(available)
        if state is None:
            state = state_of[available] = partition_state(available)
        tally.add(partition, state, (name,), total, alloc)
    return tally.result()


def parse_partitions_json(doc: Any, problems: list[str]) -> list[PartitionCount]:
    """slurmrestd /partitions or `scontrol show partitions --json`, any version: each
    partition's own state and configured totals (no allocation: that needs the nodes)."""
    check_json_errors(doc, "slurmrestd /partitions")
    records = doc.get("partitions")
    if not isinstance(records, list):
        raise SourceError("slurmrestd /partitions: no `partitions` list in the answer")
    out: dict[str, PartitionCount] = {}
    for number, record in enumerate(records):
        name = record.get("name") if isinstance(record, dict) else None
        if not name or not isinstance(name, str):
            problems.append(f"slurmrestd /partitions: record {number} has no name; skipped")
            continue
        nodes, cpus = _totals(record)
        if nodes is None or cpus is None:
            problems.append(f"slurmrestd /partitions: partition {shown(name)}: no total of "
                            "nodes or CPUs (total_nodes/nodes.total, total_cpus/cpus.total); "
                            "skipped")
            continue
        if name in out:
            problems.append(f"slurmrestd /partitions: partition {shown(name)} listed again; "
                            "the first kept")
            continue
        own = record.get("partition") if isinstance(record.get("partition"), dict) else {}
        state = record["state"] if "state" in record else own.get("state")
        out[name] = PartitionCount(name, partition_state(state), nodes, cpus)
    return list(out.values())


def _totals(record: dict) -> tuple[float | None, float | None]:
    """(nodes, cpus): `total_nodes`/`total_cpus` (v0.0.37-38; `nodes` is then the node
    list) or `nodes.total`/`cpus.total` (v0.0.39+)."""
    nodes, cpus = record.get("nodes"), record.get("cpus")
    return (_number(record["total_nodes"]) if "total_nodes" in record else
            _number(nodes.get("total")) if isinstance(nodes, dict) else None,
            _number(record["total_cpus"]) if "total_cpus" in record else
            _number(cpus.get("total")) if isinstance(cpus, dict) else None)


def partition_samples(counts: Iterable[PartitionCount], cluster: str, scheduler: str,
                      slot: datetime, problems: list[str]) -> list[Sample]:
    """`batch_partitions` points: nodes and cpus always; cpus_alloc and one nodes_<state>
    per common node state (zeros included, so a state that emptied reads 0, not its last
    value) where node records were read."""
    out = []
    for count in counts:
        fields = {"nodes": count.nodes, "cpus": count.cpus}
        if count.cpus_alloc is not None:
            fields["cpus_alloc"] = count.cpus_alloc
        if count.by_state is not None:
            fields.update({f"nodes_{state}": n for state, n in count.by_state.items()})
        problem = (field_problem("nodes", count.nodes, MAX_NODES)
                   or field_problem("cpus", count.cpus, MAX_PARTITION_CPUS)
                   or field_problem("cpus_alloc", fields.get("cpus_alloc", 0.0),
                                    MAX_PARTITION_CPUS))
        try:
            if problem:
                raise ValueError(problem)
            out.append(make_sample(MEASUREMENT, {
                "cluster": cluster, "scheduler": scheduler, "partition": count.partition,
                "partition_state": count.state}, fields, slot))
        except ValueError as exc:
            problems.append(f"{cluster}: partition {shown(count.partition)}: {exc}; skipped")
    return out
