"""The datadisk job: the real `_msearch` answer and its error shapes from a local HTTP
server, the exact join, and the points on a real InfluxDB."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qmonit.collect.components import build
from qmonit.core import config
from qmonit.datadisk.job import Analysis, join, run_datadisk
from qmonit.simulation.grid import SimulatedDaod, SimulatedGrid, SimulatedTopology
from qmonit.sources.base import SourceError
from qmonit.sources.cric import QueueInfo, Topology
from qmonit.sources.daod import DaodAccounting, RseVolume, parse_msearch
from qmonit.stores.sql import upsert
from qmonit.stores.state import metadata, queues, schema
from tests.conftest import SHARED_SAMPLES
from tests.servers import Reply

HOUR = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SAMPLE_IN = SHARED_SAMPLES / "eschanet+QMonit__test_references_test_input_grafana_datadisks.json"
SAMPLE_OUT = SHARED_SAMPLES / "eschanet+QMonit__test_references_test_output_grafana_datadisks.json"
PROXY = "/api/datasources/proxy/7"
CRIC_PATH = "/api/atlas/pandaqueue/query/"
CRIC = (Path(__file__).parent / "data" / "cric_pandaqueue.json").read_text()


def answer(*buckets, **extra):
    return json.dumps({"responses": [{"status": 200, "timed_out": False,
                                      "_shards": {"total": 3, "successful": 3, "failed": 0},
                                      "aggregations": {"4": {"buckets": [
                                          {"key": rse, "1": {"value": files},
                                           "3": {"value": size}, "doc_count": 1}
                                          for rse, files, size in buckets]}}, **extra}]})


def settings(url, **extra):
    cfg = config.defaults({"sources": {"enabled": "simulated"},
                           "datadisk": {"url": url, **extra}})
    return cfg.settings.datadisk


@pytest.mark.skipif(not SAMPLE_IN.is_file(), reason="../shared/samples not present")
def test_the_real_answer_gives_qmonits_own_numbers():
    volumes, problems = parse_msearch(json.loads(SAMPLE_IN.read_text()), "sample")
    expected = json.loads(SAMPLE_OUT.read_text())
    assert problems == []
    assert {v.rse: {"bytes": int(v.bytes), "files": int(v.files)} for v in volumes} == expected
    assert len(volumes) == 89


def test_the_search_goes_through_grafanas_proxy_with_the_token(http):
    http.route(f"{PROXY}/_msearch", Reply(200, answer(("A_DATADISK", 10, 3e12))))
    source = DaodAccounting(settings(http.url + PROXY, token="glsa_secret", window_h="24"))
    volumes, _ = source.volumes(HOUR)
    assert volumes == [RseVolume("A_DATADISK", 10.0, 3e12)]
    [hit] = http.hits(f"{PROXY}/_msearch")
    assert hit.method == "POST"
    assert hit.headers["Authorization"] == "Bearer glsa_secret"
    assert hit.headers["Content-Type"] == "application/x-ndjson"
    header, body = [json.loads(line) for line in hit.body.decode().splitlines()]
    assert header == {"index": "monit_prod_rucioacc_enr_site*", "ignore_unavailable": True}
    assert body["query"]["bool"]["filter"] == [
        {"range": {"metadata.timestamp": {"gte": 1795168800000, "lt": 1795255200000,
                                          "format": "epoch_millis"}}},
        {"term": {"data.datatype": "DAOD"}}]
    assert body["aggs"]["4"]["aggs"] == {"1": {"sum": {"field": "data.files"}},
                                         "3": {"sum": {"field": "data.bytes"}}}
    assert body["size"] == 0


@pytest.mark.parametrize("reply, message", [
    (Reply(400, json.dumps({"error": {"type": "parsing_exception",
                                      "reason": "Unknown key for a VALUE_STRING in [size]."}})),
     "HTTP 400: Unknown key for a VALUE_STRING in [size]."),
    (Reply(502, "<html>Bad Gateway</html>"), "HTTP 502: Bad Gateway"),
    (Reply(403, json.dumps({"message": "Permission denied"})), "HTTP 403: Forbidden"),
    (Reply(200, json.dumps({"responses": [{"status": 404, "error": {
        "type": "index_not_found_exception", "reason": "no such index [monit_x]"}}]})),
     "the search failed (status 404): no such index [monit_x]"),
    (Reply(200, answer(("A_DATADISK", 1, 2), timed_out=True)),
     "the search timed out on the server: its sums are partial"),
    (Reply(200, answer(("A_DATADISK", 1, 2), _shards={"total": 9, "failed": 2})),
     "2 of 9 shards failed: the sums would be partial"),
    (Reply(200, answer()), "no DAOD found per RSE (no buckets): the index, the window or the "
                           "datatype filter matches nothing"),
    (Reply(200, "{\"responses\": [{\"status\": 200"), "response is not valid JSON"),
    (Reply(200, "{}"), "expected {\"responses\": [...]} from _msearch"),
])
def test_every_error_shape_fails_the_source_with_its_reason(http, reply, message):
    http.route("/_msearch", reply)
    source = DaodAccounting(settings(http.url))
    with pytest.raises(SourceError) as failed:
        source.volumes(HOUR)
    assert str(failed.value).startswith(f"DAOD accounting {http.url}/_msearch: ")
    assert message in str(failed.value)


def test_a_bucket_without_numbers_is_reported_and_the_rest_kept():
    data = json.loads(answer(("A_DATADISK", 1, 2), ("B_DATADISK", 3, 4)))
    del data["responses"][0]["aggregations"]["4"]["buckets"][0]["3"]
    volumes, problems = parse_msearch(data, "here")
    assert volumes == [RseVolume("B_DATADISK", 3.0, 4.0)]
    assert problems == ["here: bucket 0: no files/bytes (KeyError('3')); skipped"]


def topology():
    return Topology({
        "A": QueueInfo("A", atlas_site="SITE-A", cloud="DE", tier="T2", datadisks=("X_DATADISK",)),
        "B": QueueInfo("B", panda_resource="B_RES", atlas_site="SITE-B", cloud="FR", tier="T1",
                       datadisks=("X_DATADISK", "Y_DATADISK")),
        "C": QueueInfo("C", atlas_site="SITE-C", cloud="US", tier="T3"),
    })


def test_the_join_per_datadisk_is_exact():
    volumes = [RseVolume("X_DATADISK", 100.0, 6e14), RseVolume("Y_DATADISK", 50.0, 3e14),
               RseVolume("Z_DATADISK", 10.0, 1e14)]
    analysis = {"A": Analysis(30.0, 40.0, 35.0), "B_RES": Analysis(10.0, 10.0, None),
                "C": Analysis(5.0, 5.0, 5.0), "GONE": Analysis(7.0, None, None)}
    result = join(volumes, topology(), analysis, HOUR)
    points = {s.tag("rse"): (dict(s.tags), dict(s.fields)) for s in result.samples}
    # analysis by the 24 h average: X = 40 + 10, Y = 10; of 60 counted in all
    assert points["X_DATADISK"] == (
        {"rse": "X_DATADISK", "atlas_site": "SITE-A", "cloud": "DE", "tier": "T2"},
        {"daod_bytes": 6e14, "daod_files": 100.0, "analysis_running": 40.0,
         "analysis_running_avg24h": 50.0, "analysis_running_avg7d": 35.0,
         "share_of_daod": 0.6, "share_of_analysis": 50 / 60,
         "placement_ratio": (50 / 60) / 0.6})
    assert points["Y_DATADISK"] == (
        {"rse": "Y_DATADISK", "atlas_site": "SITE-B", "cloud": "FR", "tier": "T1"},
        {"daod_bytes": 3e14, "daod_files": 50.0, "analysis_running": 10.0,
         "analysis_running_avg24h": 10.0, "share_of_daod": 0.3,
         "share_of_analysis": 10 / 60, "placement_ratio": (10 / 60) / 0.3})
    assert points["Z_DATADISK"] == (  # data no queue reads: over-supplied
        {"rse": "Z_DATADISK", "atlas_site": "unknown", "cloud": "unknown", "tier": "unknown"},
        {"daod_bytes": 1e14, "daod_files": 10.0, "analysis_running": 0.0,
         "share_of_daod": 0.1, "share_of_analysis": 0.0, "placement_ratio": 0.0})
    assert sorted(points) == ["X_DATADISK", "Y_DATADISK", "Z_DATADISK"]
    assert result.problems == [
        "queue B_RES reads 2 datadisks (X_DATADISK, Y_DATADISK): counted on each",
        "queue C: runs analysis but reads no datadisk in CRIC: not counted",
        "queue GONE: runs analysis but CRIC does not know it: not counted on any datadisk"]


def test_a_datadisk_without_daod_has_no_ratio():
    result = join([RseVolume("Z_DATADISK", 1.0, 1e12)], topology(),
                  {"A": Analysis(3.0, None, None)}, HOUR)
    fields = {s.tag("rse"): dict(s.fields) for s in result.samples}
    assert fields["X_DATADISK"] == {"daod_bytes": 0.0, "daod_files": 0.0,
                                    "analysis_running": 3.0, "share_of_daod": 0.0,
                                    "share_of_analysis": 1.0}


@pytest.fixture
def datadisk_parts(make_config, http, mariadb_url, influx_db):
    def make(**datadisk):
        http.routes.setdefault(CRIC_PATH, [Reply(200, CRIC)])
        cfg = make_config({"influxdb": influx_db, "sql": {"url": mariadb_url},
                           "sources": {"enabled": "panda"}, "panda": {"url": http.url},
                           "cric": {"url": http.url},
                           "datadisk": {"url": http.url, **datadisk}})
        parts = build(cfg)
        schema.create_tables(parts.engine)
        parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
        with parts.engine.begin() as conn:
            upsert(conn, queues.queue_stats, [
                {"panda_queue": "AGLT2_UCORE", "prod_source": "user", "resource": "SCORE",
                 "running": 120.0, "running_avg_24h": 90.0, "running_avg_7d": 80.0,
                 "slot_time": HOUR},
                {"panda_queue": "AGLT2_UCORE", "prod_source": "managed", "resource": "SCORE",
                 "running": 900.0, "running_avg_24h": None, "running_avg_7d": None,
                 "slot_time": HOUR},  # production: not analysis
                {"panda_queue": "SLAC_ES", "prod_source": "user", "resource": "SCORE",
                 "running": 30.0, "running_avg_24h": 30.0, "running_avg_7d": 20.0,
                 "slot_time": HOUR},
            ], ["panda_queue", "prod_source", "resource"])
        return parts
    return make


def test_the_job_writes_the_hours_points_into_1h(datadisk_parts, http):
    http.route("/_msearch", Reply(200, answer(("AGLT2_DATADISK", 400, 8e14),
                                              ("SLACXRD_DATADISK", 100, 2e14))))
    parts = datadisk_parts()
    report = run_datadisk(parts, HOUR.replace(minute=12))
    assert (report.exit_code, report.datadisks, report.error) == (0, 2, "")
    rows = parts.store.rows('SELECT * FROM "1h"."datadisk"')
    by_rse = {r["rse"]: r for r in rows}
    assert {r["time"] for r in rows} == {int(HOUR.timestamp())}
    assert (by_rse["AGLT2_DATADISK"]["analysis_running"],
            by_rse["AGLT2_DATADISK"]["analysis_running_avg24h"],
            by_rse["AGLT2_DATADISK"]["share_of_daod"],
            by_rse["AGLT2_DATADISK"]["share_of_analysis"],
            by_rse["AGLT2_DATADISK"]["placement_ratio"]) == (120.0, 90.0, 0.8, 0.75, 0.9375)
    assert (by_rse["SLACXRD_DATADISK"]["atlas_site"], by_rse["SLACXRD_DATADISK"]["cloud"],
            by_rse["SLACXRD_DATADISK"]["placement_ratio"]) == ("WT2", "US", 1.25)
    [run] = parts.store.rows('SELECT * FROM "10m"."qmonit_run" WHERE "job" = \'datadisk\'')
    assert (run["status"], run["points"]) == ("ok", 2.0)


def test_a_failed_search_writes_nothing_and_records_why(datadisk_parts, http):
    http.route("/_msearch", Reply(503, "unavailable"))
    parts = datadisk_parts()
    report = run_datadisk(parts, HOUR)
    assert report.exit_code == 1
    assert report.error == f"DAOD accounting {http.url}/_msearch: HTTP 503: Service Unavailable"
    assert parts.store.rows('SELECT * FROM "1h"."datadisk"') == []
    [run] = parts.store.rows('SELECT * FROM "10m"."qmonit_run" WHERE "job" = \'datadisk\'')
    assert (run["status"], run["message"]) == ("failed", report.error)


def test_the_simulated_grid_has_one_badly_placed_datadisk(tmp_path):
    grid = SimulatedGrid(seed=1)
    daod = SimulatedDaod(grid)
    volumes, problems = daod.volumes(HOUR)
    assert problems == []
    disks = {d for q in grid.queues.values() for d in q.record["astorages"]["read_lan"]}
    assert {v.rse for v in volumes} == disks
    analysis = {}
    for name, queue in grid.queues.items():
        if "user" in queue.labels:
            analysis[name] = Analysis(float(queue.capacity), float(queue.capacity), None)
    result = join(volumes, SimulatedTopology(grid).load(HOUR), analysis, HOUR)
    ratios = {s.tag("rse"): s.field("placement_ratio") for s in result.samples}
    worst = max(ratios, key=ratios.get)
    assert worst == daod.badly_placed
    # every other datadisk holds DAOD in proportion to its analysis (above a floor):
    # one ratio for all of them, and the badly placed one's is that over 0.15
    weights = {}
    for queue in grid.queues.values():
        for disk in queue.record["astorages"]["read_lan"]:
            weights[disk] = weights.get(disk, 0) + (queue.capacity if "user" in queue.labels
                                                    else 0)
    fair = {ratios[d] for d in ratios if d != worst and weights[d] >= 20}
    assert max(fair) == pytest.approx(min(fair), rel=1e-9)
    assert ratios[worst] == pytest.approx(min(fair) / 0.15, rel=1e-9)


def test_without_a_datadisk_url_the_job_says_so_and_writes_nothing(make_config, http):
    parts = build(make_config({"sources": {"enabled": "panda"}, "panda": {"url": http.url}}))
    schema.create_tables(parts.engine)
    parts.store.init({})
    report = run_datadisk(parts, HOUR)
    assert (report.exit_code, report.samples) == (1, [])
    assert report.error == "[datadisk] url is not set: no DAOD accounting to read"
    with parts.engine.connect() as conn:
        [row] = conn.execute(metadata.metadata.tables["source_status"].select()).fetchall()
    assert (row.job, row.status, row.message) == ("datadisk", "failed", report.error)
