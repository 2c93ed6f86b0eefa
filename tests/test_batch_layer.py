"""The layer diagnosis names the batch layer's own state (issue 36 item 4): a stalled
slurmctld, a saturated schedd, a mass drain of the cluster that runs a site's pilots, as
evidence of an incident at the batch/site layer; nothing of it for another site's queue, a
stale reading, a few nodes out, or a layer that is not the batch system's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qmonit.core import config
from qmonit.core.batchjobs import BatchJob, BatchNode
from qmonit.derive.batch_health import drain_warning, evidence_by_site
from qmonit.derive.layers import SITE, Pilots, attribute
from qmonit.derive.rules import Finding
from qmonit.stores.sql import make_engine
from qmonit.stores.state import schema
from qmonit.stores.state.batch import keep_scheduler_readings, sync_jobs, sync_node_reasons

T = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SETTINGS = config.defaults({"sources": {"enabled": "simulated"},
                            "slurm": {"cluster": "cc-slurm", "atlas_sites": "IN2P3-CC"},
                            "htcondor": {"cluster": "cc-condor",
                                         "atlas_sites": "IN2P3-CC, IN2P3-CC_VVL"}}).settings


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/state.db")
    schema.create_tables(engine)
    yield engine
    engine.dispose()


def test_a_mass_drain_is_said_with_its_reasons():
    assert drain_warning("cc-slurm", 10, {"NHC: memory used": 3, "Kill task failed": 1}) == \
        "40% of cc-slurm's 10 nodes out: NHC: memory used (3), Kill task failed (1)"
    assert drain_warning("cc-slurm", 100, {"NHC: memory used": 9}) == ""  # 9 %: not a drain
    assert drain_warning("cc-slurm", None, {"NHC: memory used": 9}) == ""  # size unknown
    many = {f"reason {c}": 5 for c in "abcde"}
    assert drain_warning("c", 30, many) == ("83% of c's 30 nodes out: reason a (5), reason b "
                                            "(5), reason c (5) and 2 more reasons")


def test_each_site_gets_its_clusters_warnings_and_only_fresh_ones(engine):
    keep_scheduler_readings(engine, {
        ("cc-slurm", "slurmctld", ""): (T, {"agent_queue_size": 12000.0,
                                            "bf_cycle_last_s": 310.0}),
        ("cc-condor", "schedd", "s1"): (T - timedelta(minutes=10), {"duty_cycle": 0.99}),
        ("cc-condor", "negotiator", "cm"): (T - timedelta(hours=1), {"duty_cycle": 0.99}),
        ("elsewhere", "slurmctld", ""): (T, {"agent_queue_size": 1e6})})
    running = BatchJob("1", "u", "g", "p", "RUNNING", worker="n1", start_time=T,
                       state="running")
    sync_jobs(engine, "cc-slurm", "slurm", [running], T, timedelta(days=90))
    sync_node_reasons(engine, "cc-slurm", [
        *[BatchNode(f"n{i}", "drained", 8, 0, reason=f"NHC: memory {90 + i}% used")
          for i in range(4)],
        *[BatchNode(f"n{i}", "idle", 8, 0) for i in range(4, 10)]], T)
    assert evidence_by_site(engine, SETTINGS, T) == {
        "IN2P3-CC": "schedd s1: duty cycle 99% (warning from 95%): it drops work; "
                    "slurmctld of cc-slurm: agent queue 12,000 (warning from 1,000): it "
                    "cannot reach its nodes fast enough; slurmctld of cc-slurm: backfill "
                    "cycle 310 s (warning from 120 s); 40% of cc-slurm's 10 nodes out: NHC: "
                    "memory used (4)",
        "IN2P3-CC_VVL": "schedd s1: duty cycle 99% (warning from 95%): it drops work"}
    assert evidence_by_site(engine, SETTINGS, T + timedelta(hours=2)) == {
        "IN2P3-CC": "40% of cc-slurm's 10 nodes out: NHC: memory used (4)"}  # readings stale


def test_the_evidence_joins_only_a_batch_site_layer():
    drop = Finding(("Q", "managed", "SCORE"), "drop", True, "critical", 10.0, 400.0, 1.0,
                   "running 10 vs 400", "running jobs")
    waiting = Pilots("CERN_central_A (harvester)", 30.0, 0.0, 0.0, 0.0)
    layer = attribute(drop, "online", waiting, False, {"activated": 400.0},
                      batch="slurmctld of cc-slurm: agent queue 12,000")
    assert (layer.name, layer.evidence) == (
        SITE, "pilots wait in the batch system: CERN_central_A (harvester): 30 pilots "
              "queued, 0 running, 0 done, 0 failed; the batch system: slurmctld of cc-slurm: "
              "agent queue 12,000")
    failing = Pilots("CERN_central_A (harvester)", 0.0, 0.0, 1.0, 9.0)
    layer = attribute(drop, "online", failing, False, {"activated": 400.0},
                      batch="slurmctld of cc-slurm: agent queue 12,000")
    assert layer.name == "pilot factory" and "batch system" not in layer.evidence
