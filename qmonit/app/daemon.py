"""`qmonit daemon`: the cron schedule in one long-lived process, for hosts where cron cannot
start a job every 10 minutes, and for two hosts on the same stores.

The schedule (the `schedule` library, in UTC as the slots are): collect then derive at
minute `cycle_minute` of every 10-minute slot, the hourly roll-up at `hourly_minute`,
the daily one at 00:`daily_minute`. Jobs run one at a time, each as its own
`qmonit run JOB --at ...` process, as cron runs them: every run records itself in
`qmonit_run` and `source_status` the same way, a crash or a leak of one run stays in
it, and the daemon keeps nothing that grows. A run gets until its job's next turn: past
that it is stopped and reported, and the next slot runs on time.

Before a run the daemon takes its job's lease in the SQL state store and claims the
slot (qmonit.stores.state.lease): with a second installation on the same stores, exactly one
runs each slot, and the standby takes over once the leader's lease lapses. SIGTERM or
SIGINT: the running job may finish (for up to `stop_grace_s`), the leases are given
up, exit 0. SIGHUP: the configuration is read again; a bad one is refused, loudly, and
the old one kept.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import schedule
from sqlalchemy import Engine

from qmonit.core.config import Config, ConfigError
from qmonit.core.sample import SLOT, epoch_seconds, slot_start
from qmonit.stores.sql import state_errors
from qmonit.stores.state import lease
from qmonit.support.clock import Clock, SystemClock
from qmonit.support.files import private_dir
from qmonit.support.redact import child_environment, register

log = logging.getLogger("qmonit.app.daemon")

KINDS = ("cycle", "hourly", "daily")  # cycle: collect, then derive
PERIOD = {"cycle": SLOT, "hourly": timedelta(hours=1), "daily": timedelta(days=1)}
STEPS = {"cycle": ("collect", "derive"), "hourly": ("hourly", "datadisk"), "daily": ("daily",)}
KILL_AFTER_S = 10.0  # after SIGTERM, a job that does not exit gets SIGKILL


@dataclass
class Run:
    job: str  # collect | derive | hourly | daily
    at: datetime
    exit_code: int | None = None  # None: stopped before it ended
    duration_s: float = 0.0
    stopped: str = ""  # why it was stopped


# a runner runs one job for `at` within `deadline_s`, calling `tick()` while it waits;
# tick() returns a reason to stop it early ("" to go on)
Runner = Callable[[str, datetime, float, Callable[[], str]], Run]


class ProcessRunner:
    """Each job as `python -m qmonit run JOB --at AT`, the way cron's run.sh starts it."""

    def __init__(self, config_path: str | None, python: str = sys.executable,
                 poll_s: float = 0.5, cwd: str | None = None):
        self.config_path = config_path
        self.cwd = cwd  # the data_dir: nothing a stranger can plant there
        self.python = python
        self.poll_s = poll_s

    def __call__(self, job: str, at: datetime, deadline_s: float,
                 tick: Callable[[], str]) -> Run:
        # -I (isolated): neither the working directory nor PYTHON* variables decide what is
        # imported (a planted ./qmonit/__main__.py must not run)
        command = [self.python, "-I", "-m", "qmonit"]
        if self.config_path:
            command += ["--config", self.config_path]
        command += ["run", job, "--at", f"{at:%Y-%m-%dT%H:%M:%SZ}"]
        started = time.monotonic()
        # its own session: a Ctrl-C meant for the daemon is the daemon's to pass on
        # qmonit itself: it reads its QMONIT_* secrets from the environment as the daemon did
        child = subprocess.Popen(command, start_new_session=True, cwd=self.cwd,
                                 env=child_environment(qmonit_child=True))
        run = Run(job, at)
        while True:
            try:
                run.exit_code = child.wait(self.poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - started
            reason = tick() or (f"past its deadline ({deadline_s:.0f} s)"
                                if elapsed > deadline_s else "")
            if reason:
                run.stopped = reason
                child.terminate()
                try:
                    child.wait(KILL_AFTER_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                break
        run.duration_s = time.monotonic() - started
        return run


@dataclass
class Due:
    kind: str
    at: datetime  # the scheduled moment (UTC)
    until: datetime  # the job's next turn: no longer worth starting after it


@dataclass
class Daemon:
    load_config: Callable[[], Config]
    engine_for: Callable[[Config], Engine]
    runner: Runner
    clock: Clock = field(default_factory=SystemClock)
    holder: str = field(default_factory=lambda: f"{socket.getfqdn()}:{os.getpid()}")
    runs: list[Run] = field(default_factory=list)  # the last few, for tests and logs
    keep_runs: int = 50

    def __post_init__(self) -> None:
        self.cfg = self.load_config()
        self.engine = self.engine_for(self.cfg)
        self.scheduler = schedule.Scheduler()
        self.wake = threading.Event()
        self.stop_requested: int | None = None  # when the signal came (the clock's epoch s)
        self.reload_requested = False
        self.pending: dict[str, Due] = {}
        self.leader_of: set[str] = set()
        self._renewed = 0
        self._plan()

    # -- schedule --------------------------------------------------------------------------

    def _plan(self) -> None:
        d = self.cfg.settings.daemon
        self.scheduler.clear()
        for tens in range(0, 60, 10):
            self.scheduler.every().hour.at(f":{tens + d.cycle_minute:02d}").do(
                self._due, "cycle")
        self.scheduler.every().hour.at(f":{d.hourly_minute:02d}").do(self._due, "hourly")
        self.scheduler.every().day.at(f"00:{d.daily_minute:02d}").do(self._due, "daily")
        self.ttl_s = int(d.lease_ttl_s)
        self.grace_s = float(d.stop_grace_s)

    def _due(self, kind: str) -> None:
        now = self.clock.now().replace(second=0, microsecond=0)
        self.pending[kind] = Due(kind, now, now + PERIOD[kind])

    # -- signals ---------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, _frame: object) -> None:
        if self.stop_requested is None:
            log.warning("daemon: %s received: stopping once the running job ends (at most "
                        "%.0f s)", signal.Signals(signum).name, self.grace_s)
            self.stop_requested = epoch_seconds(self.clock.now())
        self.wake.set()

    def _on_hup(self, _signum: int, _frame: object) -> None:
        self.reload_requested = True
        self.wake.set()

    def reload(self) -> None:
        self.reload_requested = False
        try:
            cfg = self.load_config()
        except ConfigError as exc:
            log.error("daemon: SIGHUP: configuration not reloaded, the one in use is kept: %s",
                      exc)
            return
        self.cfg = cfg
        register(cfg.secrets())  # a new password is masked in the daemon's log too
        self.engine.dispose()
        self.engine = self.engine_for(cfg)
        self._plan()
        log.warning("daemon: SIGHUP: configuration reloaded")

    # -- leases ----------------------------------------------------------------------------

    def _lease(self, kind: str) -> bool:
        now = epoch_seconds(self.clock.now())
        held = False
        with state_errors() as caught:
            held = lease.acquire(self.engine, kind, self.holder, now, self.ttl_s)
        if caught.error:
            log.error("daemon: lease of %s not taken: %s", kind, caught.error)
        if held and kind not in self.leader_of:
            log.warning("daemon: %s now leads %s", self.holder, kind)
        elif not held and kind in self.leader_of:
            log.warning("daemon: %s no longer leads %s (another host holds it)", self.holder,
                        kind)
        (self.leader_of.add if held else self.leader_of.discard)(kind)
        return held

    def renew(self) -> None:
        """Renew the leases held, every third of their life (also while a job runs)."""
        now = epoch_seconds(self.clock.now())
        if not self.leader_of or now - self._renewed < self.ttl_s / 3:
            return
        self._renewed = now
        for kind in sorted(self.leader_of):
            self._lease(kind)

    def _tick(self) -> str:
        self.renew()
        if self.stop_requested is not None and \
                epoch_seconds(self.clock.now()) - self.stop_requested >= self.grace_s:
            return f"stopped: the daemon was asked to stop {self.grace_s:.0f} s before"
        return ""

    # -- running ---------------------------------------------------------------------------

    def step(self) -> None:
        """Everything due now: what the schedule says, then the slots still waiting for the
        lease (a standby retries until the job's next turn)."""
        if self.reload_requested:
            self.reload()
        self.scheduler.run_pending()
        self.renew()
        for kind in KINDS:
            due = self.pending.get(kind)
            if due is None or self.stop_requested is not None:
                continue
            now = self.clock.now()
            if now >= due.until:
                del self.pending[kind]
                continue
            if not self._lease(kind):
                continue  # a standby: try again at the next step
            slot = self._slot_of(due)
            with state_errors() as caught:
                claimed = lease.claim(self.engine, kind, self.holder, epoch_seconds(slot),
                                      epoch_seconds(now))
            if caught.error:
                log.error("daemon: %s of %s not claimed: %s", kind,
                          f"{slot:%Y-%m-%d %H:%M}", caught.error)
                continue
            del self.pending[kind]
            if not claimed:
                log.info("daemon: %s of %s UTC was claimed before; not run again", kind,
                         f"{slot:%Y-%m-%d %H:%M}")
                continue
            self._run(due)

    def _slot_of(self, due: Due) -> datetime:
        if due.kind == "cycle":
            return slot_start(due.at)
        if due.kind == "hourly":
            return due.at.replace(minute=0)
        return due.at.replace(hour=0, minute=0)

    def _run(self, due: Due) -> None:
        for job in STEPS[due.kind]:
            if job == "datadisk" and not (self.cfg.settings.datadisk.url or {
                    "simulated", "simulated_batch"} & set(self.cfg.settings.sources.enabled)):
                continue  # no DAOD accounting to read here
            if self.stop_requested is not None:  # the running job finished: no new one
                log.warning("daemon: %s for %s UTC not started: the daemon stops", job,
                            f"{due.at:%Y-%m-%d %H:%M}")
                return
            left = (due.until - self.clock.now()).total_seconds() - 5
            try:
                run = self.runner(job, due.at, max(left, 1.0), self._tick)
            except OSError as exc:  # the job could not even start: said, and the next runs
                log.error("daemon: %s for %s UTC could not start: %s", job,
                          f"{due.at:%Y-%m-%d %H:%M}", exc)
                self.runs = (self.runs + [Run(job, due.at, stopped=f"not started: {exc}")]
                             )[-self.keep_runs:]
                return
            self.runs = (self.runs + [run])[-self.keep_runs:]
            if run.stopped:
                after = "the daemon stops" if self.stop_requested is not None else \
                    "the next slot runs on time"
                log.error("daemon: %s for %s UTC %s after %.0f s; %s", job,
                          f"{due.at:%Y-%m-%d %H:%M}", run.stopped, run.duration_s, after)
                return
            level = logging.INFO if run.exit_code == 0 else logging.ERROR
            log.log(level, "daemon: %s for %s UTC exited with %d in %.1f s", job,
                    f"{due.at:%Y-%m-%d %H:%M}", run.exit_code, run.duration_s)
            # derive follows collect whatever collect returned: a failed collect is
            # exactly what must raise the stale alert

    def idle_s(self) -> float:
        idle = self.scheduler.idle_seconds
        waits = [self.ttl_s / 3]
        if idle is not None:
            waits.append(idle)
        if self.pending:
            waits.append(min(10.0, self.ttl_s / 6))  # a standby polls the lease
        return max(min(waits), 0.0)

    def serve(self, max_steps: int | None = None) -> int:
        log.warning("daemon: %s started: collect and derive at minute %d of each slot, "
                    "hourly at :%02d, daily at 00:%02d UTC", self.holder,
                    self.cfg.settings.daemon.cycle_minute,
                    self.cfg.settings.daemon.hourly_minute,
                    self.cfg.settings.daemon.daily_minute)
        steps = 0
        while self.stop_requested is None and (max_steps is None or steps < max_steps):
            self.step()
            steps += 1
            if self.stop_requested is None:
                self.wake.clear()
                self.clock.sleep(self.idle_s(), self.wake)
        with state_errors() as caught:
            lease.release(self.engine, self.holder)
        if caught.error:
            log.error("daemon: leases not given up: %s", caught.error)
        log.warning("daemon: %s stopped", self.holder)
        return 0


def run_daemon(config_path: str | None, load_config: Callable[[], Config],
               engine_for: Callable[[Config], Engine]) -> int:
    os.environ["TZ"] = "UTC"  # the schedule reads the local clock: make it UTC, as slots are
    time.tzset()
    data_dir = private_dir(load_config().data_dir)  # the children's working directory
    daemon = Daemon(load_config, engine_for,
                    ProcessRunner(str(Path(config_path).resolve()) if config_path else None,
                                  cwd=str(data_dir)))
    daemon.install_signals()
    return daemon.serve()
