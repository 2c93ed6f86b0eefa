"""slurmrestd 23.11 to 25.11 (rackslab/Slurm-web's recordings, v0.0.40 to v0.0.44) and the
node forms of every Slurm: totals counted here from the raw JSON, by this file's own small
code, against what qmonit's parse -> map -> count writes; the same nodes as text, as
`sinfo --json` groups and as slurmrestd /nodes give the same samples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qmonit.core.batchjobs import count_jobs, map_states, node_samples
from qmonit.core.states.rules import load_rules
from qmonit.sources.slurm import (
    SEP,
    parse_nodes_json,
    parse_sinfo_text,
    parse_squeue_json,
    requested_gpus,
)
from tests.servers import environ_without_qmonit

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")
VERSIONS = ("23.11", "24.05_0.0.41", "24.11_0.0.42", "25.05_0.0.43", "25.11_0.0.44")
SLOT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NODE_RULES = load_rules("slurm_nodes")
JOB_RULES = load_rules("slurm")


def recording_path(version: str, kind: str) -> Path:
    return SAMPLES / f"rackslab+Slurm-web__tests_assets_slurmrestd_{version}_slurm-{kind}.json"


def recording(version: str, kind: str) -> dict:
    return json.loads(recording_path(version, kind).read_text())


def states_test(source: str, path: Path) -> list[dict]:
    """The samples `qmonit states test SOURCE --input PATH --json` prints, one a line."""
    done = subprocess.run([sys.executable, "-m", "qmonit", "states", "test", source,
                           "--input", str(path), "--json"], capture_output=True, text=True,
                          env=environ_without_qmonit())
    assert (done.returncode, done.stderr) == (0, "")
    return [json.loads(line) for line in done.stdout.splitlines()]


def number(value) -> float:
    return float(value["number"]) if isinstance(value, dict) else float(value or 0)


def tres(text: str, key: str) -> float:
    """'cpu=1,mem=512M,...' -> the value of key (mem in MB); gres/gpu summed over types."""
    total = 0.0
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name == key == "mem":
            units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
            total += float(value[:-1]) * units[value[-1]]
        elif name == key or (key == "gres/gpu" and name.startswith("gres/gpu:")):
            total += float(value)
    return total


def gpus_in(text: str) -> float:
    """'gpu:h100:2,gpu:h200:4' or 'gres/gpu:1' -> 6 / 1."""
    return sum(float(m) for m in re.findall(r"gpu(?::[\w.-]+)?:(\d+)", text))


def raw_job_totals(doc: dict) -> dict:
    """native state -> [jobs, cpus, gpus, memory_mb], straight from the JSON."""
    out: dict[str, list[float]] = {}
    for job in doc["jobs"]:
        state = job["job_state"][0] if "COMPLETING" not in job["job_state"] else "COMPLETING"
        text = job.get("tres_alloc_str") or job.get("tres_req_str") or ""
        gpus = tres(text, "gres/gpu") or sum(gpus_in(d) for d in job.get("gres_detail") or []) \
            or gpus_in(job.get("tres_per_job") or "") \
            or gpus_in(job.get("tres_per_node") or "") * number(job.get("node_count"))
        acc = out.setdefault(state, [0.0, 0.0, 0.0, 0.0])
        for n, value in enumerate((1, tres(text, "cpu") or number(job["cpus"]), gpus,
                                   tres(text, "mem"))):
            acc[n] += value
    return out


def qmonit_job_totals(doc: dict) -> dict:
    jobs, problems = parse_squeue_json(doc)
    assert problems == []
    out: dict[str, list[float]] = {}
    for sample in count_jobs(map_states(jobs, JOB_RULES, SLOT), "c", "slurm", SLOT):
        acc = out.setdefault(sample.tag("native_state"), [0.0, 0.0, 0.0, 0.0])
        for n, field in enumerate(("jobs", "cpus", "gpus", "memory_mb")):
            acc[n] += sample.field(field)
    return out


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_job_totals_per_state_are_the_recordings_own(version):
    doc = recording(version, "jobs")
    assert qmonit_job_totals(doc) == raw_job_totals(doc)


@needs_samples
def test_job_totals_of_the_recordings_in_figures():
    totals = {v: qmonit_job_totals(recording(v, "jobs")) for v in VERSIONS}
    # [jobs, cpus, gpus, memory_mb] of each recording; its GPUs are those of the jobs whose
    # tres strings carry none, read from tres_per_job / tres_per_node
    assert {v: [sum(t[n] for t in totals[v].values()) for n in range(4)] for v in VERSIONS} \
        == {"23.11": [14, 305, 0, 156160], "24.05_0.0.41": [14, 409, 0, 209408],
            "24.11_0.0.42": [16, 405, 3, 207360], "25.05_0.0.43": [19, 1209, 5, 619008],
            "25.11_0.0.44": [15, 157, 4, 80384]}
    assert {v: {state: t[0] for state, t in totals[v].items()} for v in VERSIONS} == {
        "23.11": {"COMPLETED": 5, "FAILED": 1, "PENDING": 2, "RUNNING": 5, "TIMEOUT": 1},
        "24.05_0.0.41": {"COMPLETED": 8, "FAILED": 1, "PENDING": 1, "RUNNING": 3,
                         "TIMEOUT": 1},
        "24.11_0.0.42": {"CANCELLED": 2, "COMPLETED": 3, "FAILED": 1, "PENDING": 2,
                         "RUNNING": 7, "TIMEOUT": 1},
        "25.05_0.0.43": {"CANCELLED": 5, "COMPLETED": 4, "FAILED": 1, "PENDING": 2,
                         "RUNNING": 6, "TIMEOUT": 1},
        "25.11_0.0.44": {"CANCELLED": 1, "COMPLETED": 7, "FAILED": 1, "PENDING": 1,
                         "RUNNING": 4, "TIMEOUT": 1}}


@needs_samples
def test_the_five_jobs_with_gpus_only_in_their_request():
    found = {}
    for version in VERSIONS:
        for job in recording(version, "jobs")["jobs"]:
            if requested_gpus(job):
                found[(version, job["job_id"])] = requested_gpus(job)
    assert found == {("24.11_0.0.42", 6355): 1.0, ("24.11_0.0.42", 6356): 2.0,
                     ("25.05_0.0.43", 4728): 4.0, ("25.05_0.0.43", 4729): 1.0,
                     ("25.11_0.0.44", 5736): 4.0}


def test_requested_gpus_order_and_forms():
    assert requested_gpus({"gres_detail": ["gpu:h100:2(IDX:0-1)", "gpu:h100:2(IDX:2-3)"],
                           "tres_per_job": "gres/gpu:9"}) == 4.0
    assert requested_gpus({"tres_per_node": "gres/gpu:h100:1,gres/gpu:h200:1",
                           "node_count": {"set": True, "infinite": False, "number": 3}}) == 6.0
    assert requested_gpus({"tres_per_task": "gres/gpu:1", "tasks": 8}) == 8.0
    # tres_per_task as src/common/slurm_opt.c writes it: 'cpu=N,gres/gpu:TYPE=N'
    assert requested_gpus({"tres_per_task": "cpu=4,gres/gpu:h100=2", "tasks": {
        "set": True, "infinite": False, "number": 3}}) == 6.0
    assert requested_gpus({"tres_per_task": "cpu=4", "tasks": 3}) == 0.0
    assert requested_gpus({"tres_per_job": "gres/gpu=2,license/iop1:1"}) == 2.0
    assert requested_gpus({"tres_per_job": "gres/gpu"}) == 1.0  # as --gres=gpu: one
    assert requested_gpus({"tres_per_job": "", "gres_detail": []}) == 0.0


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_node_totals_per_state_are_the_recordings_own(version):
    doc = recording(version, "nodes")
    raw: Counter = Counter()
    cpus: Counter = Counter()
    gpus: Counter = Counter()
    for node in doc["nodes"]:
        native = "+".join(node["state"])
        raw[native] += 1
        cpus[native] += node["cpus"]
        gpus[native] += gpus_in(node["gres"])
    nodes = parse_nodes_json(doc, {}, NODE_RULES)
    assert Counter(n.native_state for n in nodes) == raw
    assert {k: sum(n.cpus for n in nodes if n.native_state == k) for k in raw} == dict(cpus)
    assert {k: sum(n.gpus for n in nodes if n.native_state == k) for k in raw} == dict(gpus)


def raw_node_totals(doc: dict) -> dict:
    """native state -> [nodes, cpus, cpus_alloc, gpus, gpus_alloc], straight from the JSON."""
    out: dict[str, list[float]] = {}
    for node in doc["nodes"]:
        acc = out.setdefault("+".join(node["state"]), [0.0] * 5)
        for n, value in enumerate((1, node["cpus"], node["alloc_cpus"], gpus_in(node["gres"]),
                                   gpus_in(node["gres_used"]))):
            acc[n] += value
    return out


@needs_samples
@pytest.mark.parametrize("version", VERSIONS)
def test_states_test_over_each_recording_gives_its_own_totals(version):
    """The whole path (the file's kind, parse, map, count) as `qmonit states test` runs it."""
    jobs: dict[str, list[float]] = {}
    for point in states_test("slurm", recording_path(version, "jobs")):
        acc = jobs.setdefault(point["tags"]["native_state"], [0.0] * 4)
        for n, field in enumerate(("jobs", "cpus", "gpus", "memory_mb")):
            acc[n] += point["fields"][field]
    assert jobs == raw_job_totals(recording(version, "jobs"))
    nodes: dict[str, list[float]] = {}
    for point in states_test("slurm_nodes", recording_path(version, "nodes")):
        acc = nodes.setdefault(point["tags"]["native_state"], [0.0] * 5)
        acc[0] += 1
        for n, field in enumerate(("cpus", "cpus_alloc", "gpus", "gpus_alloc"), 1):
            acc[n] += point["fields"][field]
    assert nodes == raw_node_totals(recording(version, "nodes"))


@needs_samples
def test_node_states_of_the_recordings_in_figures():
    mapped = {v: Counter((n.native_state, n.node_state) for n in
                         parse_nodes_json(recording(v, "nodes"), {}, NODE_RULES))
              for v in VERSIONS}
    assert mapped == {
        "23.11": Counter({("IDLE", "idle"): 2, ("IDLE+DRAIN", "drained"): 1,
                          ("MIXED", "mixed"): 1, ("ALLOCATED", "allocated"): 1,
                          ("DOWN", "down"): 1}),
        "24.05_0.0.41": Counter({("IDLE", "idle"): 100}),
        "24.11_0.0.42": Counter({("IDLE", "idle"): 3, ("DOWN", "down"): 1,
                                 ("IDLE+DRAIN", "drained"): 1,
                                 ("IDLE+COMPLETING", "allocated"): 1}),
        "25.05_0.0.43": Counter({("IDLE", "idle"): 3, ("DOWN", "down"): 1,
                                 ("IDLE+DRAIN", "drained"): 1,
                                 ("IDLE+COMPLETING", "allocated"): 1}),
        "25.11_0.0.44": Counter({("IDLE", "idle"): 4, ("IDLE+DRAIN", "drained"): 1,
                                 ("DOWN", "down"): 1, ("ALLOCATED", "allocated"): 1,
                                 ("MIXED", "mixed"): 1})}
    totals = {v: raw_node_totals(recording(v, "nodes")) for v in VERSIONS}
    # CPUs and GPUs of every recording: [nodes, cpus, cpus_alloc, gpus, gpus_alloc]
    assert {v: [sum(t[n] for t in totals[v].values()) for n in range(5)]
            for v in VERSIONS} == {"23.11": [6, 320, 109, 12, 0],
                                   "24.05_0.0.41": [100, 6400, 0, 0, 0],
                                   "24.11_0.0.42": [6, 320, 0, 12, 0],
                                   "25.05_0.0.43": [6, 320, 0, 8, 0],
                                   "25.11_0.0.44": [8, 384, 110, 16, 0]}


# The same node, as sinfo's StateLong and as the JSON state list, and what it maps to.
FORMS = [
    ("idle", ["IDLE"], "idle"), ("mixed", ["MIXED"], "mixed"),
    ("allocated", ["ALLOCATED"], "allocated"),
    ("completing", ["IDLE", "COMPLETING"], "allocated"),
    ("drained", ["IDLE", "DRAIN"], "drained"), ("draining", ["MIXED", "DRAIN"], "draining"),
    ("down", ["DOWN"], "down"), ("down*", ["DOWN", "NOT_RESPONDING"], "down"),
    ("idle~", ["IDLE", "POWERED_DOWN"], "powered_down"),
    ("allocated!", ["ALLOCATED", "POWER_DOWN"], "allocated"),
    ("mixed#", ["MIXED", "POWERING_UP"], "mixed"),
    ("idle%", ["IDLE", "POWERING_DOWN"], "powered_down"),
    ("reserved", ["IDLE", "RESERVED"], "reserved"),
    ("maint", ["IDLE", "MAINTENANCE"], "maintenance"),
    ("planned", ["IDLE", "PLANNED"], "reserved"),
    ("fail", ["IDLE", "FAIL"], "drained"), ("failing", ["ALLOCATED", "FAIL"], "draining"),
    ("inval", ["IDLE", "DRAIN", "INVALID_REG"], "drained"), ("future", ["FUTURE"], "unknown"),
    ("allocated+", ["ALLOCATED", "COMPLETING"], "allocated"),
    ("mixed!", ["MIXED", "POWER_DOWN"], "mixed"),
    ("maint*", ["IDLE", "NOT_RESPONDING", "MAINTENANCE"], "maintenance"),
    ("drained*", ["IDLE", "DRAIN", "NOT_RESPONDING"], "drained"),
    ("draining@", ["MIXED", "DRAIN", "REBOOT_REQUESTED"], "draining"),
    ("reboot^", ["DOWN", "REBOOT_ISSUED"], "down"),
]


def test_the_same_nodes_as_text_and_as_json_give_the_same_samples():
    names = [f"n{i:02d}" for i in range(len(FORMS))]
    text = "\n".join(SEP.join((name, long, "4/0/0/4", "gpu:2", "gpu:1(IDX:0)")) + SEP
                     for name, (long, _, _) in zip(names, FORMS, strict=True))
    restd = {"nodes": [{"name": name, "state": states, "cpus": 4, "alloc_cpus": 4,
                        "gres": "gpu:2", "gres_used": "gpu:1(IDX:0)"}
                       for name, (_, states, _) in zip(names, FORMS, strict=True)]}
    groups = {"sinfo": [{"nodes": {"nodes": [name]}, "node": {"state": states},
                         "cpus": {"total": 4, "allocated": 4},
                         "gres": {"total": "gpu:2", "used": "gpu:1(IDX:0)"}}
                        for name, (_, states, _) in zip(names, FORMS, strict=True)]}
    forms = [node_samples(nodes, "c", "slurm", SLOT) for nodes in (
        parse_sinfo_text(text, {}, NODE_RULES), parse_nodes_json(restd, {}, NODE_RULES),
        parse_nodes_json(groups, {}, NODE_RULES))]
    assert forms[0] == forms[1] == forms[2]
    assert [(s.tag("node"), s.tag("node_state"), s.tag("native_state")) for s in forms[0]] \
        == [(name, common, "+".join(states))
            for name, (_, states, common) in zip(names, FORMS, strict=True)]


def test_a_busy_cloud_node_waiting_to_power_down_is_allocated():
    doc = {"nodes": [{"name": "cloud1", "state": ["ALLOCATED", "CLOUD", "POWER_DOWN"],
                      "cpus": 22, "alloc_cpus": 22}]}
    (node,) = parse_nodes_json(doc, {}, NODE_RULES)
    assert (node.node_state, node.native_state, node.cpus_alloc) == \
        ("allocated", "ALLOCATED+CLOUD+POWER_DOWN", 22.0)
    (draining,) = parse_nodes_json({"nodes": [{"name": "n", "state": [
        "IDLE", "DRAIN", "COMPLETING"], "cpus": 4, "alloc_cpus": 0}]}, {}, NODE_RULES)
    assert draining.node_state == "draining"


def test_a_group_of_sinfo_json_has_each_nodes_gpus_not_a_share_of_them():
    doc = {"sinfo": [{"nodes": {"nodes": [f"g{i}" for i in range(8)]},
                      "node": {"state": ["MIXED"]}, "cpus": {"total": 64, "allocated": 16},
                      "gres": {"total": "gpu:1", "used": "gpu:1(IDX:0)"}}]}
    nodes = parse_nodes_json(doc, {}, NODE_RULES)
    assert [(n.gpus, n.gpus_alloc, n.cpus, n.cpus_alloc) for n in nodes] == \
        [(1.0, 1.0, 8.0, 2.0)] * 8
    assert sum(n.gpus for n in nodes) == 8.0
