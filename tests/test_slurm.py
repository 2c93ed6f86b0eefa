"""The Slurm source against a real one-node Slurm (slurm-wlm, munge), and the recorded
JSON shapes of Slurm 21.08 to 24.x."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qmonit.core.batchjobs import BatchJob
from qmonit.core.config import default_section
from qmonit.core.sample import make_sample
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.base import SourceError
from qmonit.sources.slurm import (
    SlurmSource,
    expand_hostlist,
    gres_gpus,
    parse_nodes_json,
    parse_squeue_json,
    parse_squeue_text,
    parse_tres,
)
from qmonit.stores.sql import make_engine
from qmonit.stores.state import schema
from qmonit.stores.state.batch import current_jobs, ended_jobs, sync_jobs
from tests.slurm_cluster import SlurmCluster, available

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def settings(fmt="text"):
    return default_section(SlurmSection, cluster="qtest", format=fmt, timeout_s=30.0)


@pytest.fixture(scope="module")
def slurm():
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster().start()
    with cluster.as_the_slurm():
        ids = {
            "A": cluster.submit("-n", "2"),
            "B": cluster.submit("-H"),
            "C": cluster.submit("--begin=now+1hour"),
            "D": cluster.submit("--array=1-3"),
            "E": cluster.submit("-n", "2", "-p", "long", user="nobody"),
            "F": cluster.submit("-n", "8"),
            "G": cluster.submit("--array=1-4", "-H"),
        }

        def settled():
            lines = cluster.run("squeue", "-h", "-r", "-o", "%i %T %r").splitlines()
            return sum("RUNNING" in line for line in lines) == 5 and \
                f"{ids['F']} PENDING Resources" in lines
        cluster.wait_for(settled, "the test jobs to settle")
        cluster.ids = ids
        yield cluster


def job_point(partition, owner, group, state_, native, reason, jobs, cpus, memory):
    return make_sample("batch_jobs", {
        "cluster": "qtest", "scheduler": "slurm", "partition": partition, "owner": owner,
        "group": group, "state": state_, "native_state": native, "reason": reason,
    }, {"jobs": jobs, "cpus": cpus, "gpus": 0, "memory_mb": memory}, SLOT)


EXPECTED_JOBS = {
    job_point("batch", "root", "root", "running", "RUNNING", "none", 4, 5, 500),
    job_point("long", "nobody", "nogroup", "running", "RUNNING", "none", 1, 2, 200),
    job_point("batch", "root", "root", "held", "PENDING", "JobHeldUser", 5, 5, 500),
    job_point("batch", "root", "root", "pending", "PENDING", "BeginTime", 1, 1, 100),
    job_point("batch", "root", "root", "pending", "PENDING", "Resources", 1, 8, 800),
}
EXPECTED_NODE = make_sample("batch_nodes", {"cluster": "qtest", "scheduler": "slurm",
                                            "node": "localhost", "node_state": "mixed",
                                            "native_state": "MIXED"},
                            {"cpus": 8, "cpus_alloc": 7, "gpus": 0, "gpus_alloc": 0, "jobs": 5},
                            SLOT)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_counts_per_partition_owner_state_and_reason_with_array_tasks(slurm, fmt):
    """Text (one line per task) and JSON (a pending array is one record) agree."""
    collection = SlurmSource(settings(fmt), load_rules("slurm")).collect(SLOT)
    assert collection.problems == []
    jobs = {s for s in collection.samples if s.measurement == "batch_jobs"}
    assert jobs == EXPECTED_JOBS
    nodes = [s for s in collection.samples if s.measurement == "batch_nodes"]
    assert nodes == [EXPECTED_NODE]


def test_job_tables_follow_the_queue(slurm, mariadb_url):
    engine = make_engine(mariadb_url)
    schema.create_tables(engine)
    source = SlurmSource(settings(), load_rules("slurm"))
    collected = source.collect(SLOT).jobs
    now = datetime.now(UTC)
    assert sync_jobs(engine, "qtest", "slurm", collected, now, timedelta(days=90)) == \
        {"written": 12, "ended": 0, "expired": 0, "hosts": 5}  # the running ones, localhost
    rows = {r["job_id"]: r for r in current_jobs(engine, "qtest")}
    ids = slurm.ids
    assert sorted(rows) == sorted([ids["A"], ids["B"], ids["C"], ids["E"], ids["F"]]
                                  + [f"{ids['D']}_{n}" for n in (1, 2, 3)]
                                  + [f"{ids['G']}_{n}" for n in (1, 2, 3, 4)])
    held = rows[ids["B"]]
    assert (held["owner"], held["state"], held["native_state"], held["reason"], held["cause"],
            held["cpus"], held["memory_mb"], held["worker"]) == \
        ("root", "held", "PENDING", "JobHeldUser", "held by its owner", 1.0, 100.0, "")
    running = rows[ids["E"]]
    assert (running["owner"], running["group_name"], running["partition"], running["worker"],
            running["state"]) == ("nobody", "nogroup", "long", "localhost", "running")
    assert running["start_time"] is not None

    # unchanged jobs are not written again; a job that left moves to batch_jobs_ended
    assert sync_jobs(engine, "qtest", "slurm", collected, now, timedelta(days=90)) == \
        {"written": 0, "ended": 0, "expired": 0, "hosts": 0}
    # a job whose state or reason changed is written again, and only that one
    moved = [replace(job, reason="Priority") if job.job_id == ids["B"] else job
             for job in collected]
    assert sync_jobs(engine, "qtest", "slurm", moved, now, timedelta(days=90)) == \
        {"written": 1, "ended": 0, "expired": 0, "hosts": 0}
    assert {r["job_id"]: r["reason"] for r in current_jobs(engine, "qtest")}[ids["B"]] == \
        "Priority"
    slurm.run("scancel", ids["C"])
    collected = source.collect(SLOT).jobs  # B is listed as it was again: written back
    assert sync_jobs(engine, "qtest", "slurm", collected, now, timedelta(days=90)) == \
        {"written": 1, "ended": 1, "expired": 0, "hosts": 0}
    assert ids["C"] not in {r["job_id"] for r in current_jobs(engine, "qtest")}
    ended = ended_jobs(engine, "qtest")
    assert [(r["job_id"], r["reason"], r["state"]) for r in ended] == \
        [(ids["C"], "BeginTime", "pending")]
    assert ended[0]["end_time"] == ended[0]["last_seen"]
    # kept [collect] ended_jobs_days, then dropped
    later = now + timedelta(days=91)
    assert sync_jobs(engine, "qtest", "slurm", collected, later,
                     timedelta(days=90))["expired"] == 1
    engine.dispose()


def test_a_controller_that_is_down_is_a_source_error_not_zeros(slurm):
    slurm.stop_controller()
    try:
        with pytest.raises(SourceError) as text_error:
            SlurmSource(settings("text"), load_rules("slurm")).collect(SLOT)
        assert str(text_error.value).startswith("squeue exited 1: ")
        assert "Unable to contact slurm controller" in str(text_error.value)
        with pytest.raises(SourceError) as json_error:  # squeue --json exits 0 here
            SlurmSource(settings("json"), load_rules("slurm")).collect(SLOT)
        assert str(json_error.value).startswith("squeue --json: Slurm reported an error: ")
    finally:
        slurm.start_controller()


# -- without a cluster ------------------------------------------------------------------------

def test_tres_hostlists_and_gres():
    assert parse_tres("cpu=2,mem=8000M,node=1,billing=2,gres/gpu=1,gres/gpu:a100=1") == \
        (2.0, 1.0, 8000.0)
    assert parse_tres("cpu=64,mem=1.5T,node=2") == (64.0, 0.0, 1.5 * 1024 * 1024)
    assert parse_tres("cpu=1,mem=512K") == (1.0, 0.0, 0.5)
    assert expand_hostlist("node[01-03,7],gpu1") == \
        ["node01", "node02", "node03", "node7", "gpu1"]
    assert expand_hostlist("wn[098-100]") == ["wn098", "wn099", "wn100"]
    assert gres_gpus("gpu:a100:4(S:0-1),mps:100") == 4.0
    assert gres_gpus("gpu:2(IDX:0-1)") == 2.0
    assert gres_gpus("(null)") == 0.0


def test_a_malformed_squeue_line_is_reported_and_skipped():
    good = "7|RUNNING|None|batch|alice|users|atlas|4|cpu=4,mem=4G,node=1|wn1|" \
           "2026-11-21T11:00:00|2026-11-21T11:05:00|2026-11-22T11:05:00|"
    jobs, problems = parse_squeue_text(f"{good}\n8|PENDING|Priority\n"
                                       f"{good.replace('mem=4G', 'mem=lots')}\n")
    assert problems == [
        "squeue line 2: 3 fields, expected 13; skipped: '8|PENDING|Priority'",
        "squeue line 3 (job 7): memory 'lots' is not a number with a K/M/G/T unit; skipped"]
    assert jobs == [BatchJob(
        job_id="7", owner="alice", group="atlas", partition="batch", native_state="RUNNING",
        worker="wn1", submit_time=datetime(2026, 11, 21, 11, 0, tzinfo=UTC),
        start_time=datetime(2026, 11, 21, 11, 5, tzinfo=UTC),
        end_time=datetime(2026, 11, 22, 11, 5, tzinfo=UTC), cpus=4.0, memory_mb=4096.0)]


def test_json_errors_list_is_an_error_even_with_exit_code_zero():
    doc = {"meta": {}, "errors": [{"error": "Unable to contact slurm controller (connect "
                                            "failure)", "error_number": 1007}], "jobs": []}
    with pytest.raises(SourceError) as caught:
        parse_squeue_json(doc)
    assert str(caught.value) == ("squeue --json: Slurm reported an error: Unable to contact "
                                 "slurm controller (connect failure)")


needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is absent")


def _sample(name):
    return json.loads((SAMPLES / name).read_text())


def _summary(jobs):
    out = {}
    for job in jobs:
        key = (job.native_state, job.reason)
        out[key] = out.get(key, 0) + 1
    return out


@needs_samples
def test_recorded_squeue_json_of_21_08():
    jobs, problems = parse_squeue_json(
        _sample("rivosinc+prometheus-slurm-exporter__exporter_fixtures_squeue_out.json"))
    assert problems == []
    assert len(jobs) == 11
    assert jobs[0] == BatchJob(
        job_id="26515966", owner="bkd", group="account1", partition="hw-l",
        native_state="RUNNING", worker="cs75",
        submit_time=datetime(2023, 5, 15, 1, 41, 40, tzinfo=UTC),
        start_time=datetime(2023, 5, 15, 1, 42, 1, tzinfo=UTC),
        end_time=datetime(2023, 6, 13, 5, 23, 53, tzinfo=UTC), cpus=1.0, memory_mb=64000.0)
    assert sum(j.native_state == "PENDING" for j in jobs) == 10


@needs_samples
def test_recorded_slurmrestd_0_0_38_of_22_05():
    jobs, problems = parse_squeue_json(
        _sample("influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_jobs.json"))
    assert problems == []
    assert [(j.job_id, j.native_state, j.owner, j.group, j.cpus, j.memory_mb) for j in jobs][:1] \
        == [("20464", "RUNNING", "atl001", "atlas", 2.0, 4000.0)]
    assert _summary(jobs) == {("RUNNING", ""): 2, ("COMPLETED", ""): 1}
    nodes = parse_nodes_json(_sample(
        "influxdata+telegraf__plugins_inputs_slurm_testcases_gather_responses_nodes.json"), {})
    # state "idle" with state_flags ["DRAIN"]: drained (Telegraf, ignoring the flags, says idle)
    assert [(n.node, n.node_state, n.native_state, n.cpus, n.cpus_alloc) for n in nodes] == [
        ("naboo145", "drained", "IDLE+DRAIN", 36.0, 0.0),
        ("naboo146", "drained", "IDLE+DRAIN", 36.0, 0.0),
        ("naboo147", "allocated", "ALLOCATED", 36.0, 36.0)]


@needs_samples
def test_recorded_data_parser_0_0_40_of_23_11_counts_a_pending_array_per_task():
    jobs, problems = parse_squeue_json(
        _sample("lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiJobInfoResp.json"))
    assert problems == []
    assert _summary(jobs) == {("RUNNING", ""): 1, ("PENDING", "Resources"): 9588}
    assert (jobs[0].job_id, jobs[1].job_id, jobs[-1].job_id) == \
        ("7725337_411", "7725337_412", "7725337_9999")
    nodes = parse_nodes_json(_sample(
        "lcrownover+prometheus-slurm-exporter__testdata_V0040OpenapiNodesResp.json"), {})
    assert (nodes[0].node, nodes[0].node_state, nodes[0].native_state) == \
        ("dtn1", "down", "DOWN+NOT_RESPONDING")
    assert len(nodes) == 12


@needs_samples
def test_recorded_0_0_41_shape_reads_once_its_placeholder_errors_are_cleared():
    doc = _sample("lcrownover+prometheus-slurm-exporter__testdata_V0041OpenapiJobInfoResp.json")
    with pytest.raises(SourceError):
        parse_squeue_json(doc)
    doc["errors"] = []
    jobs, problems = parse_squeue_json(doc)
    assert problems == []
    assert [(j.job_id, j.native_state, j.owner) for j in jobs][:1] == \
        [("4", "PENDING", "user_name")]


def test_collect_writes_counts_and_fills_the_job_table(slurm, make_config):
    from qmonit.collect.components import build
    from qmonit.collect.cycle import collect

    parts = build(make_config({"sources": {"enabled": "slurm"}, "slurm": {"cluster": "qtest"}}))
    schema.create_tables(parts.engine)
    parts.store.init({})
    report = collect(parts, SLOT)
    assert report.exit_code == 0, report
    assert [(s.source, s.status) for s in report.sources] == [("slurm", "ok")]
    with parts.engine.connect() as conn:
        from sqlalchemy import text
        written = dict(conn.execute(text(
            "SELECT s.measurement, COUNT(*) FROM ts_points p JOIN ts_series s "
            "ON s.series_id = p.series_id WHERE p.field = 'jobs' GROUP BY s.measurement")).all())
    assert written["batch_jobs"] == len(EXPECTED_JOBS) - 1  # C was cancelled above
    assert written["batch_nodes"] == 1
    assert len(current_jobs(parts.engine, "qtest")) == 11


def test_states_test_shows_native_to_mapped_counts_of_the_live_jobs(slurm, write_config,
                                                                    capsys):
    from qmonit.app import cli
    path = write_config({"sources": {"enabled": "slurm"}, "slurm": {"cluster": "qtest"}})
    assert cli.main(["-c", str(path), "states", "test", "slurm"]) == 0
    assert capsys.readouterr().out == (
        "slurm state rules from slurm.rules (built in) on the live jobs of slurm:\n"
        "native_state  reason       ->  state    cause                count\n"
        "PENDING       JobHeldUser  ->  held     held by its owner        5\n"
        "PENDING       Resources    ->  pending  -                        1\n"
        "RUNNING       -            ->  running  -                        5\n")
    assert cli.main(["-c", str(path), "states", "test", "htcondor"]) == 2
    assert capsys.readouterr().err == ("qmonit states test htcondor: the htcondor source is not "
                                       "enabled ([sources] enabled)\n")


def test_a_missing_or_hanging_slurm_client_is_a_source_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = SlurmSource(replace(settings(), bin_dir=str(empty)), load_rules("slurm"))
    with pytest.raises(SourceError) as caught:
        missing.collect(SLOT)
    assert str(caught.value) == (f"{empty}/squeue: not found (install the Slurm client or set "
                                 f"[slurm] bin_dir)")
    hanging = tmp_path / "hanging"
    hanging.mkdir()
    (hanging / "squeue").write_text("#!/bin/sh\nsleep 5\n")
    (hanging / "squeue").chmod(0o755)
    slow = SlurmSource(replace(settings(), bin_dir=str(hanging), timeout_s=0.3),
                       load_rules("slurm"))
    with pytest.raises(SourceError) as caught:
        slow.collect(SLOT)
    assert str(caught.value) == f"{hanging}/squeue: no answer within 0.3 s"
