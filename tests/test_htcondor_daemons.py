"""An HTCondor pool's own health in the collect (issue 36 item 1): the schedds' and the
negotiator's ads from the collector as `batch_scheduler` samples beside the jobs; a pool
with no negotiator says nothing of one; a collector that fails that query costs only those
samples."""

from __future__ import annotations

from datetime import UTC, datetime

from classad2 import ClassAd

from qmonit.core.config import default_section
from qmonit.core.settings import HtcondorSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.htcondor import HTCondorSource
from tests.condor_ads import AdPool, AdSchedd

SLOT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SETTINGS = default_section(HtcondorSection, cluster="cc-condor")
SCHEDD_AD = {"Name": "schedd1.in2p3.fr", "MyType": "Scheduler",
             "RecentDaemonCoreDutyCycle": 0.97, "TotalRunningJobs": 13700,
             "TotalIdleJobs": 2100, "TotalHeldJobs": 12, "MaxJobsRunning": 20000,
             "RecentJobsStarted": 410, "RecentStatsLifetime": 1200, "Machine": "ignored"}
NEGOTIATOR_AD = {"Name": "cm.in2p3.fr", "RecentDaemonCoreDutyCycle": 0.2,
                 "LastNegotiationCycleDuration0": 42, "LastNegotiationCycleMatches0": 380,
                 "LastNegotiationCycleRejections0": 15}


def health(pool):
    source = HTCondorSource(SETTINGS, load_rules("htcondor"), load_rules("apf"), pool)
    collection = source.collect(SLOT)
    return ({(s.tag("daemon"), s.tag("daemon_name")): dict(s.fields)
             for s in collection.samples if s.measurement == "batch_scheduler"},
            collection.problems)


def test_the_schedd_and_negotiator_ads_become_their_health():
    pool = AdPool([AdSchedd("schedd1.in2p3.fr", [])], [],
                  {"schedd": [ClassAd(SCHEDD_AD)], "negotiator": [ClassAd(NEGOTIATOR_AD)]})
    found, problems = health(pool)
    assert problems == []
    assert found == {
        ("schedd", "schedd1.in2p3.fr"): {
            "duty_cycle": 0.97, "jobs_running": 13700.0, "jobs_idle": 2100.0,
            "jobs_held": 12.0, "max_jobs_running": 20000.0, "recent_jobs_started": 410.0,
            "recent_window_s": 1200.0},
        ("negotiator", "cm.in2p3.fr"): {
            "duty_cycle": 0.2, "negotiation_cycle_duration_s": 42.0,
            "negotiation_matches": 380.0, "negotiation_rejections": 15.0}}


def test_a_pool_without_a_negotiator_and_a_failing_query():
    pool = AdPool([AdSchedd("schedd1.in2p3.fr", [])], [], {"schedd": [ClassAd(SCHEDD_AD)]})
    found, problems = health(pool)
    assert list(found) == [("schedd", "schedd1.in2p3.fr")] and problems == []

    class Refusing(AdPool):
        def daemon_ads(self, daemon, projection):
            raise RuntimeError("Failed to connect to collector cm.in2p3.fr:9618")

    found, problems = health(Refusing([AdSchedd("schedd1.in2p3.fr", [])], []))
    assert found == {}
    assert problems == [
        "HTCondor collector: schedd ads: Failed to connect to collector cm.in2p3.fr:9618; "
        "batch_scheduler not written for the schedd",
        "HTCondor collector: negotiator ads: Failed to connect to collector cm.in2p3.fr:9618; "
        "batch_scheduler not written for the negotiator"]


def test_a_hostile_duty_cycle_costs_only_its_field():
    pool = AdPool([AdSchedd("schedd1.in2p3.fr", [])], [],
                  {"schedd": [ClassAd({**SCHEDD_AD, "RecentDaemonCoreDutyCycle": float("nan")})]})
    found, problems = health(pool)
    assert "duty_cycle" not in found[("schedd", "schedd1.in2p3.fr")]
    assert found[("schedd", "schedd1.in2p3.fr")]["jobs_running"] == 13700.0
    assert len(problems) == 1 and "RecentDaemonCoreDutyCycle" in problems[0]
