"""Numbers no grid can have (NaN, Infinity, 1e308, 1e30 cores, -64 CPUs): each source reports
the record and skips it, the rest goes through, and nothing non-finite reaches a store."""

import json
import logging
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from qmonit.core.batchjobs import BatchNode, node_samples
from qmonit.core.bounds import MAX_JOBS, number_problem
from qmonit.core.config import default_section
from qmonit.core.levels import Aggregator, aggregate
from qmonit.core.sample import make_sample
from qmonit.core.settings import SlurmSection
from qmonit.core.states.rules import load_rules
from qmonit.sources.cric import parse_pandaqueues
from qmonit.sources.daod import parse_msearch
from qmonit.sources.harvester import parse_worker_stats
from qmonit.sources.panda import parse_job_stats
from qmonit.sources.slurm import SlurmSource
from qmonit.stores.state import queues as state_queues
from qmonit.stores.state.batch import current_jobs, sync_jobs
from tests.condor_ads import AdSchedd, parse_long
from tests.slurm_fakes import health_answer
from tests.test_htcondor import source as condor_source

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def jobs_point(queue, status, count, label="managed", resource="SCORE"):
    return make_sample("jobs", {"panda_queue": queue, "prod_source": label,
                                "resource": resource, "job_status": status}, {"jobs": count}, T)


def test_the_helper_names_why():
    assert number_problem(3, MAX_JOBS) is None
    assert number_problem(float("nan"), MAX_JOBS) == "nan is not finite"
    assert number_problem(float("inf"), MAX_JOBS) == "inf is not finite"
    assert number_problem(-5, MAX_JOBS) == "-5 is negative"
    assert number_problem(1e308, MAX_JOBS) == "1e+308 is above the maximum 1e+07"
    assert number_problem(10**400, MAX_JOBS) == f"{10**400!r} is above the maximum 1e+07"
    assert number_problem(True, MAX_JOBS) == "True is not a number"
    assert number_problem("7", MAX_JOBS) == "'7' is not a number"


def test_panda_1e308_nan_and_negative_are_skipped_the_rest_goes_through():
    answer = json.loads('{"Q1": {"managed": {"SCORE": {"running": 1e308, "activated": 4}}},'
                        ' "Q2": {"managed": {"SCORE": {"running": NaN, "finished": 2}}},'
                        ' "Q3": {"managed": {"SCORE": {"running": -5, "failed": 1}}},'
                        ' "Q4": {"managed": {"SCORE": {"running": Infinity}}}}')
    out = parse_job_stats(answer, T, "PanDA test")
    assert out.problems == [
        "PanDA test: Q1/managed/SCORE/running: count 1e+308 is above the maximum 1e+07; "
        "skipped",
        "PanDA test: Q2/managed/SCORE/running: count nan is not finite; skipped",
        "PanDA test: Q3/managed/SCORE/running: count -5 is negative; skipped",
        "PanDA test: Q4/managed/SCORE/running: count inf is not finite; skipped",
    ]
    assert out.samples == [jobs_point("Q1", "activated", 4.0), jobs_point("Q2", "finished", 2.0),
                           jobs_point("Q3", "failed", 1.0)]


def test_harvester_nan_and_negative_workers_are_skipped():
    answer = json.loads('{"Q1": {"h1": {"managed": {"SCORE": {"running": NaN, "idle": 3}}}},'
                        ' "Q2": {"h1": {"managed": {"SCORE": {"running": -2, "idle": 1e9}}}}}')
    out = parse_worker_stats(answer, load_rules("harvester"), T, "Harvester test")
    assert out.problems == [
        "Harvester test: Q1/h1/managed/SCORE/running: count nan is not finite; skipped",
        "Harvester test: Q2/h1/managed/SCORE/running: count -2 is negative; skipped",
        "Harvester test: Q2/h1/managed/SCORE/idle: count 1000000000.0 is above the maximum "
        "1e+07; skipped",
    ]
    assert [(s.tag("panda_queue"), s.tag("worker_status"), s.field("workers"))
            for s in out.samples] == [("Q1", "idle", 3.0)]


