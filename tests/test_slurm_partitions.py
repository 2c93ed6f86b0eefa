"""Slurm partitions (`batch_partitions`): slurmrestd /partitions, `sinfo --json` of 21.08 to
23.11, the text path, the live source and a real one-node Slurm; the figures expected are
computed here from the raw files (or the exporters' own outputs), not by qmonit's parsers."""

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from qmonit.core.batchjobs import BatchNode
from qmonit.core.config import default_section
from qmonit.core.sample import make_sample
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import NODE_STATES, load_rules
from qmonit.sources.slurm import SlurmSource, parse_nodes_json
from qmonit.sources.slurm_partitions import (
    node_states,
    parse_partitions_json,
    partition_samples,
    partitions_of_nodes_json,
    partitions_of_text,
)
from tests.conftest import SHARED_SAMPLES as SAMPLES
from tests.servers import environ_without_qmonit
from tests.slurm_cluster import SlurmCluster, available
from tests.slurm_fakes import health_answer

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TELEGRAF = "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_"
LCROWNOVER = "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiPartitionResp.json"
RIVOS = "rivosinc+prometheus-slurm-exporter__exporter_fixtures_"
MARSHALL = "MarshallWace+slurm-exporter__pkg_slurm_test_data_sinfo-nodes"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")


def sample_doc(name):
    return json.loads((SAMPLES / name).read_text())


def point(partition, state, nodes, cpus, alloc=None, by_state=None, cluster="c1"):
    fields = {"nodes": nodes, "cpus": cpus}
    if alloc is not None:
        fields["cpus_alloc"] = alloc
        fields.update({f"nodes_{s}": float((by_state or {}).get(s, 0)) for s in NODE_STATES})
    return make_sample("batch_partitions", {"cluster": cluster, "scheduler": "slurm",
                                            "partition": partition, "partition_state": state},
                       fields, SLOT)


def samples_of(counts, problems=None):
    found = [] if problems is None else problems
    out = partition_samples(counts, "c1", "slurm", SLOT, found)
    if problems is None:
        assert found == []
    return out


def from_nodes_json(doc):
    """What collect writes from one sinfo --json document: the node states of its nodes."""
    problems = []
    nodes = parse_nodes_json(doc, {}, load_rules("slurm_nodes"), problems)
    counts = partitions_of_nodes_json(doc, node_states(nodes), problems)
    assert problems == []
    return samples_of(counts)


def common_state(base, flags):
    """The common state of the node states these recordings hold, by Slurm's own reading
    (a drain flag: drained when idle or down, draining when busy; not responding: down)."""
    if "DRAIN" in flags:
        return "drained" if base in ("IDLE", "DOWN") else "draining"
    if "NOT_RESPONDING" in flags or base == "DOWN":
        return "down"
    return {"IDLE": "idle", "MIXED": "mixed", "ALLOCATED": "allocated"}[base]


# -- slurmrestd /partitions ------------------------------------------------------------------

@needs_samples
def test_slurmrestd_0_0_38_partitions_give_what_telegraf_writes():
    expected_out = (SAMPLES / f"{TELEGRAF}expected.out").read_text()
    telegraf = re.findall(r'^slurm_partitions,name=([^,]+),\S+ .*state="(\w+)",'
                          r'total_cpu=(\d+)i,total_nodes=(\d+)i', expected_out, re.M)
    assert telegraf == [("atlas", "UP", "632", "21")]
    problems = []
    counts = parse_partitions_json(sample_doc(f"{TELEGRAF}responses_partitions.json"), problems)
    assert problems == []
    assert samples_of(counts) == [point(name, state, float(nodes), float(cpus))
                                  for name, state, cpus, nodes in telegraf]


@needs_samples
def test_slurmrestd_0_0_40_partitions_of_23_11():
    doc = sample_doc(LCROWNOVER)
    expected = [point(r["name"], "+".join(r["partition"]["state"]), float(r["nodes"]["total"]),
                      float(r["cpus"]["total"])) for r in doc["partitions"]]
    problems = []
    assert samples_of(parse_partitions_json(doc, problems)) == expected
    assert problems == []
    assert [(s.tag("partition"), s.field("nodes"), s.field("cpus")) for s in expected] == [
        ("compute", 42.0, 5376.0), ("gpu", 23.0, 1104.0), ("memory", 16.0, 896.0),
        ("memorylong", 8.0, 448.0), ("preempt", 345.0, 17772.0)]


