"""Two hosts, one pipeline: two real daemon processes on one real MariaDB, on a clock 120
times faster than the wall (a slot every 5 s). Kill the leader, or freeze it (SIGSTOP):
the standby takes over within a slot, and no slot is run twice or skipped."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qmonit.core.sample import SLOT, slot_start
from qmonit.stores.state import schema

ROOT = Path(__file__).resolve().parents[1]
FACTOR = 120.0
START = datetime(2026, 11, 1, 0, 0, 40, tzinfo=UTC)


@pytest.fixture
def pair(mariadb_url, tmp_path):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE daemon_runs (holder VARCHAR(32), job VARCHAR(16), "
                          "at VARCHAR(40), started VARCHAR(40))"))
    origin = time.time() + 1.0
    processes = {}

    def start(holder):
        log = open(tmp_path / f"{holder}.log", "w")
        processes[holder] = subprocess.Popen(
            [sys.executable, "-m", "tests.daemon_proc", mariadb_url, holder, START.isoformat(),
             str(origin), str(FACTOR)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return processes[holder]

    def now():
        return START + timedelta(seconds=(time.time() - origin) * FACTOR)

    def runs(job="collect"):
        with engine.connect() as conn:
            return [(h, datetime.fromisoformat(a)) for h, a in conn.execute(text(
                "SELECT holder, at FROM daemon_runs WHERE job = :j ORDER BY at"), {"j": job})]

    def wait_for(condition, timeout_s=30.0):
        end = time.time() + timeout_s
        while time.time() < end:
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"not within {timeout_s} s: {runs()}")

    yield start, now, runs, wait_for, tmp_path
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()
    engine.dispose()


def assert_every_slot_once(runs):
    slots = [slot_start(at) for _, at in runs]
    assert slots == sorted(set(slots)), f"a slot ran twice: {runs}"
    assert slots == [slots[0] + n * SLOT for n in range(len(slots))], f"a slot skipped: {runs}"


def stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_the_standby_takes_over_within_a_slot_when_the_leader_is_killed(pair):
    start, now, runs, wait_for, _ = pair
    leader = start("host-a")
    wait_for(lambda: runs())  # the leader holds the lease before the standby starts
    standby = start("host-b")
    wait_for(lambda: len(runs()) >= 2)
    leader.kill()  # SIGKILL: no goodbye, the lease simply lapses
    leader.wait()
    killed_at = now()
    wait_for(lambda: len([h for h, _ in runs() if h == "host-b"]) >= 2)
    stop(standby)
    done = runs()
    assert_every_slot_once(done)
    assert {h for h, at in done if at < killed_at - timedelta(seconds=40)} == {"host-a"}
    first_b = min(at for h, at in done if h == "host-b")
    assert first_b <= slot_start(killed_at) + SLOT + timedelta(minutes=1)  # within a slot
    assert_every_slot_once([(h, at) for h, at in runs("hourly")])


def test_a_frozen_leader_loses_the_lease_and_does_not_run_the_slots_taken_over(pair):
    start, now, runs, wait_for, tmp_path = pair
    leader = start("host-a")
    wait_for(lambda: runs())  # the leader holds the lease before the standby starts
    standby = start("host-b")
    wait_for(lambda: len(runs()) >= 2)
    os.kill(leader.pid, signal.SIGSTOP)  # hung: no renewals, no exit
    frozen_at = now()
    wait_for(lambda: len([h for h, _ in runs() if h == "host-b"]) >= 2)
    os.kill(leader.pid, signal.SIGCONT)
    thawed_at = now()
    wait_for(lambda: len([at for _, at in runs() if at > thawed_at + SLOT]) >= 2)
    stop(leader)
    stop(standby)
    done = runs()
    assert_every_slot_once(done)
    assert [h for h, at in done if at > frozen_at + SLOT][:1] == ["host-b"]
    assert all(h == "host-b" for h, at in done if at > thawed_at)  # the leader stays standby
    assert "host-a no longer leads cycle (another host holds it)" in \
        (tmp_path / "host-a.log").read_text()
