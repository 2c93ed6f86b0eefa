"""`qmonit jobs` and `qmonit top` on a small hand-made history, on SQLite and MariaDB: jobs
that started before a window and ended in it, ended exactly at its edge, still running,
HTCondor slots found by host and Slurm node lists by node; and what a user sees for an
unknown owner, a malformed time, an unknown state and an empty answer."""

import json

import pytest

from qmonit.app import cli
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.stores.state import schema
from qmonit.stores.state.batch import sync_jobs
from tests.batch_history import CURRENT, KEEP, at, fill, job


@pytest.fixture(params=["sqlite", "mariadb"])
def cfg_path(request, write_config):
    sql = {"url": request.getfixturevalue("mariadb_url")} if request.param == "mariadb" else {}
    path = write_config({"sources": {"enabled": "simulated"}, "sql": sql})
    parts = build(config.load(str(path), environ={}))
    schema.create_tables(parts.engine)
    fill(parts.engine)
    parts.engine.dispose()
    return str(path)


def ask(cfg_path, capsys, *argv):
    code = cli.main(["-c", cfg_path, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def rounded(value):
    """Sums of thirds, as the database adds them: to 9 places."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return round(value, 9) if isinstance(value, float) else value


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
    code, _, err = ask(cfg_path, capsys, "jobs", "--owner", "zzz")  # like no one
    assert (code, err) == (1, "qmonit jobs: no job of owner 'zzz' is known, current or "
                              "ended\n")
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
    assert rounded(json.loads(out)) == rounded({
        "owners": [
            {"cluster": "slurm", "owner": "bob", "running": 2, "running_cpus": 66.0,
             "running_gpus": 4.0, "pending": 0, "pending_cpus": 0.0},
            {"cluster": "htc", "owner": "alice", "running": 1, "running_cpus": 1.0,
             "running_gpus": 0.0, "pending": 1, "pending_cpus": 8.0}],
        "workers": [  # by host; job 700 on wn[0012-0014]: a third of it on each
            {"cluster": "slurm", "worker": "wn0013", "running": 2, "cpus": 64 / 3 + 2,
             "gpus": 4 / 3},
            {"cluster": "slurm", "worker": "wn0012", "running": 1, "cpus": 64 / 3,
             "gpus": 4 / 3},
            {"cluster": "slurm", "worker": "wn0014", "running": 1, "cpus": 64 / 3,
             "gpus": 4 / 3},
            {"cluster": "htc", "worker": "wn01.in2p3.fr", "running": 1, "cpus": 1.0,
             "gpus": 0.0}]})
    code, out, _ = ask(cfg_path, capsys, "top", "--cluster", "nowhere")
    assert (code, out) == (0, "No running or pending jobs of cluster nowhere.\n")


def test_jobs_not_started_yet_come_last(cfg_path, capsys):
    """Two pending jobs (no start time) beside running ones: listed after them."""
    engine = build(config.load(cfg_path, environ={})).engine
    waiting = [job("sched#3.0", "alice", "pending", "", None, cpus=2.0)]
    sync_jobs(engine, "htc", "htcondor", CURRENT["htc"] + waiting, at(12, 20), KEEP)
    engine.dispose()
    code, out, _ = ask(cfg_path, capsys, "jobs", "--owner", "alice", "--json")
    assert code == 0
    assert ids(out)[:2] == ["sched#1.0", "sched#0.0"]  # started 10:00, 01:00
    assert sorted(ids(out)[2:]) == ["sched#2.0", "sched#3.0"]
