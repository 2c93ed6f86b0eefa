"""The daemon as it runs for real: jobs as `qmonit run` processes, signals to a real
`qmonit daemon` process."""

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import select

from qmonit import config
from qmonit.daemon import ProcessRunner
from qmonit.sample import slot_start
from qmonit.stores.sql import make_engine
from qmonit.stores.status_tables import source_status

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
