"""`qmonit states test SOURCE --input FILE...` over the real recorded outputs: the totals
each gives are computed here from the files themselves, not by qmonit's parsers."""

import json
import re
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import SHARED_SAMPLES as SAMPLES
from tests.servers import environ_without_qmonit

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")


def states_test(source, *names, as_json=False):
    done = subprocess.run([sys.executable, "-m", "qmonit", "states", "test", source,
                           "--input", *(str(SAMPLES / n) for n in names),
                           *(["--json"] if as_json else [])],
                          capture_output=True, text=True, env=environ_without_qmonit())
    assert done.returncode == 0, done.stderr
    return done


def samples(source, *names):
    return [json.loads(line) for line in states_test(source, *names, as_json=True)
            .stdout.splitlines()]


def table(done):
    """{(native, state): count} from the printed table."""
    rows = {}
    for line in done.stdout.splitlines()[2:]:
        if "->" in line:
            left, right = line.split("->")
            rows[(left.split()[0], right.split()[0])] = float(line.split()[-1])
    return rows


def test_slurm_nodes_of_24_05_slurmrestd():
    name = ("fluidstackio+slurm-exporter__example_rest_api_response_rest_api_example_"
            "response_nodes.json")
    doc = json.loads((SAMPLES / name).read_text())
    points = samples("slurm_nodes", name)
    assert len(points) == len(doc["nodes"]) == 981
    assert sum(p["fields"]["gpus_alloc"] for p in points) == sum(
        int(n) for r in doc["nodes"] for n in re.findall(r"gpu:\(null\):(\d+)", r["gres_used"]))
    assert sum(p["fields"]["cpus_alloc"] for p in points) == sum(r["alloc_cpus"]
                                                                 for r in doc["nodes"])
    assert table(states_test("slurm_nodes", name)) == {
        ("+".join(state), common): float(n) for state, n in
        Counter(tuple(r["state"]) for r in doc["nodes"]).items()
        for common in [{"IDLE": "idle", "MIXED": "mixed", "ALLOCATED": "allocated"}.get(
            state[0]) if "DRAIN" not in state else
            ("drained" if state[0] in ("IDLE", "DOWN") else "draining")]}


def test_slurm_nodes_of_21_08_and_23_02_json():
    stem = "MarshallWace+slurm-exporter__pkg_slurm_test_data_sinfo-nodes"
    states = Counter(p["tags"]["node_state"] for p in samples("slurm_nodes", f"{stem}.json"))
    prom = (SAMPLES / f"{stem}.prom").read_text()
    expected = {k: int(v) for k, v in re.findall(
        r"^slurm_nodes_(alloc|down|drained|draining|mix) (\d+)$", prom, re.M)}
    assert {"alloc": states["allocated"], "down": states["down"], "drained": states["drained"],
            "draining": states["draining"], "mix": states["mixed"]} == expected
    [node] = samples("slurm_nodes", "rivosinc+prometheus-slurm-exporter__exporter_fixtures_"
                                    "sinfo_dataparser.json")
    assert (node["tags"]["node"], node["tags"]["node_state"], node["fields"]["cpus"]) == \
        ("localhost", "allocated", 1.0)


@pytest.mark.parametrize("name, version", [
    ("rivosinc+prometheus-slurm-exporter__exporter_fixtures_squeue_out.json", "21.08"),
    ("influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_jobs.json", "22.05"),
    ("lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiJobInfoResp.json", "23.11"),
])
def test_slurm_jobs_per_state_of_every_json_version(name, version):
    doc = json.loads((SAMPLES / name).read_text())
    native = Counter()
    for job in doc["jobs"]:
        state = job["job_state"][0] if isinstance(job["job_state"], list) else job["job_state"]
        tasks = job.get("array_task_string") or ""
        task_id = job.get("array_task_id")
        if isinstance(task_id, dict):
            task_id = task_id.get("number") if task_id.get("set") else None
        count = 1
        if task_id is None and tasks:  # a pending array: one record for all its tasks
            count = sum(int(b or a) - int(a) + 1 for a, b in
                        (part.partition("-")[::2] for part in tasks.split("%")[0].split(",")))
        native[state] += count
    printed = Counter()
    for (state, _), count in table(states_test("slurm", name)).items():
        printed[state] += count
    assert printed == native, version


def test_htcondor_jobs_and_slots_long_and_json():
    done = states_test("htcondor",
                       "htcondor+htcondor__src_condor_tests_python_bindings_test.old.ad",
                       "JeffersonLab+clas12-utilities__condor_q_nobatch_json_single_job.json")
    assert table(done) == {("Idle", "pending"): 1.0, ("Running", "running"): 1.0}
    points = samples("htcondor", "htcondor+htcondor__src_condor_tests_StatusAds_partionable8core")
    assert [(p["measurement"], p["tags"]["node_state"], p["fields"]["cpus"],
             p["fields"]["cpus_alloc"]) for p in points] == [("batch_nodes", "mixed", 8.0, 4.0)]


def test_cric_records_one_and_many():
    done = states_test("cric", "PanDAWMS+pilot3__queuedata.json",
                       "eschanet+QMonit__test_references_test_input_agis_pandaqueue.json")
    assert done.stdout.splitlines()[1:] == ["AGLT2_HOSPITAL  status online  cloud US",
                                            "CERN  status online  cloud CERN",
                                            "SLAC_ES-lsf  status offline  cloud US",
                                            "3 sample(s) collect would write"]
    assert "queue 'hans': empty or not an object; skipped" in done.stderr


def test_a_file_of_no_known_format_is_a_clear_error(tmp_path):
    bad = tmp_path / "out.txt"
    bad.write_text("a|b|c\n")
    done = subprocess.run([sys.executable, "-m", "qmonit", "states", "test", "slurm", "--input",
                           str(bad)], capture_output=True, text=True,
                          env=environ_without_qmonit())
    assert done.returncode == 2  # none of the formats slurm reads: refused, as a wrong kind
    assert done.stderr.startswith(f"qmonit states test slurm: {bad}: not a slurm output qmonit "
                                  "reads (text of 3 '|'-separated fields: neither squeue -O ")
