"""The scheduler's own health in the collect cycle (issue 36 items 1 and 5): slurmctld's
sdiag read with the jobs, its counters turned into rates per slot (Slurm's midnight reset
counts from the reset, never below zero), the reading kept for `qmonit status`, which warns
when [slurm] and [htcondor]'s thresholds are crossed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qmonit.app.status import gather, render
from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.collect.fetch import fetch
from qmonit.core import config
from qmonit.stores.state import schema
from qmonit.stores.state.batch import keep_scheduler_readings, scheduler_readings

T = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def parts(tmp_path):
    parts = build(config.defaults({"sources": {"enabled": "simulated_batch"},
                                   "qmonit": {"data_dir": str(tmp_path)}}))
    schema.create_tables(parts.engine)
    parts.store.init({})
    yield parts
    parts.engine.dispose()


def health(parts, slot):
    """Collect `slot`; the slurmctld reading written, with its rates."""
    fetched = fetch(parts, slot)
    report = collect(parts, slot, fetched)
    assert report.exit_code == 0, report
    [sample] = [s for a in fetched.answers for s in a.samples or []
                if s.measurement == "batch_scheduler" and s.tag("daemon") == "slurmctld"]
    return dict(sample.fields)


def test_counters_become_rates_per_slot_and_a_midnight_reset_counts_from_zero(parts):
    first = health(parts, T)  # 600 minutes since midnight: 12 submitted, 11 started a minute
    assert (first["jobs_started"], first["jobs_submitted"]) == (6600.0, 7200.0)
    assert "jobs_started_delta" not in first  # a first reading has nothing to compare with
    second = health(parts, T + timedelta(minutes=10))
    assert (second["jobs_started_delta"], second["jobs_submitted_delta"],
            second["jobs_failed_delta"]) == (110.0, 120.0, 0.0)
    assert second["jobs_started_per_s"] == pytest.approx(110 / 600)
    # 23:50, then 00:10: Slurm reset its counters at midnight; 10 minutes since the reset
    health(parts, T.replace(hour=23, minute=50))
    after = health(parts, T.replace(hour=23, minute=50) + timedelta(minutes=20))
    assert (after["jobs_started"], after["jobs_started_delta"]) == (110.0, 110.0)
    assert after["jobs_started_per_s"] == pytest.approx(110 / 600)  # over the 600 s since
    readings = scheduler_readings(parts.engine)  # and the simulated factory's schedd
    assert sorted(readings) == [("sim-apf", "schedd", "apf-sim.example.org"),
                                ("sim-slurm", "slurmctld", "")]
    slot, fields = readings[("sim-slurm", "slurmctld", "")]
    assert (slot, fields["jobs_started"]) == (T.replace(hour=23, minute=50)
                                              + timedelta(minutes=20), 110.0)


def test_a_slot_collected_again_gets_no_rate_from_itself(parts):
    health(parts, T)
    again = health(parts, T)
    assert "jobs_started_delta" not in again
    health(parts, T + timedelta(minutes=10))
    older = health(parts, T - timedelta(hours=1))  # `run collect --at` an older slot
    assert "jobs_started_delta" not in older
    slot, _ = scheduler_readings(parts.engine)[("sim-slurm", "slurmctld", "")]
    assert slot == T + timedelta(minutes=10)  # still what the next cycle compares with


def test_status_shows_each_daemon_and_warns_past_the_thresholds(parts):
    slot = T
    keep_scheduler_readings(parts.engine, {
        ("cc-slurm", "slurmctld", ""): (slot, {"agent_queue_size": 12000.0,
                                               "schedule_cycle_last_s": 0.5,
                                               "bf_cycle_last_s": 310.0}),
        ("cc-condor", "schedd", "schedd1.in2p3.fr"): (slot, {"duty_cycle": 0.99}),
        ("cc-condor", "negotiator", "cm.in2p3.fr"): (slot, {"duty_cycle": 0.2}),
        ("old", "slurmctld", ""): (slot - timedelta(hours=2), {"agent_queue_size": 1e6})})
    status = gather(parts, slot + timedelta(minutes=3))
    problems = [p for p in status.problems if "cycle" in p or "queue" in p]
    assert sorted(problems) == [
        "WARNING: schedd schedd1.in2p3.fr: duty cycle 99% (warning from 95%): it drops work",
        "WARNING: slurmctld of cc-slurm: agent queue 12,000 (warning from 1,000): it cannot "
        "reach its nodes fast enough",
        "WARNING: slurmctld of cc-slurm: backfill cycle 310 s (warning from 120 s)"]
    lines = render(status, slot + timedelta(minutes=3)).splitlines()
    assert [line for line in lines if line.startswith("scheduler:")] == [
        "scheduler: negotiator cm.in2p3.fr: duty cycle 20%",
        "scheduler: schedd schedd1.in2p3.fr: duty cycle 99%",
        "scheduler: slurmctld of cc-slurm: agent queue 12,000, main cycle 0.50 s, "
        "backfill cycle 310.00 s"]  # the reading of two hours ago: its source is stale
