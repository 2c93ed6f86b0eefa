"""`qmonit status` on fresh, healthy, stale and broken installations: the exact screen and
the monitoring-plugin exit code."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from qmonit.app import cli
from qmonit.app.status import as_json, gather, render
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.core.sample import make_sample, slot_start
from qmonit.stores.state import alerts, lease, schema
from qmonit.stores.state.status import record_runs

T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SIMULATED = {"sources": {"enabled": "simulated"}}


@pytest.fixture
def parts(tmp_path):
    parts = build(config.defaults({**SIMULATED, "qmonit": {"data_dir": str(tmp_path)}}))
    schema.create_tables(parts.engine)
    return parts


def ran(parts, slot, panda="ok", message=""):
    record_runs(parts.engine, "collect", [
        {"source": "panda", "status": panda, "message": message, "points": 10.0,
         "duration_s": 2.5},
        {"source": "cric", "status": "ok", "message": "", "points": 0.0, "duration_s": 0.4},
        {"source": "sinks", "status": "ok", "message": "", "points": 10.0, "duration_s": 3.1},
    ], slot, slot + timedelta(minutes=1))
    record_runs(parts.engine, "derive", [
        {"source": "derive", "status": "ok", "message": "", "points": 4.0, "duration_s": 0.8},
    ], slot, slot + timedelta(minutes=1, seconds=5))


def test_fresh_installation_is_a_warning(parts):
    status = gather(parts, T)
    assert status.code == 1
    assert render(status, T) == (
        "QMONIT WARNING - collect has never run (a new installation: start cron or `qmonit "
        "daemon`) | spool_points=0 critical_alerts=0\n"
        "\n"
        "spool: 0 file(s), 0 point(s), 0 bytes\n"
        "leases: none (cron, or no daemon has run)\n"
        "critical alerts open: 0\n"
        "\n"
        "WARNING: collect has never run (a new installation: start cron or `qmonit daemon`)\n")


def test_healthy_installation_under_a_daemon_is_ok(parts):
    ran(parts, T)
    lease.acquire(parts.engine, "cycle", "host-a:12", int(T.timestamp()) + 150, 60)
    now = T + timedelta(minutes=3)
    status = gather(parts, now)
    assert status.code == 0
    assert render(status, now) == (
        "QMONIT OK - collect, derive and the sources are current | spool_points=0 "
        "critical_alerts=0\n"
        "\n"
        "job       last run                        result  duration  slot\n"
        "collect   2026-11-21 10:01 (2 min ago)    ok         3.1 s  10:00\n"
        "derive    2026-11-21 10:01 (115 s ago)    ok         0.8 s  10:00\n"
        "\n"
        "source           last success\n"
        "cric             2026-11-21 10:01 (2 min ago)\n"
        "panda            2026-11-21 10:01 (2 min ago)\n"
        "\n"
        "spool: 0 file(s), 0 point(s), 0 bytes\n"
        "leases: cycle host-a:12 (held)\n"
        "critical alerts open: 0\n")


def test_stale_installation_is_critical_and_names_what_is_stale(parts):
    ran(parts, T)
    ran(parts, T + timedelta(minutes=10), panda="failed", message="HTTP 503: unavailable")
    lease.acquire(parts.engine, "cycle", "host-a:12", int(T.timestamp()), 60)
    now = T + timedelta(minutes=55)
    status = gather(parts, now)
    assert status.code == 2
    text = render(status, now)
    assert text.splitlines()[0] == (
        "QMONIT CRITICAL - collect last ran 44 min ago: the pipeline is not running; source "
        "cric: last success 44 min ago; source panda: last success 55 min ago | "
        "spool_points=0 critical_alerts=0")
    assert "leases: cycle host-a:12 (lapsed)" in text
    assert "panda            2026-11-21 10:00 (55 min ago), last run failed" in text
    assert text.splitlines()[-3:] == [
        "CRITICAL: collect last ran 44 min ago: the pipeline is not running",
        "CRITICAL: source cric: last success 44 min ago",
        "CRITICAL: source panda: last success 55 min ago"]
    report = json.loads(as_json(status))
    assert (report["status"], report["exit_code"]) == ("CRITICAL", 2)
    assert report["jobs"][0] == {"job": "collect", "last_run_at": "2026-11-21T10:11:00+00:00",
                                 "slot": "2026-11-21T10:10:00+00:00", "result": "failed",
                                 "failed": {"panda": "HTTP 503: unavailable"},
                                 "duration_s": 3.1}
    assert report["sources"][1] == {"source": "panda", "status": "failed",
                                    "last_ok_slot": "2026-11-21T10:00:00+00:00",
                                    "last_success": "2026-11-21T10:00:00+00:00",
                                    "age_s": 3300}


def test_a_failed_source_spooled_points_and_critical_alerts_are_warnings(parts):
    t = slot_start(datetime.now(UTC))  # the spool dates its files by the wall clock
    ran(parts, t - timedelta(minutes=10))
    ran(parts, t, panda="failed", message="timed out")
    ran(parts, t + timedelta(minutes=10), panda="failed", message="timed out")
    parts.spool.put([make_sample("jobs", {"panda_queue": "Q"}, {"jobs": 1.0}, t),
                     make_sample("jobs", {"panda_queue": "Q"}, {"jobs": 2.0},
                                 t - timedelta(minutes=30))], "10m")
    alerts.record(parts.engine, [(("CERN-PROD", "managed", "SCORE", "drop"), {
        "severity": "critical", "reason": "running 3 vs 400 (median)", "current": 3.0,
        "baseline": 400.0, "score": 9.0})], [], [], t)
    now = t + timedelta(minutes=20)
    status = gather(parts, now)
    assert status.code == 1
    problems = status.problems
    assert problems[0] == "WARNING: collect's last run failed: panda: timed out"
    assert problems[1].startswith("WARNING: 2 point(s) spooled since ")
    assert problems[1].endswith(": a store is not taking writes")
    assert problems[2:] == ["WARNING: 1 critical suspicious-site alert(s) open"]
    text = render(status, now)
    assert "  CERN-PROD managed SCORE drop: running 3 vs 400 (median)" in text
    assert f" bytes, oldest slot {t - timedelta(minutes=30):%Y-%m-%d %H:%M}\n" in text
    assert status.spool["oldest_slot"] == (t - timedelta(minutes=30)).isoformat()


def run_status(*args):
    done = subprocess.run([sys.executable, "-m", "qmonit", *args, "status"],
                          capture_output=True, text=True)
    return done.returncode, done.stdout


def test_broken_installations_are_unknown(write_config, tmp_path):
    path = write_config(SIMULATED)
    assert run_status("-c", str(path)) == (3, (
        f"QMONIT UNKNOWN - the state store sqlite:///{tmp_path}/data/qmonit.sqlite has no "
        "tables yet (alerts, batch_clusters, batch_job_hosts): run `qmonit init`\n"))
    down = write_config({**SIMULATED, "sql": {"url": "mysql+mysqlconnector://qmonit:s3cret-pw"
                                                     "@127.0.0.1:9/qmonit"}}, "down.cfg")
    code, out = run_status("-c", str(down))
    assert code == 3
    assert out.startswith("QMONIT UNKNOWN - the state store "
                          "mysql+mysqlconnector://qmonit:***@127.0.0.1:9/qmonit cannot be "
                          "read: ")
    assert "s3cret-pw" not in out
    bad = write_config({**SIMULATED, "daemon": {"cycle_minute": "10"}}, "bad.cfg")
    assert run_status("-c", str(bad)) == (3, (
        f"QMONIT UNKNOWN - configuration error: {bad}: [daemon] cycle_minute = '10': must be "
        "at most 9\n"))


def test_an_installation_from_before_the_daemon_runs_and_reports_without_leases(parts):
    with parts.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE leases")
    ran(parts, T)
    status = gather(parts, T + timedelta(minutes=3))
    assert (status.code, status.leases) == (0, [])
    assert "leases: none (cron, or no daemon has run)" in render(status, T)


def test_last_success_is_when_the_source_succeeded_not_its_slot(parts):
    """A success seconds ago said "9 min ago": the age counted from the slot's start."""
    record_runs(parts.engine, "collect", [
        {"source": "panda", "status": "ok", "message": "", "points": 1.0, "duration_s": 1.0}],
        T, T + timedelta(minutes=9))
    now = T + timedelta(minutes=9, seconds=5)
    assert "panda            2026-11-21 10:09 (5 s ago)\n" in render(gather(parts, now), now)


