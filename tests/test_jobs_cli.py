"""`qmonit jobs` and `qmonit top` on a small hand-made history, on SQLite and MariaDB: jobs
that started before a window and ended in it, ended exactly at its edge, still running,
HTCondor slots found by host and Slurm node lists by node; and what a user sees for an
unknown owner, a malformed time, an unknown state and an empty answer."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from qmonit.app import cli
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.stores.sql import naive
from qmonit.stores.state import schema
from qmonit.stores.state.batch import batch_jobs_current, batch_jobs_ended


def at(hour, minute=0, day=1, month=12):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def job(cluster, job_id, owner, state, worker, start, end=None, cpus=1.0, gpus=0.0):
    return {"cluster": cluster, "job_id": job_id, "scheduler": "slurm" if cluster == "slurm"
            else "htcondor", "owner": owner, "group_name": "atlas", "state": state,
            "native_state": state.upper(), "cause": "", "reason": "", "partition": "grid",
            "worker": worker, "submit_time": naive(at(0)), "start_time": naive(start),
            "end_time": naive(end), "cpus": cpus, "gpus": gpus, "memory_mb": 2000.0,
            "last_seen": naive(at(12))}


CURRENT = [
    job("htc", "sched#1.0", "alice", "running", "slot1_3@wn01.in2p3.fr", at(10)),
    job("htc", "sched#2.0", "alice", "pending", "", None, cpus=8.0),
    job("slurm", "700", "bob", "running", "wn[0012-0014]", at(11), cpus=64.0, gpus=4.0),
    job("slurm", "701", "bob", "running", "wn0013", at(11, 30), cpus=2.0),
]
ENDED = [
    job("htc", "sched#0.0", "alice", "completed", "slot2@wn01.in2p3.fr", at(1), at(4)),
    job("slurm", "650", "carol", "failed", "wn0013", at(3), at(3)),
    job("slurm", "600", "carol", "completed", "wn0099", at(5, day=20, month=11),
        at(6, day=20, month=11)),
]


@pytest.fixture(params=["sqlite", "mariadb"])
def cfg_path(request, write_config):
    sql = {"url": request.getfixturevalue("mariadb_url")} if request.param == "mariadb" else {}
    path = write_config({"sources": {"enabled": "simulated"}, "sql": sql})
    parts = build(config.load(str(path), environ={}))
    schema.create_tables(parts.engine)
    with parts.engine.begin() as conn:
        conn.execute(insert(batch_jobs_current), CURRENT)
        conn.execute(insert(batch_jobs_ended), ENDED)
    parts.engine.dispose()
    return str(path)


def ask(cfg_path, capsys, *argv):
    code = cli.main(["-c", cfg_path, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def ids(out):
    return [row["job_id"] for row in json.loads(out)]


def test_running_at_a_time_takes_the_edges_and_what_started_before(cfg_path, capsys):
    code, out, _ = ask(cfg_path, capsys, "jobs", "--at", "2026-12-01T03:00", "--json")
    assert code == 0
    assert ids(out) == ["650", "sched#0.0"]  # ended exactly at 03:00; ran 01:00-04:00
    [edge] = [row for row in json.loads(out) if row["job_id"] == "650"]
    assert edge == {"cluster": "slurm", "job_id": "650", "owner": "carol", "state": "failed",
                    "partition": "grid", "worker": "wn0013",
                    "start_time": "2026-12-01T03:00:00+00:00",
                    "end_time": "2026-12-01T03:00:00+00:00", "cpus": 1.0, "gpus": 0.0}


def test_running_between_two_times_takes_current_and_ended_jobs(cfg_path, capsys):
    code, out, _ = ask(cfg_path, capsys, "jobs", "--between", "2026-12-01T04:00Z",
                       "2026-12-01T10:30Z", "--json")
    assert (code, ids(out)) == (0, ["sched#1.0", "sched#0.0"])  # running since 10:00; ended 04:00


def test_a_worker_is_a_host_whatever_the_scheduler_calls_it(cfg_path, capsys):
    code, out, _ = ask(cfg_path, capsys, "jobs", "--worker", "wn0013", "--json")
    assert (code, ids(out)) == (0, ["701", "700", "650"])  # itself, in wn[0012-0014], ended
    code, out, _ = ask(cfg_path, capsys, "jobs", "--worker", "wn01.in2p3.fr", "--json")
    assert (code, ids(out)) == (0, ["sched#1.0", "sched#0.0"])  # HTCondor slots on the host
    code, out, _ = ask(cfg_path, capsys, "jobs", "--worker", "wn0015", "--json")
    assert code == 1


def test_owner_state_and_cluster_narrow_it(cfg_path, capsys):
    code, out, _ = ask(cfg_path, capsys, "jobs", "--owner", "alice", "--state", "Pending",
                       "--json")
    assert (code, ids(out)) == (0, ["sched#2.0"])
    code, out, _ = ask(cfg_path, capsys, "jobs", "--cluster", "slurm", "--limit", "2", "--json")
    assert (code, ids(out)) == (0, ["701", "700"])
    code, out, _ = ask(cfg_path, capsys, "jobs", "--job", "600")
    assert code == 0
    assert out.splitlines() == [
        "cluster  job_id  owner  state      partition  worker  start             end"
        "               cpus  gpus",
        "-------  ------  -----  ---------  ---------  ------  ----------------  "
        "----------------  ----  ----",
        "slurm       600  carol  completed  grid       wn0099  2026-11-20 05:00  "
        "2026-11-20 06:00     1     0"]


def test_what_a_user_is_told(cfg_path, capsys):
    code, _, err = ask(cfg_path, capsys, "jobs", "--owner", "alcie")
    assert (code, err) == (1, "qmonit jobs: no job of owner 'alcie' is known, current or "
                              "ended; did you mean alice?\n")
    code, _, err = ask(cfg_path, capsys, "jobs", "--owner", "bob", "--state", "held")
    assert (code, err) == (1, "qmonit jobs: no job matches (owner bob, state held)\n")
    code, _, err = ask(cfg_path, capsys, "jobs", "--state", "lost")
    assert (code, err) == (2, "qmonit jobs: --state 'lost': not a job state (one of pending, "
                              "running, held, completed, failed, cancelled, unknown)\n")
    code, _, err = ask(cfg_path, capsys, "jobs", "--between", "2026-12-02", "2026-12-01")
    assert (code, err) == (2, "qmonit jobs: --between 2026-12-02T00:00Z 2026-12-01T00:00Z: "
                              "the first time is after the second\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["-c", cfg_path, "jobs", "--at", "3am"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "qmonit jobs: error: argument --at: '3am' is not an ISO 8601 time such as "
        "2026-11-21T12:00Z")


def test_top_counts_owners_and_workers_in_the_database(cfg_path, capsys):
    code, out, _ = ask(cfg_path, capsys, "top", "--json")
    assert code == 0
    assert json.loads(out) == {
        "owners": [
            {"cluster": "slurm", "owner": "bob", "running": 2, "running_cpus": 66.0,
             "running_gpus": 4.0, "pending": 0, "pending_cpus": 0.0},
            {"cluster": "htc", "owner": "alice", "running": 1, "running_cpus": 1.0,
             "running_gpus": 0.0, "pending": 1, "pending_cpus": 8.0}],
        "workers": [
            {"cluster": "slurm", "worker": "wn0013", "running": 1, "cpus": 2.0, "gpus": 0.0},
            {"cluster": "htc", "worker": "wn01.in2p3.fr", "running": 1, "cpus": 1.0,
             "gpus": 0.0},
            {"cluster": "slurm", "worker": "wn[0012-0014]", "running": 1, "cpus": 64.0,
             "gpus": 4.0}]}
    code, out, _ = ask(cfg_path, capsys, "top", "--cluster", "nowhere")
    assert (code, out) == (0, "No running or pending jobs of cluster nowhere.\n")
