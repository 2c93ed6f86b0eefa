import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.collect.fetch import fetch
from qmonit.sources.panda import PATHS
from qmonit.stores.state import queues as state_queues
from qmonit.stores.state import schema
from tests.conftest import DATA
from tests.servers import InfluxServer, Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
V1 = json.loads((DATA / "panda_job_stats_v1.json").read_text())
CRIC = (DATA / "cric_pandaqueue.json").read_text()
CRIC_PATH = "/api/atlas/pandaqueue/query/"
GOOD = Reply(200, json.dumps(V1))


def without(series_path: tuple[str, str, str]) -> Reply:
    """The recorded answer minus one queue/prod_source/resource: that series vanished."""
    data = json.loads(json.dumps(V1))
    queue, label, resource = series_path
    del data["data"][queue][label][resource]
    return Reply(200, json.dumps(data))


@pytest.fixture
def parts_for(make_config, http, mariadb_url):
    def parts(influx: dict[str, str], **sections):
        http.routes.setdefault(CRIC_PATH, [Reply(200, CRIC)])
        cfg = make_config({
            "influxdb": influx,
            "sql": {"url": mariadb_url},
            "panda": {"url": http.url, "timeout_s": "0.5"},
            "cric": {"url": http.url},
            **sections,
        })
        built = build(cfg)
        schema.create_tables(built.engine)
        return built
    return parts


def count_at(store, slot, measurement="jobs", field="jobs"):
    rows = store.rows(f'SELECT count("{field}") FROM "10m"."{measurement}" '
                      f"WHERE time = {int(slot.timestamp())}s")
    return rows[0]["count"] if rows else 0


def values_at(store, slot, where=""):
    rows = store.rows(f'SELECT "jobs", panda_queue, prod_source, resource, job_status '
                      f'FROM "10m"."jobs" WHERE time = {int(slot.timestamp())}s {where}')
    return {(r["panda_queue"], r["prod_source"], r["resource"], r["job_status"]): r["jobs"]
            for r in rows}


def run_points(store, slot):
    rows = store.rows(f'SELECT * FROM "10m"."qmonit_run" WHERE time = {int(slot.timestamp())}s')
    return {r["source"]: r for r in rows}


def test_collect_writes_jobs_run_record_and_state(parts_for, http, influx_db):
    http.route(PATHS["v1"], GOOD)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert report.exit_code == 0
    assert count_at(parts.store, T) == 26
    assert values_at(parts.store, T, "AND panda_queue = 'SLAC_ES'")[
        ("SLAC_ES", "managed", "MCORE", "running")] == 6.0
    runs = run_points(parts.store, T)
    assert (runs["panda"]["status"], runs["panda"]["points"], runs["panda"]["errors"]) == \
        ("ok", 26.0, 0.0)
    assert (runs["cric"]["status"], runs["cric"]["points"]) == ("ok", 2.0)
    assert report.levels == 60  # jobs_by_queue 16, _by_status 17, _by_state 11, jobs_grid 16
    assert (runs["sinks"]["status"], runs["sinks"]["points"], runs["sinks"]["levels"]) == \
        ("ok", 26.0 + 60, 60.0)
    with parts.engine.connect() as conn:
        stats = {(r.panda_queue, r.prod_source, r.resource): r
                 for r in conn.execute(select(state_queues.queue_stats))}
        queues = {r.panda_queue: r for r in conn.execute(select(state_queues.queues))}
    row = stats[("AGLT2_UCORE", "managed", "SCORE")]
    assert (row.assigned, row.activated, row.running, row.finished, row.failed, row.starting,
            row.transferring) == (3, 120, 410, 95, 4, 2, 0)
    assert (row.atlas_site, row.cloud, row.queue_status, row.site_state) == \
        ("AGLT2", "US", "online", "ACTIVE")
    assert len(stats) == 5
    assert sorted(queues) == ["AGLT2_UCORE", "SLAC_ES-lsf"]
    assert (queues["SLAC_ES-lsf"].panda_resource, queues["SLAC_ES-lsf"].corecount,
            queues["SLAC_ES-lsf"].queue_status) == \
        ("SLAC_ES", 4, "offline")


