import base64
import gzip
from datetime import UTC, datetime

from qmonit.core import config
from qmonit.core.sample import make_sample
from qmonit.stores.timeseries.influx import InfluxStore
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def store_for(url, **extra):
    settings = {"url": url, "retry_deadline_s": "2", "retry_initial_s": "0.01",
                "retry_max_s": "0.02", "timeout_s": "2", **extra}
    cfg = config.defaults({"influxdb": settings, "sources": {"enabled": "simulated"}})
    return InfluxStore(cfg.settings.influxdb)


def points(n, measurement="jobs"):
    return [make_sample(measurement, {"panda_queue": f"Q{i}"}, {"jobs": i}, T) for i in range(n)]


def test_500_then_204_is_retried_and_written(http):
    http.route("/write", Reply(500, '{"error":"timeout"}'), Reply(204))
    result = store_for(http.url).write(points(3))
    assert (result.written, result.unwritten, result.rejected) == (3, [], [])
    writes = http.hits("/write")
    assert len(writes) == 2
    assert writes[0].body == writes[1].body
    assert gzip.decompress(writes[1].body).decode() == (
        "jobs,panda_queue=Q0 jobs=0.0 1795262400\n"
        "jobs,panda_queue=Q1 jobs=1.0 1795262400\n"
        "jobs,panda_queue=Q2 jobs=2.0 1795262400\n")
    assert writes[1].query == {"db": ["qmonit"], "rp": ["10m"], "precision": ["s"]}


def test_400_partial_write_is_reported_with_first_offending_line_not_retried(http):
    body = ('{"error":"partial write: field type conflict: input field \\"jobs\\" on '
            'measurement \\"workers\\" is type float, already exists as type string dropped=1"}')
    http.route("/write", Reply(400, body))
    samples = points(2) + points(1, "workers")
    result = store_for(http.url).write(samples)
    assert len(http.hits("/write")) == 1
    assert result.written == 2
    assert result.unwritten == []
    [rejection] = result.rejected
    assert rejection.points == 1
    assert rejection.first_line == "workers,panda_queue=Q0 jobs=0.0 1795262400"
    assert rejection.reason.startswith("HTTP 400: partial write: field type conflict")


def test_timeouts_exhaust_the_deadline_and_hand_points_back(http):
    http.route("/write", Reply(204, delay=1.0))
    store = store_for(http.url, timeout_s="0.2", retry_deadline_s="0.5")
    result = store.write(points(4))
    assert result.written == 0
    assert len(result.unwritten) == 4
    assert ("timed out: no complete answer within 0.2 s (raise timeout_s if the server is only "
            "slow) (gave up after") in result.error


def test_401_is_not_retried_and_points_come_back_for_the_spool(http):
    http.route("/write", Reply(401, '{"error":"authorization failed"}'))
    result = store_for(http.url, username="qmonit", password="hunter2").write(points(2))
    assert len(http.hits("/write")) == 1
    assert len(result.unwritten) == 2
    assert result.error == f"InfluxDB {http.url}/ database qmonit: HTTP 401 authentication failed" \
        .replace("/ database", " database")
    assert "hunter2" not in result.error


def test_basic_and_token_auth_headers(http):
    http.route("/write", Reply(204))
    store_for(http.url, username="qmonit", password="pw").write(points(1))
    store_for(http.url, token="tok-123").write(points(1))
    basic, token = http.hits("/write")
    assert basic.headers["Authorization"] == "Basic " + base64.b64encode(b"qmonit:pw").decode()
    assert token.headers["Authorization"] == "Token tok-123"


def test_batches_follow_batch_size(http):
    http.route("/write", Reply(204))
    result = store_for(http.url, batch_size="2", gzip="false", write_threads="1").write(points(5))
    assert result.written == 5
    assert [r.body.count(b"\n") for r in http.hits("/write")] == [2, 2, 1]


def test_second_batch_failing_spools_only_the_rest(http):
    http.route("/write", Reply(204), Reply(503, "down"))
    store = store_for(http.url, batch_size="2", retry_deadline_s="0.1", write_threads="1")
    result = store.write(points(5))
    assert result.written == 2
    assert [s.tag("panda_queue") for s in result.unwritten] == ["Q2", "Q3", "Q4"]


def test_batches_in_flight_together_each_count_once(http):
    http.route("/write", *[Reply(204)] * 3)
    result = store_for(http.url, batch_size="2", write_threads="2", gzip="false").write(points(5))
    assert (result.written, result.unwritten, result.error) == (5, [], None)
    bodies = sorted(request.body.decode() for request in http.requests)
    assert sorted(b.count("\n") for b in bodies) == [1, 2, 2]
    http.route("/write", Reply(503, "down"))  # down for good: every batch comes back
    failed = store_for(http.url, batch_size="2", write_threads="2",
                       retry_deadline_s="0.1").write(points(5))
    assert (failed.written, sorted(s.tag("panda_queue") for s in failed.unwritten)) == \
        (0, ["Q0", "Q1", "Q2", "Q3", "Q4"])
    assert "HTTP 503 down" in failed.error


def test_real_field_type_conflict_is_rejected_with_the_line(influx_store):
    influx_store.write([make_sample("jobs", {"q": "A"}, {"note": "text"}, T)])
    result = influx_store.write([make_sample("jobs", {"q": "B"}, {"jobs": 1}, T),
                                 make_sample("jobs", {"q": "C"}, {"note": 5}, T)])
    assert result.written == 1
    [rejection] = result.rejected
    assert rejection.first_line == "jobs,q=C note=5.0 1795262400"
    assert "field type conflict" in rejection.reason


def test_point_beyond_retention_is_rejected_not_silently_dropped(influx_store):
    old = make_sample("jobs", {"q": "OLD"}, {"jobs": 1}, datetime(2020, 1, 1, tzinfo=UTC))
    result = influx_store.write([old])
    [rejection] = result.rejected
    assert "points beyond retention policy" in rejection.reason
    assert rejection.first_line == "jobs,q=OLD jobs=1.0 1577836800"


def test_init_is_idempotent_and_sets_durations(influx_store):
    influx_store.init({"10m": "7d", "1h": "60d", "1d": "INF"})
    influx_store.init({"10m": "7d", "1h": "60d", "1d": "INF"})
    policies = {row["name"]: (row["duration"], row["default"])
                for row in influx_store.rows(
                    f'SHOW RETENTION POLICIES ON "{influx_store.database}"', database=False)}
    assert policies["10m"] == ("168h0m0s", True)
    assert policies["1h"] == ("1440h0m0s", False)
    assert policies["1d"] == ("0s", False)


def test_check_reports_version_and_missing_database(influxd):
    store = store_for(influxd.url, database="not_created_yet")
    assert store.check() == ("answers (InfluxDB 1.6.7~rc0), no credentials configured; database "
                             "not_created_yet missing: run `qmonit init`")


def test_check_says_when_the_dashboards_meta_tables_are_missing(influx_store):
    version = "answers (InfluxDB 1.6.7~rc0), no credentials configured, database " \
              f"{influx_store.database} present"
    assert influx_store.check() == (f"{version}; Grafana's meta.rp_config and meta.levels "
                                    f"missing: run `qmonit init`")
    influx_store.write_rp_config([("10m", 86400.0), ("1h", float("inf"))])
    assert influx_store.check() == f"{version}; Grafana's meta.levels missing: run `qmonit init`"
    from qmonit.core.levels import CHOICES

    influx_store.write_levels(CHOICES)
    assert influx_store.check() == version
