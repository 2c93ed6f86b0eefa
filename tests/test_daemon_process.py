"""The daemon as it runs for real: jobs as `qmonit run` processes, signals to a real
`qmonit daemon` process."""

import configparser
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from qmonit.app.daemon import ProcessRunner
from qmonit.core import config
from qmonit.core.sample import slot_start
from qmonit.stores.sql import make_engine
from qmonit.stores.state.status import source_status

SIMULATED = {"sources": {"enabled": "simulated"}, "logging": {"level": "INFO"}}


def test_a_job_runs_as_qmonit_run_and_records_itself_as_from_cron(write_config, tmp_path):
    path = write_config(SIMULATED)
    cfg = config.load(str(path), environ={})
    assert subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "init"],
                          capture_output=True).returncode == 0
    at = slot_start(datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    run = ProcessRunner(str(path))("collect", at, 120.0, lambda: "")
    assert (run.job, run.exit_code, run.stopped) == ("collect", 0, "")
    engine = make_engine(cfg.sql_url)
    with engine.connect() as conn:
        rows = {(r.job, r.source): (r.status, r.last_slot) for r in conn.execute(
            select(source_status))}
    assert rows[("collect", "panda")] == ("ok", at.replace(tzinfo=None))
    assert rows[("collect", "sinks")] == ("ok", at.replace(tzinfo=None))


def test_a_job_past_its_deadline_is_terminated(tmp_path):
    hangs = tmp_path / "python"
    hangs.write_text("#!/bin/sh\nexec sleep 60\n")
    hangs.chmod(0o755)
    started = time.monotonic()
    run = ProcessRunner(None, python=str(hangs), poll_s=0.1)(
        "collect", datetime(2026, 11, 1, tzinfo=UTC), 1.0, lambda: "")
    assert run.stopped == "past its deadline (1 s)"
    assert run.exit_code is None
    assert time.monotonic() - started < 5  # SIGTERM ended it; no SIGKILL wait


def test_the_daemon_process_keeps_its_configuration_on_a_bad_sighup_and_exits_0_on_sigterm(
        write_config, tmp_path):
    path = write_config({**SIMULATED, "logging": {"level": "INFO",
                                                  "file": str(tmp_path / "daemon.log")}})
    subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "init"], check=True,
                   capture_output=True)
    daemon = subprocess.Popen([sys.executable, "-m", "qmonit", "-c", str(path), "daemon"])
    log = tmp_path / "daemon.log"

    def wait_for(text, timeout_s=20.0):
        end = time.time() + timeout_s
        while time.time() < end:
            if log.exists() and text in log.read_text():
                return
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not in the log: {log.read_text()}")

    try:
        wait_for("started: collect and derive at minute 1 of each slot, hourly at :07, "
                 "daily at 00:17 UTC")
        path.write_text(path.read_text() + "[daemon]\nhourly_minute = 99\n")
        daemon.send_signal(signal.SIGHUP)
        wait_for("SIGHUP: configuration not reloaded, the one in use is kept: ")
        wait_for("[daemon] hourly_minute = '99': must be at most 59")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        wait_for("SIGTERM received: stopping once the running job ends (at most 120 s)")
        wait_for("stopped")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


ROOT = Path(__file__).resolve().parents[1]


def test_the_cron_watchdog_starts_the_daemon_once_and_is_silent_while_it_runs(
        write_config, tmp_path):
    cfg = write_config(SIMULATED)
    subprocess.run([sys.executable, "-m", "qmonit", "-c", str(cfg), "init"], check=True,
                   capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMONIT_")}
    env.update(QMONIT_CONFIG=str(cfg), QMONIT_LOG_DIR=str(tmp_path / "log"),
               QMONIT_PYTHON=sys.executable)
    first = subprocess.Popen([str(ROOT / "run.sh"), "daemon"], env=env)
    log = tmp_path / "log" / "daemon.log"
    try:
        end = time.time() + 20
        while time.time() < end and not (log.exists() and "started:" in log.read_text()):
            time.sleep(0.1)
        assert "started:" in log.read_text()
        again = subprocess.run([str(ROOT / "run.sh"), "daemon"], env=env, capture_output=True,
                               text=True, timeout=20)
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
        assert first.poll() is None  # the first is still the one running
    finally:
        children = Path(f"/proc/{first.pid}/task/{first.pid}/children").read_text().split()
        for child in children:  # run.sh's python: the daemon
            os.kill(int(child), signal.SIGTERM)
        first.wait(30)
    assert first.returncode == 0
    assert log.read_text().count("started:") == 1


def test_the_systemd_unit_runs_the_daemon_as_a_service_user_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "deploy" / "qmonit.service")
    service = unit["Service"]
    assert service["ExecStart"] == "/usr/bin/python3 -I -m qmonit daemon"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert (service["User"], service["Restart"], service["KillMode"]) == (
        "qmonit", "on-failure", "mixed")
    assert float(service["TimeoutStopSec"]) > float(config.SCHEMA["daemon"]["stop_grace_s"]
                                                    .default)
    for setting in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                    "RestrictSUIDSGID", "LockPersonality"):
        assert service[setting] == "yes", setting
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert unit["Install"]["WantedBy"] == "multi-user.target"