def test_rerunning_a_slot_writes_no_duplicates(parts_for, http, influx_db):
    http.route(PATHS["v1"], GOOD)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    first = values_at(parts.store, T)
    collect(parts, T + timedelta(minutes=3))  # same slot, re-run
    collect(parts, T)
    assert count_at(parts.store, T) == 26
    assert values_at(parts.store, T) == first
    total = parts.store.rows('SELECT count("jobs") FROM "10m"."jobs"')[0]["count"]
    assert total == 26


def test_vanished_series_is_zero_filled_within_the_horizon(parts_for, http, influx_db):
    gone = ("AGLT2_UCORE", "managed", "MCORE")
    http.route(PATHS["v1"], GOOD, without(gone), without(gone))
    parts = parts_for(influx_db, collect={"zero_fill_hours": "48"})
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    report = collect(parts, T + SLOT)
    later = T + SLOT + timedelta(hours=49)
    collect(parts, later)
    after = values_at(parts.store, T + SLOT)
    assert count_at(parts.store, T + SLOT) == 26
    assert {k: v for k, v in after.items() if k[:3] == gone} == {
        (*gone, status): 0.0 for status in ("assigned", "activated", "running", "finished",
                                            "failed")}
    assert after[("AGLT2_UCORE", "managed", "SCORE", "running")] == 410.0
    [panda] = [s for s in report.sources if s.source == "panda"]
    assert (panda.points, panda.zero_filled) == (26, 5)
    assert count_at(parts.store, later) == 21  # last seen 49 h ago: no longer filled
    cores = parts.store.rows(f'SELECT cores, hs06 FROM "10m"."jobs" WHERE time = '
                             f"{int((T + SLOT).timestamp())}s AND resource = 'MCORE' AND "
                             f"panda_queue = 'AGLT2_UCORE' AND job_status = 'running'")
    assert [(r["cores"], r["hs06"]) for r in cores] == [(0.0, 0.0)]


@pytest.mark.parametrize("reply, message", [
    (Reply(500, "Internal Server Error"), "HTTP 500: Internal Server Error"),
    (Reply(200, json.dumps(V1), delay=1.5), "timed out"),
    (Reply(200, "<html>proxy error</html>"), "response is not valid JSON"),
    (Reply(200, '{"success": false, "message": "overloaded"}'),
     "the server reported failure: overloaded"),
    (Reply(200, '{"success": true, "message": "", "data": {}}'), "empty statistics"),
])
def test_failed_panda_writes_no_zeros_and_records_the_error(parts_for, http, influx_db,
                                                            reply, message):
    http.route(PATHS["v1"], GOOD, reply)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    report = collect(parts, T + SLOT)
    assert report.exit_code == 1
    assert count_at(parts.store, T + SLOT) == 0
    runs = run_points(parts.store, T + SLOT)
    assert (runs["panda"]["status"], runs["panda"]["points"], runs["panda"]["errors"]) == \
        ("failed", 0.0, 1.0)
    assert message in runs["panda"]["message"]
    assert runs["cric"]["status"] == "ok"
    with parts.engine.connect() as conn:
        slots = {r.slot_time for r in conn.execute(select(state_queues.queue_stats))}
    assert [s.replace(tzinfo=UTC) for s in slots] == [T.replace(tzinfo=UTC)]