def test_a_partitions_record_without_name_or_totals_is_reported_and_skipped():
    doc = {"partitions": [
        {"name": "good", "state": "DOWN", "total_nodes": 2, "total_cpus": 16},
        {"state": "UP", "total_nodes": 1, "total_cpus": 8},
        {"name": "half", "nodes": {"total": 3}, "cpus": {"task_binding": 0}},
        {"name": "good", "partition": {"state": ["UP"]}, "nodes": {"total": 9},
         "cpus": {"total": {"set": True, "infinite": False, "number": 72}}},
        {"name": "huge", "state": "UP", "total_nodes": 1e12, "total_cpus": 8},
        {"name": "drain", "partition": {"state": ["DRAIN"]}, "nodes": {"total": 9},
         "cpus": {"total": {"set": True, "infinite": False, "number": 72}}}]}
    problems = []
    samples = samples_of(parse_partitions_json(doc, problems), problems)
    assert samples == [point("good", "DOWN", 2, 16), point("drain", "DRAIN", 9, 72)]
    assert problems == [
        "slurmrestd /partitions: record 1 has no name; skipped",
        "slurmrestd /partitions: partition half: no total of nodes or CPUs "
        "(total_nodes/nodes.total, total_cpus/cpus.total); skipped",
        "slurmrestd /partitions: partition good listed again; the first kept",
        "c1: partition huge: field nodes = 1000000000000.0 is above the maximum 1e+07; skipped"]


# -- sinfo --json: node records --------------------------------------------------------------

def expected_from_node_records(doc):
    """Per partition, from a `nodes` list: its nodes, CPUs, allocated CPUs, nodes per state."""
    sums = defaultdict(lambda: [0.0, 0.0, 0.0, Counter()])
    for record in doc["nodes"]:
        for partition in record["partitions"]:
            acc = sums[partition]
            acc[0] += 1
            acc[1] += record["cpus"]
            acc[2] += record["alloc_cpus"]
            acc[3][common_state(record["state"].upper(), record["state_flags"])] += 1
    return [point(p, "UNKNOWN", n, cpus, alloc, states)
            for p, (n, cpus, alloc, states) in sums.items()]


@needs_samples
def test_sinfo_json_of_21_08_sums_each_partitions_nodes():
    doc = sample_doc(f"{RIVOS}sinfo_out.json")
    assert from_nodes_json(doc) == expected_from_node_records(doc) == [point(
        "hw", "UNKNOWN", 4, 256, 4, {"mixed": 1, "idle": 1, "allocated": 1, "down": 1})]


@needs_samples
def test_sinfo_json_of_21_08_agrees_with_the_exporters_per_partition_figures():
    doc = sample_doc(f"{MARSHALL}.json")
    samples = from_nodes_json(doc)
    assert samples == expected_from_node_records(doc)
    prom = (SAMPLES / f"{MARSHALL}.prom").read_text()
    exporter = defaultdict(lambda: [0, 0.0, 0.0])
    for metric, partition, value in re.findall(
            r'^slurm_node_cpu_(allocated|tot)\{name="[^"]+",partition="([^"]+)"\} (\S+)$',
            prom, re.M):
        exporter[partition][0] += metric == "tot"
        exporter[partition][1 if metric == "tot" else 2] += float(value)
    assert {s.tag("partition"): [s.field("nodes"), s.field("cpus"), s.field("cpus_alloc")]
            for s in samples} == {p: [float(n), cpus, alloc] for p, (n, cpus, alloc)
                                  in exporter.items()}
    assert sum(s.field("nodes") for s in samples) == 1235  # node x partition pairs
    high = next(s for s in samples if s.tag("partition") == "EquityHighPriority")
    assert [high.field(f"nodes_{s}") for s in ("allocated", "mixed", "draining", "drained",
                                               "down", "idle")] == [69, 54, 2, 1, 1, 0]


# -- sinfo --json: node groups (23.02+) ------------------------------------------------------

@needs_samples
def test_sinfo_json_of_23_02_reads_the_node_groups():
    doc = sample_doc(f"{RIVOS}sinfo_dataparser.json")
    [group] = doc["sinfo"]
    assert from_nodes_json(doc) == [point(
        group["partition"]["name"], "UNKNOWN", len(group["nodes"]["nodes"]),
        group["cpus"]["total"], group["cpus"]["allocated"],
        {common_state(group["node"]["state"][0], group["node"]["state"][1:]): 1})]


