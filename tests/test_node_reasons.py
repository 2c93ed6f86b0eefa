"""Why nodes are out and held (issue 36 items 2 and 3): the drain or down reason, who set it
and when, from sinfo text and JSON (the real one-node Slurm drained with `scontrol update
... reason=`, and slurmrestd's recorded answers), its bounded form as a batch_nodes tag,
the full text in batch_node_reasons; Slurm's reservations (`scontrol show reservations`)
in batch_reservations; the dashboard's tables of both."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text

from qmonit.core import config
from qmonit.core.batchjobs import BatchNode, Reservation, node_samples, reason_class
from qmonit.core.config import default_section
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import load_rules
from qmonit.grafana.build import build_all
from qmonit.sources.base import SourceError
from qmonit.sources.slurm import (
    SlurmSource,
    parse_nodes_json,
    parse_reservations_json,
    parse_reservations_text,
    parse_sinfo_text,
    run_command,
)
from qmonit.stores.state import schema
from qmonit.stores.state.batch import (
    batch_node_reasons,
    batch_reservations,
    sync_node_reasons,
    sync_reservations,
)
from tests.conftest import SHARED_SAMPLES
from tests.grafana_macros import ALL, View, expand_sql
from tests.slurm_cluster import SlurmCluster, available

SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REASON = "NHC: memory 95% used on localhost | check dimm 3"
REST_NODES = SHARED_SAMPLES / ("rackslab+Slurm-web__tests_assets_slurmrestd_25.11_0.0.44_"
                               "slurm-nodes.json")


def test_a_reason_s_bounded_form():
    assert reason_class(REASON) == "NHC: memory used"
    assert reason_class("Kill task failed") == "Kill task failed"
    assert reason_class("disk failure /dev/sda") == "disk failure /dev/sda"
    assert reason_class("2026-12-05 wn0012 42") == "other"  # only numbers and names
    assert reason_class("") == reason_class("   ") == ""
    assert reason_class("bad\u202etext\x00here now") == "bad text here"  # printable only
    assert len(reason_class("x" * 10_000)) == 40


def test_sinfo_text_gives_the_reason_who_and_when_and_reads_old_recordings():
    text = ("wn01|drained|0/0/8/8|(null)|(null)|2026-12-05T10:00:00|root|NHC: a|b 3|\n"
            "wn02|idle|0/8/0/8|(null)|(null)|Unknown|Unknown|none|\n"
            "wn03|mixed|4/4/0/8|(null)|(null)|\n")  # what qmonit asked before reasons
    problems: list[str] = []
    nodes = {n.node: n for n in parse_sinfo_text(text, {}, problems=problems)}
    assert problems == []
    assert (nodes["wn01"].reason, nodes["wn01"].reason_by, nodes["wn01"].reason_at) == \
        ("NHC: a|b 3", "root", datetime(2026, 12, 5, 10, 0, tzinfo=UTC))
    assert (nodes["wn02"].reason, nodes["wn02"].reason_by, nodes["wn02"].reason_at) == \
        ("", "", None)
    assert (nodes["wn03"].reason, nodes["wn03"].node_state) == ("", "mixed")


@pytest.mark.skipif(not REST_NODES.is_file(), reason="../shared/samples not present")
def test_slurmrestd_nodes_give_their_reasons():
    doc = json.loads(REST_NODES.read_text())
    expected = {n["name"]: (n["reason"], n["reason_set_by_user"],
                            datetime.fromtimestamp(n["reason_changed_at"]["number"], UTC))
                for n in doc["nodes"] if n.get("reason")}
    assert sorted(expected) == ["cn1", "cn2"]  # the recording: ECC memory error, CPU dead
    nodes = parse_nodes_json(doc, {})
    assert {n.node: (n.reason, n.reason_by, n.reason_at) for n in nodes if n.reason} == \
        expected
    [drained] = [s for s in node_samples(nodes, "c1", "slurm", SLOT) if s.tag("node") == "cn1"]
    assert (drained.tag("reason"), drained.tag("node_state")) == ("ECC memory error",
                                                                  "drained")


def test_a_reason_that_is_not_text_or_a_time_past_any_clock_costs_only_itself():
    doc = {"nodes": [{"name": "n1", "state": ["IDLE", "DRAIN"], "cpus": 8,
                      "reason": ["not", "text"], "reason_changed_at": 1e30},
                     {"name": "n2", "state": ["DOWN"], "cpus": 8, "reason": "power",
                      "reason_set_by_user": 7, "reason_changed_at": 1e30}]}
    nodes = {n.node: n for n in parse_nodes_json(doc, {})}
    assert (nodes["n1"].reason, nodes["n1"].node_state) == ("", "drained")
    assert (nodes["n2"].reason, nodes["n2"].reason_by, nodes["n2"].reason_at) == \
        ("power", "", None)


@pytest.fixture(scope="module")
def drained():
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster().start()
    with cluster.as_the_slurm():
        cluster.run("scontrol", "update", "nodename=localhost", "state=drain",
                    f"reason={REASON}")
        cluster.run("scontrol", "create", "reservation", "reservationname=repair",
                    "starttime=now", "duration=120", "nodes=localhost", "users=root",
                    "flags=maint")
        cluster.run("scontrol", "create", "reservation", "reservationname=atlas_slot",
                    "starttime=now+1day", "duration=60", "nodes=localhost",
                    "users=root,nobody", "flags=ignore_jobs")
        yield cluster


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_drained_node_of_the_real_slurm_says_why(drained, fmt, tmp_path):
    source = SlurmSource(default_section(SlurmSection, cluster="qtest", format=fmt,
                                         timeout_s=30.0),
                         load_rules("slurm"), node_rules=load_rules("slurm_nodes"))
    before = datetime.now(UTC)
    collection = source.collect(SLOT)
    [node] = collection.nodes
    assert (node.node, node.node_state, node.reason, node.reason_by) == \
        ("localhost", "drained", REASON, "root")
    assert before - timedelta(minutes=5) <= node.reason_at <= before
    [point] = [s for s in collection.samples if s.measurement == "batch_nodes"]
    assert (point.tag("reason"), point.tag("native_state")) == ("NHC: memory used",
                                                                "IDLE+DRAIN")
    engine = create_engine(f"sqlite:///{tmp_path}/state.db")
    schema.create_tables(engine)
    assert sync_node_reasons(engine, "qtest", collection.nodes, SLOT) == 1
    with engine.connect() as conn:
        row = conn.execute(select(batch_node_reasons)).one()
    assert (row.node, row.node_state, row.reason, row.reason_class, row.reason_by) == \
        ("localhost", "drained", REASON, "NHC: memory used", "root")
    assert sync_node_reasons(engine, "qtest", [BatchNode("localhost", "idle", 8, 0)],
                             SLOT) == 0  # resumed: the reason is gone, so is the row
    with engine.connect() as conn:
        assert conn.execute(select(batch_node_reasons)).all() == []


def test_the_dashboard_counts_nodes_by_reason(mariadb_url):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    at = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    sync_node_reasons(engine, "slurm1", [
        *[BatchNode(f"wn{n:02d}", "drained", 8, 0, reason=f"NHC: memory {90 + n}% used",
                    reason_by="root", reason_at=at) for n in range(9)],
        *[BatchNode(f"wn{n}", "down", 8, 0, reason="Kill task failed", reason_by="slurm",
                    reason_at=at) for n in (20, 21, 22)],
        BatchNode("wn30", "idle", 8, 0)], SLOT)
    board = next(b for b in build_all(config.defaults({"sources": {"enabled": ""}}))
                 if b.model["uid"] == "qmonit-batch").model
    variables = {v["name"]: v for v in board["templating"]["list"]}

    def rows(title, worker=""):
        [query] = [t["rawSql"] for p in board["panels"] if p["title"] == title
                   for t in p["targets"]]
        view = View(SLOT - timedelta(hours=6), SLOT, variables=variables,
                    selected={"cluster": ALL, "worker": worker})
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(expand_sql(query, view)))]

    assert rows("Why nodes are out") == [("NHC: memory used", 9, "drained"),
                                         ("Kill task failed", 3, "down")]
    assert rows("Node reasons", "wn21") == [
        ("slurm1", "wn21", "down", "", "Kill task failed", "slurm", at.replace(tzinfo=None))]
    engine.dispose()


RESERVATIONS = (
    "ReservationName=maint StartTime=2026-12-05T19:28:20 EndTime=2026-12-05T20:28:20 "
    "Duration=01:00:00 Nodes=wn[01-04] NodeCnt=4 CoreCnt=8 Features=(null) "
    "PartitionName=(null) Flags=MAINT,SPEC_NODES TRES=cpu=8 Users=root Groups=(null) "
    "Accounts=(null) Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a "
    "MaxStartDelay=(null)\n"
    "StartTime=2026-12-05T19:28:20 Nodes=wn05\n")


def test_reservations_as_scontrol_prints_them_one_a_line():
    problems: list[str] = []
    [maint] = parse_reservations_text(RESERVATIONS, problems)
    assert maint == Reservation("maint", "wn[01-04]", 4.0,
                                datetime(2026, 12, 5, 19, 28, 20, tzinfo=UTC),
                                datetime(2026, 12, 5, 20, 28, 20, tzinfo=UTC),
                                "MAINT,SPEC_NODES", "INACTIVE", "root", "", "")
    assert problems == ["scontrol show reservations line 2: no ReservationName; skipped: "
                        "'StartTime=2026-12-05T19:28:20 Nodes=wn05'"]
    assert parse_reservations_text("No reservations in the system\n", problems) == []


def test_reservations_of_slurmrestd_any_version():
    doc = {"reservations": [
        {"name": "gpu_slot", "node_list": "gpu[1-2]", "node_count": 2,
         "start_time": {"set": True, "infinite": False, "number": 1796400000},
         "end_time": {"set": True, "infinite": False, "number": 1796500000},
         "flags": ["IGNORE_JOBS", "SPEC_NODES"], "users": "alice", "accounts": "atlas",
         "partition": "gpu"},
        {"name": "", "node_list": "x"},
        {"name": "far", "start_time": 1e30, "end_time": 1e30}]}
    problems: list[str] = []
    now = datetime.fromtimestamp(1796450000, UTC)
    assert parse_reservations_json(doc, problems, now) == [
        Reservation("gpu_slot", "gpu[1-2]", 2.0, datetime.fromtimestamp(1796400000, UTC),
                    datetime.fromtimestamp(1796500000, UTC), "IGNORE_JOBS,SPEC_NODES",
                    "ACTIVE", "alice", "atlas", "gpu")]
    assert problems == ["reservations: record 1 has no name; skipped",
                        "reservations: far: a time past any clock; skipped"]
    telegraf = SHARED_SAMPLES / ("influxdata+telegraf__plugins_inputs_slurm_testcases_gather_"
                                 "responses_reservations.json")
    if telegraf.is_file():  # v0.0.38, none reserved
        answer = json.loads(telegraf.read_text())
        assert parse_reservations_json(answer, problems, SLOT) == []


def test_the_real_slurm_s_reservations_text_json_and_a_failing_client(drained, tmp_path):
    source = SlurmSource(default_section(SlurmSection, cluster="qtest", timeout_s=30.0),
                         load_rules("slurm"), node_rules=load_rules("slurm_nodes"))
    collection = source.collect(SLOT)
    got = {r.name: r for r in collection.reservations}
    assert sorted(got) == ["atlas_slot", "repair"]
    assert (got["repair"].nodes, got["repair"].node_count, got["repair"].flags,
            got["repair"].state, got["repair"].users) == \
        ("localhost", 1.0, "MAINT,SPEC_NODES", "ACTIVE", "root")
    assert (got["atlas_slot"].state, got["atlas_slot"].users, got["atlas_slot"].flags) == \
        ("INACTIVE", "root,nobody", "IGNORE_JOBS,SPEC_NODES")
    assert got["repair"].end - got["repair"].start == timedelta(minutes=120)
    engine = create_engine(f"sqlite:///{tmp_path}/state.db")
    schema.create_tables(engine)
    assert sync_reservations(engine, "qtest", collection.reservations, SLOT) == 2
    # JSON where scontrol has it (Slurm 22.05's has not: its text, no problem said)
    as_json = SlurmSource(default_section(SlurmSection, cluster="qtest", format="json",
                                          timeout_s=30.0),
                          load_rules("slurm"), node_rules=load_rules("slurm_nodes"))
    collection = as_json.collect(SLOT)
    assert sorted(r.name for r in collection.reservations) == ["atlas_slot", "repair"]
    assert [p for p in collection.problems if "reservations" in p] == []

    def no_scontrol(argv, timeout):  # a client that fails: said; the stored rows stay
        if argv[0] == "scontrol":
            raise SourceError("scontrol: not found (install the Slurm client or set "
                              "[slurm] bin_dir)")
        return run_command(argv, timeout)

    failing = SlurmSource(default_section(SlurmSection, cluster="qtest", timeout_s=30.0),
                          load_rules("slurm"), no_scontrol, load_rules("slurm_nodes"))
    collection = failing.collect(SLOT)
    assert collection.reservations is None
    assert collection.problems == ["scontrol: not found (install the Slurm client or set "
                                   "[slurm] bin_dir); batch_reservations not updated"]
    with engine.connect() as conn:
        assert sorted(conn.execute(select(batch_reservations.c.name)).scalars()) == \
            ["atlas_slot", "repair"]
