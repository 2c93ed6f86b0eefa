"""derive.layers: the likely layer of a finding, from CRIC's status and the queue's pilots."""

import pytest

from qmonit.derive.layers import Pilots, attribute
from qmonit.derive.rules import Finding

PANDA = {"running": 12.0, "activated": 30.0, "assigned": 4.0}  # the queue's jobs this cycle


def finding(rule="drop", queue="Q", metric="running jobs", reason="running 10 vs 400"):
    return Finding((queue, "managed", "SCORE"), rule, True, "warning", 10.0, 400.0, 5.0,
                   reason, metric)


def pilots(created=0.0, running=0.0, exiting=0.0, done=0.0, fault=0.0, factory="apf-1",
           kind="apf"):
    return {"factory": factory, "factory_type": kind, "created": created, "running": running,
            "exiting": exiting, "done": done, "fault": fault}


def counts(queued, running, done, failed, factories="apf-1 (apf)"):
    return f"{factories}: {queued} pilots queued, {running} running, {done} done, {failed} failed"


@pytest.mark.parametrize("rule, status, rows, layer, evidence", [
    ("drop", "brokeroff", [pilots(running=50)], "panda",
     "CRIC status brokeroff: PanDA does not broker jobs to it"),
    ("drop", "online", [], "unknown", "no pilot factory reports this queue"),
    ("starving", "online", [pilots()], "pilot factory",
     "no pilots submitted: " + counts(0, 0, 0, 0)),
    ("starving", "online", [pilots(created=3, fault=9, done=2)], "pilot factory",
     "pilots fail: " + counts(3, 0, 2, 9)),
    ("starving", "online", [pilots(created=30, running=2)], "batch/site",
     "pilots wait in the batch system: " + counts(30, 2, 0, 0)),
    ("drop", "online", [pilots(created=2, running=40, exiting=5)], "batch/site",
     "pilots run but PanDA runs 12 jobs: " + counts(2, 45, 0, 0)),
    ("failing", "online", [pilots(running=40, done=30)], "batch/site",
     "jobs fail at the site, its pilots do not: " + counts(0, 40, 30, 0)),
    ("failing", "online", [pilots(running=4, done=1, fault=20)], "pilot factory",
     "pilots fail: " + counts(0, 4, 1, 20)),
    # every factory serving the queue, summed and named
    ("starving", "online", [pilots(created=10, factory="apf-1"),
                            pilots(created=5, running=1, factory="CERN_central_A",
                                   kind="harvester")], "batch/site",
     "pilots wait in the batch system: "
     + counts(15, 1, 0, 0, "CERN_central_A (harvester), apf-1 (apf)")),
])
def test_the_layer_and_its_evidence(rule, status, rows, layer, evidence):
    got = attribute(finding(rule), status, Pilots.of(rows), False, PANDA)
    assert (got.name, got.evidence) == (layer, evidence)


def test_stale_sources_backlogs_and_a_silent_queue():
    source = finding("stale", "source:harvester", reason="source harvester: no successful "
                     "collect since 2026-11-21 11:50 UTC")
    got = attribute(source, None, None, True, {})
    assert (got.name, got.evidence) == (
        "monitoring", "qmonit cannot read harvester: source harvester: no successful collect "
        "since 2026-11-21 11:50 UTC")
    assigned = attribute(finding("backlog", metric="assigned jobs"), "online", None, False, {})
    assert assigned.name == "panda"
    transferring = attribute(finding("backlog", metric="transferring jobs"), "online", None,
                             False, {})
    assert transferring.name == "batch/site"
    silent = attribute(finding("stale"), "online", Pilots.of([pilots(running=9)]), False, {})
    assert (silent.name, silent.evidence) == ("panda", "PanDA lists no jobs for the queue any "
                                                       "more")
    # a pilot source that did not answer this cycle: unknown, never a guess
    unjudged = attribute(finding("starving"), "online", None, True, PANDA)
    assert (unjudged.name, unjudged.evidence) == ("unknown", "pilot data stale this cycle")


def test_a_drop_with_no_work_activated_is_panda_s():
    """Running falls while no job waits for the queue: its pilots run out of work, PanDA
    brokers it none; the site is not at fault. One activated job is work the pilots should
    be taking."""
    running = Pilots.of([pilots(created=2, running=40)])
    for activated, layer in ((0.0, "panda"), (1.0, "batch/site")):
        got = attribute(finding(), "online", running, False,
                        {"running": 10.0, "activated": activated, "assigned": 2.0})
        assert got.name == layer
    got = attribute(finding(), "online", None, False, {"running": 10.0, "assigned": 2.0})
    assert (got.name, got.evidence) == (
        "panda", "no work brokered: 0 jobs activated for the queue, 2 assigned")
    starving = attribute(finding("starving"), "online", running, False, {"running": 10.0})
    assert starving.name == "batch/site"  # starving has jobs activated by definition