def group(partition, state, names, node_state, total, alloc):
    own = {"partition": {"state": state}} if state else {}
    return {"node": {"state": node_state}, "nodes": {"nodes": names, "total": len(names)},
            "cpus": {"allocated": alloc, "idle": total - alloc, "other": 0, "total": total},
            "partition": {"name": partition, **own}}


def test_sinfo_json_node_groups_sum_their_cpus_and_carry_the_partition_state():
    """sinfo --json without -N (23.11 shape): a group of several nodes sums their CPUs; a
    node in two partitions counts in each; the partition's own state comes with it."""
    doc = {"sinfo": [
        group("cpu", ["UP"], ["n1", "n2", "n3"], ["IDLE"], 192, 0),
        group("cpu", ["UP"], ["n4"], ["MIXED"], 64, 10),
        group("cpu", ["UP"], ["n5", "n6"], ["IDLE", "DRAIN"], 128, 0),
        group("cpu", ["UP"], ["n4"], ["MIXED"], 64, 10),  # listed again: counted once
        group("old", ["INACTIVE"], ["n4"], ["MIXED"], 64, 10),
        group("", ["UP"], ["n9"], ["IDLE"], 64, 0),  # a node in no partition
        group("gpu", None, ["g1", "g2"], ["ALLOCATED"], 256, 256)]}
    assert from_nodes_json(doc) == [
        point("cpu", "UP", 6, 384, 10, {"idle": 3, "mixed": 1, "drained": 2}),
        point("old", "INACTIVE", 1, 64, 10, {"mixed": 1}),
        point("gpu", "UNKNOWN", 2, 256, 256, {"allocated": 2})]


def test_node_states_come_from_the_nodes_batch_nodes_writes():
    """A node batch_nodes skips (impossible numbers) or does not know counts as unknown."""
    doc = {"sinfo": [group("cpu", ["UP"], ["n1"], ["IDLE"], 64, 0),
                     group("cpu", ["UP"], ["n2"], ["IDLE"], 64, 0),
                     group("cpu", ["UP"], ["n3"], ["IDLE"], 64, 0)]}
    nodes = [BatchNode("n1", "idle", 64.0, 0.0), BatchNode("n2", "idle", float("nan"), 0.0)]
    problems = []
    counts = partitions_of_nodes_json(doc, node_states(nodes), problems)
    assert problems == []
    assert samples_of(counts) == [point("cpu", "UP", 3, 192, 0, {"idle": 1, "unknown": 2})]


def test_impossible_cpus_cost_only_their_record():
    doc = {"nodes": [{"name": "n1", "partitions": ["p"], "cpus": 8, "alloc_cpus": 2},
                     {"name": "n2", "partitions": ["p"], "cpus": -8, "alloc_cpus": 0}],
           "sinfo": [group("q", ["UP"], ["n3"], ["IDLE"], 1e300, 0)]}
    problems = []
    counts = partitions_of_nodes_json(doc, {"n1": "mixed"}, problems)
    assert problems == [
        "sinfo --json: node n2: field cpus = -8.0 is negative; not counted in its partitions",
        "sinfo --json: node group 0: field cpus = 1e+300 is above the maximum 1e+06; not "
        "counted in partition q"]
    assert samples_of(counts) == [point("p", "UNKNOWN", 1, 8, 2, {"mixed": 1})]


# -- the text path ---------------------------------------------------------------------------

def test_sinfo_text_lines_per_node_and_partition():
    text = ("n1|cpu|up|2/6/0/8|\nn2|cpu|up|0/0/8/8|\nn1|old|inactive|2/6/0/8|\n"
            "n3   |gpu  |drain |4/0/0/4 |\nn1|cpu|up|2/6/0/8|\n"
            "n4|cpu\nn5|cpu|up|x/y|\n")
    problems = []
    counts = partitions_of_text(text, {"n1": "mixed", "n2": "drained", "n3": "allocated"},
                                problems)
    assert problems == ["sinfo partitions line 6: 2 fields, expected 4; skipped: 'n4|cpu'",
                        "sinfo partitions line 7 (node n5): CPUsState 'x/y' is not A/I/O/T; "
                        "skipped"]
    assert samples_of(counts) == [
        point("cpu", "UP", 2, 16, 2, {"mixed": 1, "drained": 1}),
        point("old", "INACTIVE", 1, 8, 2, {"mixed": 1}),
        point("gpu", "DRAIN", 1, 4, 4, {"allocated": 1})]


