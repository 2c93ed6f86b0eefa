"""Slurm node states and GPUs, from real recorded outputs of 21.08 to 24.05 (JSON) and
sinfo text: one common node-state set, the same numbers from text and JSON."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from qmonit.core.states.rules import load_rules
from qmonit.sources.slurm import (
    gres_gpus,
    node_state_of_json,
    node_state_of_text,
    parse_nodes_json,
    parse_sinfo_text,
)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")
RULES = load_rules("slurm_nodes")


def sample(name):
    return (SAMPLES / name).read_text()


@pytest.mark.parametrize("state_long, common, native", [
    ("idle", "idle", "IDLE"), ("mixed", "mixed", "MIXED"), ("allocated", "allocated", "ALLOCATED"),
    ("drained", "drained", "IDLE+DRAIN"), ("draining", "draining", "MIXED+DRAIN"),
    ("drained*", "drained", "IDLE+DRAIN+NOT_RESPONDING"), ("idle~", "powered_down",
                                                          "IDLE+POWERED_DOWN"),
    ("idle*", "down", "IDLE+NOT_RESPONDING"), ("down*", "down", "DOWN+NOT_RESPONDING"),
    ("idle#", "powered_down", "IDLE+POWERING_UP"), ("idle%", "powered_down",
                                                    "IDLE+POWERING_DOWN"),
    ("reserved", "reserved", "IDLE+RESERVED"), ("maint", "maintenance", "IDLE+MAINTENANCE"),
    ("mixed$", "maintenance", "MIXED+MAINTENANCE"), ("completing", "allocated", "IDLE+COMPLETING"),
    ("future", "unknown", "FUTURE"), ("planned", "reserved", "IDLE+PLANNED"),
])
def test_the_text_states_map_to_the_common_node_states(state_long, common, native):
    base, flags = node_state_of_text(state_long)
    assert ("+".join((base, *flags)), RULES.map(base, f",{','.join(flags)},").state) == \
        (native, common)


@pytest.mark.parametrize("state, flags, common", [
    ("idle", ["DRAIN"], "drained"), ("mixed", ["DRAIN"], "draining"),  # 21.08, 22.05
    (["IDLE", "DRAIN"], [], "drained"), (["ALLOCATED", "DRAIN", "DYNAMIC_NORM"], [],
                                         "draining"),  # 23.02+
    (["DOWN", "DRAIN", "DYNAMIC_NORM"], [], "drained"), (["IDLE", "DYNAMIC_NORM"], [], "idle"),
    (["IDLE", "POWERED_DOWN"], [], "powered_down"), ("down", ["NOT_RESPONDING"], "down"),
])
def test_the_json_states_of_every_version_map_alike(state, flags, common):
    base, all_flags = node_state_of_json(state, flags)
    assert RULES.map(base, f",{','.join(all_flags)},").state == common


def test_gpus_with_no_type_count():
    assert gres_gpus("gpu:(null):8(IDX:0-7)") == 8
    assert gres_gpus("gpu:model_a:0(IDX:N/A),gpu:model_b:1(IDX:2)") == 1
    assert gres_gpus("gpu:a100:4(S:0-1),mps:100") == 4


def test_sinfo_text_lines_that_do_not_parse_are_reported_and_padding_is_stripped():
    problems = []
    nodes = parse_sinfo_text("n1   |idle~    |0/8/0/8 |gpu:2 |gpu:0(IDX:N/A) |\n"
                             "n2|mixed\n"
                             "n3|mixed|x/y|(null)|(null)|\n", {}, problems=problems)
    assert [(n.node, n.node_state, n.native_state, n.cpus, n.gpus) for n in nodes] == [
        ("n1", "powered_down", "IDLE+POWERED_DOWN", 8.0, 2.0)]
    assert problems == ["sinfo line 2: 2 fields, expected 8; skipped: 'n2|mixed'",
                        "sinfo line 3 (node n3): CPUsState 'x/y' is not A/I/O/T; skipped"]


@needs_samples
def test_sinfo_json_of_23_02_reads_its_sinfo_node_groups():
    doc = json.loads(sample("rivosinc+prometheus-slurm-exporter__exporter_fixtures_"
                            "sinfo_dataparser.json"))
    nodes = parse_nodes_json(doc, {"localhost": 1})
    assert [(n.node, n.node_state, n.native_state, n.cpus, n.cpus_alloc, n.jobs)
            for n in nodes] == [("localhost", "allocated", "ALLOCATED", 1.0, 1.0, 1.0)]


@needs_samples
def test_21_08_json_gives_the_exporters_own_expected_states_and_cpus():
    stem = "MarshallWace+slurm-exporter__pkg_slurm_test_data_sinfo-nodes"
    nodes = parse_nodes_json(json.loads(sample(f"{stem}.json")), {})
    expected = {}  # the exporter's expected output: status and allocated CPUs per node
    for node, status, alloc in re.findall(
            r'^slurm_node_cpu_alloc\{node="([^"]+)",status="([A-Z]+)"\} (\d+)$',
            sample(f"{stem}.prom"), re.M):
        expected[node] = (status.lower(), float(alloc))
    assert len(expected) == 152
    assert {n.node: (n.node_state, n.cpus_alloc) for n in nodes} == expected
    totals = dict(re.findall(r"^slurm_nodes_(alloc|down|drained|draining|mix) (\d+)$",
                             sample(f"{stem}.prom"), re.M))
    counted = Counter(n.node_state for n in nodes)
    assert {"alloc": counted["allocated"], "down": counted["down"],
            "drained": counted["drained"], "draining": counted["draining"],
            "mix": counted["mixed"]} == {k: int(v) for k, v in totals.items()}
    # and its `sinfo` text summary of the same cluster maps to the same numbers
    text = Counter()
    for count, state_long in re.findall(r"^(\d+),(\S+)$", sample(f"{stem}.txt"), re.M):
        base, flags = node_state_of_text(state_long)
        text[RULES.map(base, f",{','.join(flags)},").state] += int(count)
    assert text == counted


@needs_samples
def test_24_05_slurmrestd_nodes_count_gpus_without_a_type_and_every_flag():
    doc = json.loads(sample("fluidstackio+slurm-exporter__example_rest_api_response_rest_api_"
                            "example_response_nodes.json"))
    nodes = parse_nodes_json(doc, {})
    # computed from the JSON here, independently of qmonit's parser
    gpus = sum(int(m) for r in doc["nodes"] for m in re.findall(r"gpu:(\d+)", r["gres"]))
    used = sum(int(m) for r in doc["nodes"] for m in re.findall(r"gpu:\(null\):(\d+)",
                                                                   r["gres_used"]))
    states = Counter(tuple(r["state"]) for r in doc["nodes"])
    assert (len(nodes), gpus, used) == (981, 7784, 2263)
    assert (sum(n.gpus for n in nodes), sum(n.gpus_alloc for n in nodes)) == (gpus, used)
    assert sum(n.cpus for n in nodes) == sum(r["cpus"] for r in doc["nodes"])
    assert Counter(n.node_state for n in nodes) == {
        "idle": states[("IDLE", "DYNAMIC_NORM")],
        "allocated": states[("ALLOCATED", "DYNAMIC_NORM")],
        "mixed": states[("MIXED", "DYNAMIC_NORM")],
        "draining": states[("ALLOCATED", "DRAIN", "DYNAMIC_NORM")],
        "drained": states[("DOWN", "DRAIN", "DYNAMIC_NORM")]}


@pytest.mark.parametrize("raw, reason", [
    ("ReqNodeNotAvail, UnavailableNodes:cs[100,101,102]", "ReqNodeNotAvail"),
    ("((ReqNodeNotAvail, UnavailableNodes:cs[100,101,102]))", "ReqNodeNotAvail"),
    ("ReqNodeNotAvail, Reserved for maintenance", "ReqNodeNotAvail, Reserved for maintenance"),
    ("Resources", "Resources"), ("None", ""), ("", ""),
])
def test_pending_reasons_lose_their_node_lists(raw, reason):
    from qmonit.sources.slurm import pending_reason

    assert pending_reason(raw) == reason


def test_a_node_list_in_the_reason_makes_no_series_per_node_set():
    from qmonit.sources.slurm import SQUEUE_FIELDS, parse_squeue_text

    line = "|".join({"JobArrayID": "{n}", "State": "PENDING",
                     "Reason": "ReqNodeNotAvail, UnavailableNodes:cs[{n},{m}]",
                     "Partition": "hw", "UserName": "u", "GroupName": "g", "Account": "a",
                     "NumCPUs": "1", "tres-alloc": "cpu=1", "NodeList": "",
                     "SubmitTime": "N/A", "StartTime": "N/A",
                     "EndTime": "N/A"}[f] for f in SQUEUE_FIELDS) + "|"
    jobs, problems = parse_squeue_text("\n".join(line.format(n=n, m=n + 1) for n in range(50)))
    assert problems == [] and {j.reason for j in jobs} == {"ReqNodeNotAvail"}


def test_tres_with_only_typed_gpus_counts_them():
    from qmonit.sources.slurm import parse_tres

    assert parse_tres("cpu=8,mem=1T,node=1,gres/gpu:a100=2") == (8.0, 2.0, 1024 * 1024.0)
    assert parse_tres("cpu=8,gres/gpu=4,gres/gpu:a100=2,gres/gpu:v100=2") == (8.0, 4.0, 0.0)


@needs_samples
def test_padded_squeue_tres_columns_of_24_11_give_their_totals():
    from qmonit.sources.slurm import parse_tres

    lines = [line.split("|") for line in sample(
        "SckyzO+slurm_exporter__test_data_squeue_tres.txt").splitlines() if line.strip()]
    parsed = [parse_tres(columns[-1]) for columns in lines]
    # independently: the numbers after cpu= and every gres/gpu[...]= of each line
    cpus = sum(int(re.search(r"cpu=(\d+)", c[-1])[1]) for c in lines)
    gpus = 0
    for columns in lines:
        plain = re.search(r"gres/gpu=(\d+)", columns[-1])
        gpus += int(plain[1]) if plain else sum(
            int(n) for n in re.findall(r"gres/gpu:[^=,]+=(\d+)", columns[-1]))
    assert (sum(c for c, _, _ in parsed), sum(g for _, g, _ in parsed)) == (cpus, gpus)
    assert sum(int(c[4]) for c in lines) == cpus  # NumCPUs, padded, agrees