def cric_record(**numbers):
    return {"panda_resource": "R", "atlas_site": "SITE", "cloud": "CA", "tier": "2",
            "status": "online", **numbers}


def test_cric_1e30_and_infinity_are_left_unknown_and_reach_no_table(state_engine):
    answer = json.loads(json.dumps({
        "GOOD": cric_record(corecount=8, corepower=12.5),
        "HUGE": cric_record(corecount=1e30, corepower=10.0),
        "INF": cric_record(corecount=1, corepower=float("inf")),
        "NEG": cric_record(corecount=-8, corepower=float("nan")),
    }))
    queues, problems = parse_pandaqueues(answer, "CRIC test")
    assert problems == [
        "CRIC test: queue HUGE: corecount: 1e+30 is above the maximum 1024; left unknown",
        "CRIC test: queue INF: corepower: inf is not finite; left unknown",
        "CRIC test: queue NEG: corecount: -8 is negative; left unknown",
        "CRIC test: queue NEG: corepower: nan is not finite; left unknown",
    ]
    assert {name: (q.corecount, q.corepower) for name, q in queues.items()} == {
        "GOOD": (8, 12.5), "HUGE": (None, 10.0), "INF": (1, None), "NEG": (None, None)}
    state_queues.upsert_queues(state_engine, [
        {"panda_queue": name, "atlas_site": q.atlas_site, "cloud": q.cloud,
         "corecount": q.corecount, "corepower": q.corepower, "updated_at": T}
        for name, q in queues.items()])
    with state_engine.connect() as conn:
        table = state_queues.queues.c
        rows = conn.execute(select(table.panda_queue, table.corecount, table.corepower)).all()
    assert sorted(map(tuple, rows)) == [("GOOD", 8, 12.5), ("HUGE", None, 10.0),
                                        ("INF", 1, None), ("NEG", None, None)]


CONDOR_JOBS = """
ClusterId = 1
ProcId = 0
JobStatus = 2
Owner = "alice"
RequestCpus = 8
RequestMemory = 16000

ClusterId = 2
ProcId = 0
JobStatus = 2
Owner = "mallory"
RequestCpus = real("NaN")
RequestMemory = 2000

ClusterId = 3
ProcId = 0
JobStatus = 1
Owner = "mallory"
RequestCpus = -64
RequestMemory = 2000

ClusterId = 4
ProcId = 0
JobStatus = 1
Owner = "bob"
RequestCpus = 1
RequestMemory = 2000
"""


def test_htcondor_one_nan_request_costs_only_that_job(state_engine):
    htcondor = condor_source([AdSchedd("ce01", parse_long(CONDOR_JOBS))], slots="")
    out = htcondor.collect(T)
    assert out.problems == [
        "HTCondor schedd ce01: job ce01#2.0: field cpus = nan is not finite; skipped",
        "HTCondor schedd ce01: job ce01#3.0: field cpus = -64.0 is negative; skipped",
    ]
    assert sorted((s.tag("owner"), s.tag("state"), s.field("jobs"), s.field("cpus"))
                  for s in out.samples) == [("alice", "running", 1.0, 8.0),
                                            ("bob", "pending", 1.0, 1.0)]
    assert sync_jobs(state_engine, "pool1", "htcondor", out.jobs, T,
                     timedelta(days=90))["written"] == 2
    rows = current_jobs(state_engine, "pool1")
    assert sorted((r["job_id"], r["cpus"]) for r in rows) == [("ce01#1.0", 8.0),
                                                             ("ce01#4.0", 1.0)]