# -- the live source with a scripted runner --------------------------------------------------

SQUEUE_LINE = ("7|RUNNING|None|cpu|alice|users|atlas|4|cpu=4,mem=4G,node=1|n1|"
               "2026-11-21T11:00:00|2026-11-21T11:05:00|2026-11-22T11:05:00|\n")
SINFO_JSON = json.dumps({"nodes": [
    {"name": "n1", "state": "mixed", "state_flags": [], "partitions": ["cpu", "all"],
     "cpus": 8, "alloc_cpus": 4, "gres": "", "gres_used": ""},
    {"name": "n2", "state": "idle", "state_flags": ["DRAIN"], "partitions": ["all"],
     "cpus": 16, "alloc_cpus": 0, "gres": "", "gres_used": ""}]})


class Runner:
    """Answers as a two-node Slurm would; keeps every command line it ran."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, timeout):
        self.calls.append(argv)
        if (answer := health_answer(argv)) is not None:
            return answer
        if argv[0] == "squeue":
            if "--json" in argv:
                return json.dumps({"jobs": [{"job_id": 7, "user_name": "alice",
                                             "account": "atlas", "partition": "cpu",
                                             "job_state": "RUNNING", "nodes": "n1",
                                             "tres_alloc_str": "cpu=4,mem=4G"}]})
            return SQUEUE_LINE
        if "--json" in argv:
            return SINFO_JSON
        if "PartitionName" in argv[-1]:
            return "n1|cpu|up|4/4/0/8|\nn1|all|down|4/4/0/8|\nn2|all|down|0/0/16/16|\n"
        return "n1|mixed|4/4/0/8|(null)|(null)|\nn2|drained|0/0/16/16|(null)|(null)|\n"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_collect_writes_partitions_from_the_same_nodes(fmt):
    runner = Runner()
    source = SlurmSource(default_section(
        SlurmSection, cluster="c1", bin_dir="", format=fmt, timeout_s=5),
                         load_rules("slurm"), runner)
    collection = source.collect(SLOT)
    assert collection.problems == []
    partitions = [s for s in collection.samples if s.measurement == "batch_partitions"]
    text = fmt == "text"
    assert partitions == [
        point("cpu", "UP" if text else "UNKNOWN", 1, 8, 4, {"mixed": 1}),
        point("all", "DOWN" if text else "UNKNOWN", 2, 24, 4, {"mixed": 1, "drained": 1})]
    sinfo = [argv for argv in runner.calls if argv[0] == "sinfo"]
    assert sinfo == ([["sinfo", "-h", "-N", "-O", "NodeHost:|,StateLong:|,CPUsState:|,Gres:|,"
                                                  "GresUsed:|,Timestamp:|,User:|,Reason:|"],
                      ["sinfo", "-h", "-N", "-O", "NodeHost:|,PartitionName:|,Available:|,"
                                                  "CPUsState:|"]] if text else
                     [["sinfo", "-N", "--json"]])  # the JSON read once, for both


# -- recorded input --------------------------------------------------------------------------

@needs_samples
def test_states_test_prints_the_partitions_of_a_slurmrestd_answer():
    doc = sample_doc(LCROWNOVER)
    done = subprocess.run([sys.executable, "-m", "qmonit", "states", "test", "slurm",
                           "--input", str(SAMPLES / LCROWNOVER), "--json"],
                          capture_output=True, text=True, env=environ_without_qmonit())
    assert (done.returncode, done.stderr) == (0, "")
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"measurement": "batch_partitions",
         "tags": {"cluster": "recorded", "scheduler": "slurm", "partition": r["name"],
                  "partition_state": r["partition"]["state"][0]},
         "fields": {"nodes": float(r["nodes"]["total"]), "cpus": float(r["cpus"]["total"])}}
        for r in doc["partitions"]]


# -- a real one-node Slurm -------------------------------------------------------------------

MORE_PARTITIONS = ("PartitionName=closed Nodes=localhost State=DOWN\n"
                   "PartitionName=stopped Nodes=localhost State=INACTIVE\n"
                   "PartitionName=draining Nodes=localhost State=DRAIN\n"
                   "PartitionName=empty State=UP\n")


@pytest.fixture(scope="module")
def slurm():
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster()
    with open(cluster.conf, "a") as conf:
        conf.write(MORE_PARTITIONS)
    cluster.start()
    with cluster.as_the_slurm():
        cluster.submit("-n", "3")
        cluster.submit("-n", "2", "-p", "long", user="nobody")
        cluster.wait_for(lambda: cluster.run("squeue", "-h", "-t", "R").count("\n") == 2,
                         "the test jobs to run")
        yield cluster


def test_a_real_slurm_gives_the_same_partitions_from_text_and_json(slurm):
    """Expected from scontrol's own words (State=, TotalCPUs=, TotalNodes=, CPUAlloc=)."""
    shown = slurm.run("scontrol", "show", "partition", "-o")
    alloc = float(re.search(r"CPUAlloc=(\d+)", slurm.run("scontrol", "show", "node")).group(1))
    assert alloc == 5
    expected = [(m["name"], m["state"], float(m["nodes"]), float(m["cpus"]))
                for m in re.finditer(r"PartitionName=(?P<name>\S+) .*State=(?P<state>\S+) "
                                     r"TotalCPUs=(?P<cpus>\d+) TotalNodes=(?P<nodes>\d+)", shown)]
    assert [e[:2] for e in expected] == [("batch", "UP"), ("long", "UP"), ("closed", "DOWN"),
                                         ("stopped", "INACTIVE"), ("draining", "DRAIN"),
                                         ("empty", "UP")]
    by_format = {}
    for fmt in ("text", "json"):
        source = SlurmSource(default_section(
        SlurmSection, cluster="qtest", bin_dir="", format=fmt, timeout_s=30.0), load_rules("slurm"))
        by_format[fmt] = source.collect(SLOT)
        assert by_format[fmt].problems == []
    text = [s for s in by_format["text"].samples if s.measurement == "batch_partitions"]
    json_ = [s for s in by_format["json"].samples if s.measurement == "batch_partitions"]
    # sinfo -N lists no line for a partition without nodes: nothing to count there
    assert text == [point(name, state, nodes, cpus, alloc, {"mixed": 1}, cluster="qtest")
                    for name, state, nodes, cpus in expected if nodes]
    # 22.05's sinfo --json says nothing of a partition's own state
    assert json_ == [s._replace(tags=tuple((k, "UNKNOWN" if k == "partition_state" else v)
                                           for k, v in s.tags)) for s in text]