@pytest.mark.parametrize("minutes, code, first", [
    (5, 0, "QMONIT OK - collect, derive and the sources are current"),
    (15, 1, "QMONIT WARNING - collect last ran 15 min ago: the pipeline is not running; "
            "source cric: last success 15 min ago; source panda: last success 15 min ago"),
    (25, 2, "QMONIT CRITICAL - collect last ran 25 min ago: the pipeline is not running; "
            "source cric: last success 25 min ago; source panda: last success 25 min ago")])
def test_warning_and_critical_thresholds(write_config, capsys, minutes, code, first):
    """`status -w 10 -c 20`, as a Nagios check is given, on the command line."""
    path = write_config(SIMULATED)
    parts = build(config.load(str(path), environ={}))
    schema.create_tables(parts.engine)
    run_at = datetime.now(UTC) - timedelta(minutes=minutes)
    for job, source in (("collect", "panda"), ("collect", "cric"), ("derive", "derive")):
        record_runs(parts.engine, job, [{"source": source, "status": "ok", "message": "",
                                         "points": 1.0, "duration_s": 1.0}],
                    slot_start(run_at), run_at)
    assert cli.main(["-c", str(path), "status", "-w", "10", "-c", "20"]) == code
    assert capsys.readouterr().out.splitlines()[0].startswith(first)


@pytest.mark.parametrize("limits", [["-w", "40", "-c", "20"], ["-w", "0"]])
def test_thresholds_the_wrong_way_round_are_unknown(write_config, capsys, limits):
    path = write_config(SIMULATED)
    assert cli.main(["-c", str(path), "status", *limits]) == 3
    warning, critical = (limits + ["-c", "30"])[1], (limits + ["-c", "30"])[3]
    assert capsys.readouterr().out == (f"QMONIT UNKNOWN - -w {warning} and -c {critical}: give "
                                       "0 < -w <= -c (minutes)\n")