SQUEUE = """{"jobs": [
 {"job_id": 11, "user_name": "alice", "account": "atlas", "partition": "cpu",
  "job_state": "RUNNING", "cpus": 4, "nodes": "n1"},
 {"job_id": 12, "user_name": "mallory", "account": "atlas", "partition": "cpu",
  "job_state": "RUNNING", "cpus": -64, "nodes": "n1"},
 {"job_id": 13, "user_name": "mallory", "account": "atlas", "partition": "cpu",
  "job_state": "PENDING", "cpus": NaN, "state_reason": "Priority"},
 {"job_id": 14, "user_name": "bob", "account": "atlas", "partition": "cpu",
  "job_state": "PENDING", "cpus": 2, "state_reason": "Priority"}]}"""


def test_slurm_negative_and_nan_cpus_are_skipped(state_engine):
    def run(argv, timeout):
        if (answer := health_answer(argv)) is not None:
            return answer
        return SQUEUE if argv[0].endswith("squeue") else '{"nodes": []}'

    slurm = SlurmSource(default_section(
        SlurmSection, cluster="c1", bin_dir="", format="json", timeout_s=5),
                        load_rules("slurm"), run)
    out = slurm.collect(T)
    assert out.problems == ["Slurm c1: job 12: field cpus = -64.0 is negative; skipped",
                            "Slurm c1: job 13: field cpus = nan is not finite; skipped"]
    assert sorted((s.tag("owner"), s.tag("state"), s.field("jobs"), s.field("cpus"))
                  for s in out.samples if s.measurement == "batch_jobs") == [
                      ("alice", "running", 1.0, 4.0), ("bob", "pending", 1.0, 2.0)]
    sync_jobs(state_engine, "c1", "slurm", out.jobs, T, timedelta(days=90))
    assert sorted((r["job_id"], r["cpus"]) for r in current_jobs(state_engine, "c1")) == \
        [("11", 4.0), ("14", 2.0)]


def test_a_node_with_impossible_numbers_is_skipped(caplog):
    nodes = [BatchNode("n1", "idle", 64.0, 0.0), BatchNode("n2", "idle", float("nan"), 0.0),
             BatchNode("n3", "mixed", 64.0, -8.0)]
    with caplog.at_level(logging.WARNING):
        samples = node_samples(nodes, "c1", "slurm", T)
    assert [s.tag("node") for s in samples] == ["n1"]
    assert [r.getMessage() for r in caplog.records] == [
        "c1: node n2: field cpus = nan is not finite; skipped",
        "c1: node n3: field cpus_alloc = -8.0 is negative; skipped"]


def msearch(*buckets):
    return {"responses": [{"status": 200, "timed_out": False, "_shards": {"failed": 0},
                           "aggregations": {"4": {"buckets": list(buckets)}}}]}


def bucket(rse, files, size):
    return {"key": rse, "1": {"value": files}, "3": {"value": size}}


def test_daod_nan_negative_and_1e30_bytes_are_skipped():
    answer = msearch(bucket("GOOD_DATADISK", 10, 5e12), bucket("NAN_DATADISK", 1, float("nan")),
                     bucket("NEG_DATADISK", -3, 1e9), bucket("HUGE_DATADISK", 1, 1e30))
    volumes, problems = parse_msearch(answer, "DAOD test")
    assert problems == [
        "DAOD test: bucket 1 (NAN_DATADISK): field bytes = nan is not finite; skipped",
        "DAOD test: bucket 2 (NEG_DATADISK): field files = -3.0 is negative; skipped",
        "DAOD test: bucket 3 (HUGE_DATADISK): field bytes = 1e+30 is above the maximum "
        "1e+18; skipped",
    ]
    assert [(v.rse, v.files, v.bytes) for v in volumes] == [("GOOD_DATADISK", 10.0, 5e12)]