def test_influxdb_down_two_cycles_then_back_every_point_once(parts_for, http, tmp_path):
    server = InfluxServer(tmp_path / "own-influxd").start()
    try:
        http.route(PATHS["v1"], GOOD)
        influx = {"url": server.url, "retry_deadline_s": "0.3", "retry_initial_s": "0.01",
                  "retry_max_s": "0.05", "timeout_s": "2"}
        parts = parts_for(influx)
        parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
        assert collect(parts, T).exit_code == 0
        server.stop()
        down = [collect(parts, T + SLOT), collect(parts, T + 2 * SLOT)]
        assert [r.exit_code for r in down] == [1, 1]
        # data, its levels and qmonit_run
        assert [r.delivery.spooled for r in down] == [26 + 60 + 3, 26 + 60 + 3]
        assert "connection refused: nothing listens there" in down[0].delivery.errors[0]
        assert len(parts.spool.files()) == 4  # data and qmonit_run, per cycle
        server.start()
        back = collect(parts, T + 3 * SLOT)
        assert back.replay.files == 4
        assert back.replay.points == 2 * (26 + 60) + 2 * 3
        assert parts.spool.files() == []
        for n in range(4):
            assert count_at(parts.store, T + n * SLOT) == 26
            assert set(run_points(parts.store, T + n * SLOT)) == {"panda", "cric", "sinks"}
        assert parts.store.rows('SELECT count("jobs") FROM "10m"."jobs"')[0]["count"] == 4 * 26
        sinks = run_points(parts.store, T + SLOT)["sinks"]
        assert (sinks["status"], sinks["spooled"], sinks["points"]) == ("failed", 86.0, 0.0)
    finally:
        server.stop()


def test_cric_down_uses_last_snapshot(parts_for, http, influx_db):
    http.route(PATHS["v1"], GOOD)
    http.route(CRIC_PATH, Reply(200, CRIC), Reply(502, "bad gateway"))
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    report = collect(parts, T + SLOT)
    assert report.exit_code == 1
    sites = parts.store.rows(f'SELECT "jobs", atlas_site FROM "10m"."jobs" WHERE time = '
                             f"{int((T + SLOT).timestamp())}s AND panda_queue = 'SLAC_ES'")
    assert {r["atlas_site"] for r in sites} == {"WT2"}
    cric = run_points(parts.store, T + SLOT)["cric"]
    assert cric["status"] == "cached"
    assert "HTTP 502: bad gateway; using the cached snapshot of" in cric["message"]


def test_unknown_queue_is_kept_tagged_unknown_and_warned(parts_for, http, influx_db, caplog):
    http.route(PATHS["v1"], GOOD)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    with caplog.at_level(logging.WARNING):
        report = collect(parts, T)
    assert report.unknown_queues == {"NEW_QUEUE_X"}
    assert "1 queue(s) unknown to CRIC, tagged unknown: NEW_QUEUE_X" in caplog.text
    rows = parts.store.rows('SELECT "jobs", cloud, atlas_site FROM "10m"."jobs" '
                            "WHERE panda_queue = 'NEW_QUEUE_X'")
    assert sorted(r["jobs"] for r in rows) == [0.0, 0.0, 1.0, 2.0, 3.0]
    assert {(r["cloud"], r["atlas_site"]) for r in rows} == {("unknown", "unknown")}


def test_full_spool_is_loud(parts_for, http, caplog):
    http.route(PATHS["v1"], GOOD)
    influx = {"url": "http://127.0.0.1:9", "retry_deadline_s": "0"}
    parts = parts_for(influx, spool={"max_mb": "0.0001"})
    with caplog.at_level(logging.CRITICAL):
        report = collect(parts, T)
    assert report.exit_code == 1
    # data with its levels, and qmonit_run: all refused, all counted
    assert report.delivery.lost == 26 + 60 + 3
    assert report.delivery.spooled == 0
    assert "points could not be spooled and are lost; replay the spool or raise [spool] " \
           "max_mb" in caplog.text
    assert parts.spool.files() == []