# -- the Batch Clusters dashboard's Partitions table on a real InfluxDB ----------------------

def test_the_partitions_table_shows_each_partition_once_in_its_current_state(influx_store):
    """A partition that went DOWN: its UP series, zero-filled since, is not a second row."""
    from qmonit.collect.zerofill import zero_samples
    from qmonit.stores.state.series import SeenSeries
    from tests.grafana_macros import View, expand_influx
    from tests.test_dashboards import board

    before, now = SLOT, SLOT.replace(minute=10)
    up = point("cpu", "UP", 4, 256, 64, {"mixed": 2, "idle": 1, "down": 1})
    down = point("cpu", "DOWN", 4, 256, 32, {"mixed": 1, "idle": 2, "drained": 1})
    gpu = point("gpu", "UP", 2, 128, 128, {"allocated": 2}, cluster="c2")
    zero = zero_samples([SeenSeries(up.measurement, up.tags, tuple(dict(up.fields)))], now)
    for samples, slot in (([up, gpu], before), ([down, gpu._replace(time=now), *zero], now)):
        result = influx_store.write([s._replace(time=slot) for s in samples])
        assert (result.written, result.error) == (len(samples), None)
    model = board("batch").model
    [panel] = [p for p in model["panels"] if p.get("title") == "Partitions"]
    view = View(before, now, variables={v["name"]: v for v in model["templating"]["list"]},
                selected={"rp": "10m"})
    rows = influx_store.rows(expand_influx(panel["targets"][0]["query"], view))
    assert sorted((r["cluster"], r["partition"], r["partition_state"], r["nodes"], r["idle"],
                   r["in_use"], r["draining_drained"], r["down"], r["other"], r["cpus_alloc"],
                   r["cpus"], r["cpu_use"]) for r in rows) == [
        ("c1", "cpu", "DOWN", 4, 2, 1, 1, 0, 0, 32, 256, 0.125),
        ("c2", "gpu", "UP", 2, 0, 2, 0, 0, 0, 128, 128, 1.0)]