def test_a_level_sum_that_is_not_finite_is_not_written(caplog):
    """The second line: samples made elsewhere (not parsed) whose sum overflows."""
    huge = [jobs_point("Q1", "running", 1e308), jobs_point("Q2", "running", 1e308),
            jobs_point("Q3", "finished", 5.0)]
    with caplog.at_level(logging.WARNING):
        levels = aggregate(huge)
    assert sorted((s.measurement, s.tags, s.fields) for s in levels) == [
        ("jobs_by_queue", (("panda_queue", "Q1"),), (("jobs", 1e308),)),
        ("jobs_by_queue", (("panda_queue", "Q2"),), (("jobs", 1e308),)),
        ("jobs_by_queue", (("panda_queue", "Q3"),), (("jobs", 5.0),)),
        ("jobs_by_status", (("job_status", "finished"), ("prod_source", "managed")),
         (("jobs", 5.0),)),
        ("jobs_grid", (("job_status", "finished"), ("prod_source", "managed")),
         (("jobs", 5.0),)),
    ]
    at = "at 2026-11-21T12:00:00+00:00: sum {'jobs': inf} is not finite; point not written"
    assert [r.getMessage() for r in caplog.records] == [
        f"level jobs_by_status {{'job_status': 'running', 'prod_source': 'managed'}} {at}",
        f"level jobs_by_state {{'prod_source': 'managed'}} {at}",
        f"level jobs_grid {{'job_status': 'running', 'prod_source': 'managed'}} {at}",
    ]
    assert all(math.isfinite(v) for s in levels for _, v in s.fields)
    assert Aggregator().samples() == []


def test_a_collect_fed_hostile_numbers_stores_only_finite_ones(
        state_engine, make_config, http, influx_db, caplog):
    """PanDA's 1e308, NaN and -5 and CRIC's corecount 1e30 and corepower Infinity through the
    whole cycle: the good counts are written, the state tables on SQLite and MariaDB hold
    no number that is not finite."""
    from qmonit.collect.components import build
    from qmonit.collect.cycle import collect
    from qmonit.sources.panda import PATHS
    from tests.conftest import DATA
    from tests.servers import Reply

    panda = json.loads((DATA / "panda_job_stats_v1.json").read_text())
    panda["data"]["AGLT2_UCORE"]["managed"]["SCORE"]["running"] = 1e308
    panda["data"]["SLAC_ES"] = {"managed": {"SCORE": {"running": float("nan"),
                                                      "failed": -5}}}
    cric = json.loads((DATA / "cric_pandaqueue.json").read_text())
    cric["AGLT2_UCORE"]["corecount"] = 1e30
    cric["SLAC_ES-lsf"]["corepower"] = float("inf")
    http.route(PATHS["v1"], Reply(200, json.dumps(panda)))  # NaN, Infinity as Python writes
    http.route("/api/atlas/pandaqueue/query/", Reply(200, json.dumps(cric)))
    url = state_engine.url.render_as_string(hide_password=False)
    parts = build(make_config({"influxdb": influx_db, "sql": {"url": url},
                               "panda": {"url": http.url}, "cric": {"url": http.url}}))
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    with caplog.at_level(logging.WARNING):
        report = collect(parts, T)
    [source] = [s for s in report.sources if s.source == "panda"]
    assert (source.status, source.errors) == ("ok", 3)
    assert report.state_errors == []
    origin = f"PanDA {http.url}{PATHS['v1']}"
    for line in (f"{origin}: AGLT2_UCORE/managed/SCORE/running: count 1e+308 is above the "
                 "maximum 1e+07; skipped",
                 f"{origin}: SLAC_ES/managed/SCORE/running: count nan is not finite; skipped",
                 f"{origin}: SLAC_ES/managed/SCORE/failed: count -5 is negative; skipped"):
        assert line in caplog.text
    cric_origin = f"CRIC {http.url}/api/atlas/pandaqueue/query/"
    assert f"{cric_origin}: queue AGLT2_UCORE: corecount: 1e+30 is above the maximum 1024; " \
           "left unknown" in caplog.text
    assert f"{cric_origin}: queue SLAC_ES-lsf: corepower: inf is not finite; left unknown" \
        in caplog.text
    with state_engine.connect() as conn:
        queues = {r[0]: (r[1], r[2]) for r in conn.execute(select(
            state_queues.queues.c.panda_queue, state_queues.queues.c.corecount,
            state_queues.queues.c.corepower))}
        stats = conn.execute(select(state_queues.queue_stats)).mappings().all()
    assert queues["AGLT2_UCORE"] == (None, 10.96)
    assert queues["SLAC_ES-lsf"][1] is None
    numbers = [v for row in stats for v in row.values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)
    stored = parts.store.rows('SELECT "jobs", "cores", "hs06", panda_queue, job_status '
                              'FROM "10m"."jobs"')
    assert not [r for r in stored if r["panda_queue"] == "SLAC_ES"
                and r["job_status"] in ("running", "failed") and r["jobs"]]
    assert all(math.isfinite(r[k]) for r in stored for k in ("jobs", "cores", "hs06")
               if r.get(k) is not None)