def test_embedded_store_on_mariadb_overwrites_a_rerun_slot(parts_for, http):
    from sqlalchemy import func

    from qmonit.stores.timeseries.ts_tables import ts_points, ts_series

    http.route(PATHS["v1"], GOOD)
    parts = parts_for({})
    parts.store.init({})
    collect(parts, T)
    collect(parts, T)
    def of(measurement):
        return ts_points.c.series_id.in_(select(ts_series.c.series_id).where(
            ts_series.c.measurement == measurement))

    with parts.engine.connect() as conn:
        jobs = conn.execute(select(func.count()).select_from(ts_points).where(
            ts_points.c.field == "jobs", ts_points.c.time == int(T.timestamp()),
            of("jobs"))).scalar_one()
        totals = [conn.execute(select(func.sum(ts_points.c.value)).where(
            ts_points.c.field == "jobs", of(m))).scalar_one()
            for m in ("jobs", "jobs_by_queue", "jobs_by_status", "jobs_by_state", "jobs_grid")]
    assert jobs == 26
    assert totals == [822] * 5  # every count in the recorded answer, once, at every level


def test_backfilling_an_older_slot_leaves_the_current_state_alone(parts_for, http, influx_db):
    http.route(PATHS["v1"], GOOD, without(("AGLT2_UCORE", "managed", "SCORE")))
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    collect(parts, T - timedelta(hours=2))
    assert count_at(parts.store, T - timedelta(hours=2)) == 20  # the backfill itself is written
    with parts.engine.connect() as conn:
        row = conn.execute(select(state_queues.queue_stats).where(
            state_queues.queue_stats.c.panda_queue == "AGLT2_UCORE",
            state_queues.queue_stats.c.resource == "SCORE",
            state_queues.queue_stats.c.prod_source == "managed")).one()
    assert (row.running, row.slot_time.replace(tzinfo=UTC)) == (410, T)


def test_answers_fetched_beforehand_write_what_collect_would_have_fetched(parts_for, http,
                                                                         influx_db):
    http.route(PATHS["v1"], GOOD, GOOD)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    asked = collect(parts, T)
    asked_points = values_at(parts.store, T)
    fetched = fetch(parts, T + SLOT)
    assert [a.source for a in fetched.answers] == ["panda"]
    given = collect(parts, T + SLOT, fetched)
    assert values_at(parts.store, T + SLOT) == asked_points
    assert len(asked_points) == 26
    assert [(s.source, s.status, s.points, s.zero_filled, s.errors) for s in given.sources] == \
        [(s.source, s.status, s.points, s.zero_filled, s.errors) for s in asked.sources]
    assert given.levels == asked.levels == 60
    with parts.engine.connect() as conn:
        slots = {r.slot_time.replace(tzinfo=UTC)
                 for r in conn.execute(select(state_queues.queue_stats))}
    assert slots == {T + SLOT}


def test_answers_of_another_slot_are_refused(parts_for, http, influx_db):
    http.route(PATHS["v1"], GOOD)
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    fetched = fetch(parts, T)
    with pytest.raises(ValueError) as raised:
        collect(parts, T + SLOT, fetched)
    assert str(raised.value) == ("collect of 2026-11-21 12:10 UTC given the sources' answers "
                                 "for 2026-11-21 12:00 UTC")
    assert count_at(parts.store, T + SLOT) == 0


def test_a_failed_answer_fetched_beforehand_writes_nothing_and_is_reported(parts_for, http,
                                                                          influx_db):
    http.route(PATHS["v1"], GOOD, Reply(500, "Internal Server Error"))
    parts = parts_for(influx_db)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    collect(parts, T)
    fetched = fetch(parts, T + SLOT)
    [answer] = fetched.answers
    assert answer.samples is None and "HTTP 500: Internal Server Error" in answer.message
    report = collect(parts, T + SLOT, fetched)
    assert report.exit_code == 1
    assert count_at(parts.store, T + SLOT) == 0  # no zeros for a source that failed
    runs = run_points(parts.store, T + SLOT)
    assert (runs["panda"]["status"], runs["panda"]["points"], runs["panda"]["errors"]) == \
        ("failed", 0.0, 1.0)
    assert "HTTP 500: Internal Server Error" in runs["panda"]["message"]
