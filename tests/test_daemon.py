"""`qmonit daemon` driven by a fake clock: a day of slots in seconds, a job that overruns,
one that crashes, a signal in the middle, SIGHUP with a good and a bad configuration."""

import logging
import signal
from datetime import UTC, datetime, timedelta

import pytest

from qmonit.app.daemon import Daemon, Run
from qmonit.core import config
from qmonit.stores.sql import make_engine
from qmonit.stores.state import lease, schema
from tests.daemon_clock import FakeClock

START = datetime(2026, 11, 1, 0, 0, 30, tzinfo=UTC)
SIMULATED = {"sources": {"enabled": "simulated"}}


class FakeJobs:
    """Runs nothing: records each run at the clock's time and takes `took` seconds of it
    (a job past its deadline is stopped there, as the process runner stops it)."""

    def __init__(self, clock: FakeClock, took=None, exit_codes=None, during=None):
        self.clock = clock
        self.took = took or (lambda job, at: 20.0)
        self.exit_codes = exit_codes or (lambda job, at: 0)
        self.during = during or (lambda job, at: None)
        self.started: list[tuple[str, datetime, datetime]] = []  # job, at, started

    def __call__(self, job, at, deadline_s, tick):
        self.started.append((job, at, self.clock.now()))
        self.during(job, at)
        took = self.took(job, at)
        run = Run(job, at)
        for _ in range(int(took // 10)):  # the runner polls while the job runs
            step = min(10.0, deadline_s - (self.clock.now() - self.started[-1][2])
                       .total_seconds())
            self.clock.advance(max(step, 0))
            reason = tick() or ("past its deadline" if (self.clock.now() - self.started[-1][2])
                                .total_seconds() >= deadline_s else "")
            if reason:
                run.stopped = reason
                break
        else:
            self.clock.advance(took % 10)
            run.exit_code = self.exit_codes(job, at)
        run.duration_s = (self.clock.now() - self.started[-1][2]).total_seconds()
        return run


@pytest.fixture
def clock():
    fake = FakeClock(START)
    yield fake
    fake.undo()


def daemon_with(tmp_path, clock, jobs, load=None, **daemon_options):
    cfg = config.defaults({**SIMULATED, "qmonit": {"data_dir": str(tmp_path / "data")},
                           "daemon": {k: str(v) for k, v in daemon_options.items()}})
    engine = make_engine(cfg.sql_url)
    schema.create_tables(engine)
    engine.dispose()
    return Daemon(load or (lambda: cfg), lambda c: make_engine(c.sql_url), jobs, clock=clock,
                  holder="host-a:1")


def until(daemon, clock, end):
    while clock.now() < end:
        daemon.step()
        clock.sleep(daemon.idle_s(), daemon.wake)


def test_a_day_of_slots_runs_every_job_once_at_its_minute(tmp_path, clock):
    jobs = FakeJobs(clock)
    daemon = daemon_with(tmp_path, clock, jobs)
    until(daemon, clock, START + timedelta(days=1))
    collects = [at for job, at, _ in jobs.started if job == "collect"]
    assert collects == [datetime(2026, 11, 1, 0, 1, tzinfo=UTC) + timedelta(minutes=10 * n)
                        for n in range(144)]
    derives = [(at, started) for job, at, started in jobs.started if job == "derive"]
    assert [at for at, _ in derives] == collects  # derive follows each collect
    assert all(started == at + timedelta(seconds=20) for at, started in derives)
    assert [at for job, at, _ in jobs.started if job == "hourly"] == [
        datetime(2026, 11, 1, h, 7, tzinfo=UTC) for h in range(24)]
    assert [at for job, at, _ in jobs.started if job == "daily"] == [
        datetime(2026, 11, 1, 0, 17, tzinfo=UTC)]
    [held] = [one for one in lease.held(daemon.engine) if one.job == "cycle"]
    assert (held.holder, held.claimed_slot) == (
        "host-a:1", int(datetime(2026, 11, 1, 23, 50, tzinfo=UTC).timestamp()))


def test_minute_offsets_come_from_the_configuration(tmp_path, clock):
    jobs = FakeJobs(clock)
    daemon = daemon_with(tmp_path, clock, jobs, cycle_minute=4, hourly_minute=33)
    until(daemon, clock, START + timedelta(hours=1))
    assert [at.minute for job, at, _ in jobs.started if job == "collect"] == [4, 14, 24, 34,
                                                                              44, 54]
    assert [at.minute for job, at, _ in jobs.started if job == "hourly"] == [33]


def test_an_overrunning_job_is_stopped_at_its_deadline_and_the_next_slot_runs(
        tmp_path, clock, caplog):
    slow = datetime(2026, 11, 1, 0, 11, tzinfo=UTC)
    jobs = FakeJobs(clock, took=lambda job, at: 3600.0 if (job, at) == ("collect", slow)
                    else 20.0)
    daemon = daemon_with(tmp_path, clock, jobs)
    with caplog.at_level(logging.ERROR, logger="qmonit.app.daemon"):
        until(daemon, clock, START + timedelta(minutes=40))
    starts = [(job, f"{at:%H:%M}", f"{started:%H:%M:%S}") for job, at, started in jobs.started
              if job in ("collect", "derive")]
    assert starts == [("collect", "00:01", "00:01:00"), ("derive", "00:01", "00:01:20"),
                      ("collect", "00:11", "00:11:00"),  # stopped at 00:20:55: no derive
                      # the daily roll-up, due at 00:17, ran first (20 s)
                      ("collect", "00:21", "00:21:15"), ("derive", "00:21", "00:21:35"),
                      ("collect", "00:31", "00:31:00"), ("derive", "00:31", "00:31:20")]
    [stopped] = [r for r in daemon.runs if r.stopped]
    assert (stopped.job, stopped.at, stopped.duration_s) == ("collect", slow, 595.0)
    assert "daemon: collect for 2026-11-01 00:11 UTC past its deadline after 595 s; the " \
           "next slot runs on time" in caplog.text


def test_a_crashing_job_is_reported_and_the_schedule_goes_on(tmp_path, clock, caplog):
    jobs = FakeJobs(clock, exit_codes=lambda job, at: -11 if job == "collect" else 0)
    daemon = daemon_with(tmp_path, clock, jobs)
    with caplog.at_level(logging.ERROR, logger="qmonit.app.daemon"):
        until(daemon, clock, START + timedelta(minutes=30))
    assert [job for job, _, _ in jobs.started].count("collect") == 3
    assert [job for job, _, _ in jobs.started].count("derive") == 3
    assert "daemon: collect for 2026-11-01 00:21 UTC exited with -11 in 20.0 s" in caplog.text


def test_sigterm_in_the_middle_lets_the_job_finish_then_exits_0(tmp_path, clock):
    daemon = None

    def signal_during(job, at):
        if (job, f"{at:%H:%M}") == ("collect", "00:21"):
            daemon._on_stop(signal.SIGTERM, None)

    jobs = FakeJobs(clock, took=lambda job, at: 60.0, during=signal_during)
    daemon = daemon_with(tmp_path, clock, jobs)
    assert daemon.serve() == 0
    assert [(job, f"{at:%H:%M}") for job, at, _ in jobs.started] == [
        ("collect", "00:01"), ("derive", "00:01"), ("hourly", "00:07"), ("datadisk", "00:07"),
        ("collect", "00:11"),
        ("derive", "00:11"), ("daily", "00:17"), ("collect", "00:21")]  # no derive after it
    assert (daemon.runs[-1].job, daemon.runs[-1].exit_code) == ("collect", 0)  # finished
    assert [one.expires_at for one in lease.held(daemon.engine)] == [0, 0, 0]  # given up


def test_sigterm_stops_a_job_that_outlasts_the_grace(tmp_path, clock):
    daemon = None

    def signal_during(job, at):
        if job == "collect":
            daemon._on_stop(signal.SIGINT, None)

    jobs = FakeJobs(clock, took=lambda job, at: 500.0, during=signal_during)
    daemon = daemon_with(tmp_path, clock, jobs, stop_grace_s=60)
    assert daemon.serve() == 0
    [run] = daemon.runs
    assert (run.job, run.exit_code, run.duration_s) == ("collect", None, 60.0)
    assert run.stopped == "stopped: the daemon was asked to stop 60 s before"


def test_sighup_reloads_a_good_configuration_and_keeps_the_old_on_a_bad_one(
        tmp_path, clock, write_config, caplog):
    path = write_config({**SIMULATED, "daemon": {"cycle_minute": "1"}})
    jobs = FakeJobs(clock)
    daemon = daemon_with(tmp_path, clock, jobs, load=lambda: config.load(str(path), environ={}))
    until(daemon, clock, START + timedelta(minutes=15))
    path.write_text(path.read_text().replace("cycle_minute = 1", "cycle_minute = 12"))
    daemon._on_hup(signal.SIGHUP, None)
    with caplog.at_level(logging.ERROR, logger="qmonit.app.daemon"):
        until(daemon, clock, START + timedelta(minutes=35))
    assert f"daemon: SIGHUP: configuration not reloaded, the one in use is kept: {path}: " \
           "[daemon] cycle_minute = '12': must be at most 9" in caplog.text
    path.write_text(path.read_text().replace("cycle_minute = 12", "cycle_minute = 5"))
    daemon._on_hup(signal.SIGHUP, None)
    until(daemon, clock, START + timedelta(minutes=60))
    assert [f"{at:%H:%M}" for job, at, _ in jobs.started if job == "collect"] == [
        "00:01", "00:11", "00:21", "00:31", "00:45", "00:55"]  # :35 had passed at the reload