def test_a_cached_cric_snapshot_is_checked_again(http, tmp_path, caplog):
    """A snapshot written before the numbers were checked (1e30 cores, Infinity HS06) is
    read back with those numbers unknown."""
    from qmonit.core import config
    from qmonit.sources.cric import CricTopology
    from tests.conftest import DATA
    from tests.servers import Reply

    http.route("/api/atlas/pandaqueue/query/", Reply(200, (DATA / "cric_pandaqueue.json")
                                                     .read_text()), Reply(503, "maintenance"))
    settings = config.defaults({"cric": {"url": http.url, "timeout_s": "0.5"},
                                "sources": {"enabled": "simulated"}}).settings.cric
    source = CricTopology(settings, tmp_path / "cric.json")
    source.load()
    snapshot = json.loads(source.cache_path.read_text())
    snapshot["queues"]["AGLT2_UCORE"]["corecount"] = 1e30
    snapshot["queues"]["SLAC_ES-lsf"]["corepower"] = float("inf")
    source.cache_path.write_text(json.dumps(snapshot))
    with caplog.at_level(logging.WARNING):
        cached = source.load()
    assert cached.status == "cached"
    assert (cached.queues["AGLT2_UCORE"].corecount, cached.queues["AGLT2_UCORE"].corepower) \
        == (None, 10.96)
    assert cached.queues["SLAC_ES-lsf"].corepower is None
    where = f"CRIC snapshot {source.cache_path}: queue"
    assert [r.getMessage() for r in caplog.records if "snapshot" in r.getMessage()][:2] == [
        f"{where} AGLT2_UCORE: corecount: 1e+30 is above the maximum 1024; left unknown",
        f"{where} SLAC_ES-lsf: corepower: inf is not finite; left unknown"]


def test_htcondor_infinite_ids_and_times_cost_only_their_job():
    ads = CONDOR_JOBS.replace('RequestCpus = real("NaN")', 'RequestCpus = 1\nQDate = 1e30') \
        .replace("ClusterId = 3\n", 'ClusterId = real("INF")\n')
    out = condor_source([AdSchedd("ce01", parse_long(ads))], slots="").collect(T)
    assert out.problems == [
        "HTCondor schedd ce01: job 2.0: a number out of range: timestamp out of range for "
        "platform time_t; skipped",
        "HTCondor schedd ce01: job inf.0: a number out of range: cannot convert float "
        "infinity to integer; skipped",
    ]
    assert sorted(s.tag("owner") for s in out.samples) == ["alice", "bob"]


def test_slurm_times_and_ids_out_of_range_cost_only_their_job():
    from qmonit.sources.slurm import parse_squeue_json

    good = {"job_id": 1, "user_name": "a", "partition": "p", "job_state": "PENDING", "cpus": 1}
    doc = json.loads(json.dumps({"jobs": [
        good, {**good, "job_id": 2, "submit_time": 1e30},
        {**good, "job_id": 3, "array_job_id": float("inf"), "array_task_id": 1}]}))
    jobs, problems = parse_squeue_json(doc)
    assert [j.job_id for j in jobs] == ["1"]
    assert problems == [
        "squeue --json: job 2: a number out of range: timestamp out of range for platform "
        "time_t; skipped",
        "squeue --json: job 3: a number out of range: cannot convert float infinity to "
        "integer; skipped"]
