"""Roll-ups on the real InfluxDB (server and client paths) and on the embedded store."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.core.sample import make_sample
from qmonit.rollup.downsample import rollup, windows_to_do
from qmonit.stores.state import schema, watermarks
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.ts_tables import ts_points, ts_series

H = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
HOUR = timedelta(hours=1)


def raw_points():
    out = []
    for n in range(6):  # 09:00-09:50: a steady hour
        out.append(make_sample("jobs", {"q": "A"}, {"jobs": 100, "cores": 200},
                               H - HOUR + n * SLOT))
    for n, value in enumerate([10, 20, None, 40, 50, 60]):  # 10:20 is a failed cycle: absent
        if value is not None:
            out.append(make_sample("jobs", {"q": "A"}, {"jobs": value, "cores": 2 * value},
                                   H + n * SLOT))
    for n, value in enumerate([5, 7]):  # B vanished at 10:20 (beyond its zero-fill)
        out.append(make_sample("jobs", {"q": "B"}, {"jobs": value, "cores": 2 * value},
                               H + n * SLOT))
    out.append(make_sample("jobs", {"q": "A"}, {"jobs": 1000, "cores": 2000}, H + HOUR))
    out.append(make_sample("qmonit_run", {"job": "collect", "source": "panda", "status": "ok"},
                           {"points": 3, "message": "text is not rolled up"}, H))
    return out


HOURLY = {
    ("A", H - HOUR): {"jobs": 100, "jobs_max": 100, "cores": 200, "cores_max": 200},
    ("A", H): {"jobs": 36, "jobs_max": 60, "cores": 72, "cores_max": 120},  # (10+20+40+50+60)/5
    ("B", H): {"jobs": 6, "jobs_max": 7, "cores": 12, "cores_max": 14},
}


@pytest.fixture(params=["server", "client", "embedded"])
def parts_for(request, make_config, tmp_path):
    def make(**sections):
        if request.param == "embedded":
            influx = {}
        else:
            influx = request.getfixturevalue("influx_db")
        influx = {**influx, **sections.pop("influxdb", {})} if influx else {}
        cfg = make_config({"influxdb": influx, "sources": {"enabled": "simulated"},
                           "downsample": {"mode": "client" if request.param == "client"
                                          else "auto"}, **sections})
        parts = build(cfg)
        schema.create_tables(parts.engine)
        durations = cfg.settings.influxdb.retentions()
        parts.store.init(durations)
        return parts
    make.path = request.param
    return make


def rolled(parts, rp, measurement="jobs"):
    """{(q, time): fields} of what the roll-up wrote."""
    if isinstance(parts.store, EmbeddedStore):
        query = (select(ts_series.c.series_key, ts_points.c.time, ts_points.c.field,
                        ts_points.c.value)
                 .select_from(ts_points.join(ts_series,
                                             ts_series.c.series_id == ts_points.c.series_id))
                 .where(ts_points.c.rp == rp, ts_series.c.measurement == measurement))
        import json
        out: dict = {}
        with parts.engine.connect() as conn:
            for key, when, name, value in conn.execute(query):
                tags = dict(json.loads(key)[1])
                out.setdefault((tags.get("q", "-"), datetime.fromtimestamp(when, UTC)), {})[
                    name] = value
        return out
    out = {}
    for row in parts.store.rows(f'SELECT * FROM "{rp}"."{measurement}" GROUP BY *'):
        when = datetime.fromtimestamp(row.pop("time"), UTC)
        key = (row.pop("q", "-"), when)
        out[key] = {k: v for k, v in row.items() if k in ("jobs", "jobs_max", "cores",
                                                           "cores_max", "points", "points_max")
                    and v is not None}
    return out


def test_hourly_means_and_maxima_are_exact(parts_for):
    parts = parts_for()
    parts.store.write(raw_points())
    report = rollup(parts, "hourly", H + HOUR + 5 * timedelta(minutes=1), progress=False)
    assert report.exit_code == 0, report.errors
    assert report.mode == ("client" if parts_for.path != "server" else "server")
    assert rolled(parts, "1h") == HOURLY
    assert rolled(parts, "1h", "qmonit_run") == {("-", H): {"points": 3.0, "points_max": 3.0}}
    assert watermarks.watermark(parts.engine, "jobs", "hourly") == H + HOUR


def test_daily_means_and_maxima_are_exact(parts_for):
    parts = parts_for()
    parts.store.write(raw_points())
    day = H.replace(hour=0)
    rollup(parts, "daily", day + timedelta(days=1, minutes=30), progress=False)
    assert rolled(parts, "1d") == {
        ("A", day): {"jobs": (600 + 180 + 1000) / 12, "jobs_max": 1000,
                     "cores": (1200 + 360 + 2000) / 12, "cores_max": 2000},
        ("B", day): {"jobs": 6, "jobs_max": 7, "cores": 12, "cores_max": 14},
    }


def test_rerunning_changes_nothing(parts_for):
    parts = parts_for()
    parts.store.write(raw_points())
    now = H + HOUR + timedelta(minutes=5)
    first = rollup(parts, "hourly", now, progress=False)
    again = rollup(parts, "hourly", now, progress=False)
    assert (first.done["jobs"], again.done.get("jobs", 0)) == (2, 0)
    backfill = rollup(parts, "hourly", now, since=H - HOUR, progress=False)
    assert backfill.done["jobs"] == 2
    assert rolled(parts, "1h") == HOURLY


def test_catching_up_oldest_first_bounded_per_run(parts_for):
    parts = parts_for(downsample={"max_hourly_windows": "1"})
    parts.store.write(raw_points())
    now = H + 2 * HOUR  # 09:00, 10:00 and 11:00 are closed
    runs = [rollup(parts, "hourly", now, progress=False) for _ in range(4)]
    assert [r.done.get("jobs", 0) for r in runs] == [1, 1, 1, 0]
    assert [r.pending.get("jobs", 0) for r in runs] == [2, 1, 0, 0]
    assert rolled(parts, "1h")[("A", H + HOUR)] == {"jobs": 1000, "jobs_max": 1000,
                                                    "cores": 2000, "cores_max": 2000}
    assert watermarks.watermark(parts.engine, "jobs", "hourly") == H + 2 * HOUR


def test_windows_to_do():
    assert windows_to_do(None, H + timedelta(minutes=25), H + 5 * HOUR, HOUR, 3, None) == \
        ([H, H + HOUR, H + 2 * HOUR], 2)
    assert windows_to_do(H + 5 * HOUR, None, H + 5 * HOUR, HOUR, 3, None) == ([], 0)
    assert windows_to_do(None, None, H, HOUR, 3, None) == ([], 0)


def test_rolled_up_fields_are_floats_so_nothing_conflicts(parts_for):
    parts = parts_for()
    if isinstance(parts.store, EmbeddedStore):
        pytest.skip("the embedded store has no field types")
    parts.store.write(raw_points())
    rollup(parts, "hourly", H + 2 * HOUR, progress=False)
    types = {r["fieldKey"]: r["fieldType"] for r in parts.store.rows('SHOW FIELD KEYS FROM '
                                                                      '"1h"."jobs"')}
    assert types == {"jobs": "float", "jobs_max": "float", "cores": "float",
                     "cores_max": "float"}
    again = parts.store.write([make_sample("jobs", {"q": "C"}, {"jobs": 3, "jobs_max": 4},
                                           H)], "1h")
    assert (again.written, again.rejected) == (1, [])


def test_window_older_than_the_retention_is_a_clear_error(parts_for):
    if parts_for.path == "embedded":
        pytest.skip("the embedded store keeps every retention policy forever")
    parts = parts_for(influxdb={"retention_10m": "INF", "retention_1h": "2h"})
    assert not isinstance(parts.store, EmbeddedStore)
    old = datetime(2020, 1, 1, 5, 0, tzinfo=UTC)
    assert parts.store.write([make_sample("jobs", {"q": "OLD"}, {"jobs": 1}, old)]).written == 1
    report = rollup(parts, "hourly", old + 2 * HOUR, progress=False)
    assert report.exit_code == 1
    [error] = report.errors
    assert "jobs 2020-01-01 05:00 UTC" in error
    assert "beyond retention policy" in error
    assert watermarks.watermark(parts.engine, "jobs", "hourly") is None  # tried again next time


def test_points_replayed_from_the_spool_roll_their_windows_up_again(parts_for, tmp_path):
    from qmonit.collect.cycle import collect
    from qmonit.sources.base import Collection

    parts = parts_for()
    parts.store.write(raw_points())
    now = H + HOUR + timedelta(minutes=7)
    rollup(parts, "hourly", now, progress=False)
    late = make_sample("jobs", {"q": "B"}, {"jobs": 36, "cores": 72}, H + 5 * SLOT)
    parts.spool.put([late], "10m")  # written while the store was down, replayed by collect

    class Quiet:
        name = "panda"

        def collect(self, slot):
            return Collection()

    parts.sources = [Quiet()]
    collect(parts, now)
    assert watermarks.watermark(parts.engine, "jobs", "hourly") == H
    rollup(parts, "hourly", now, progress=False)
    assert rolled(parts, "1h")[("B", H)] == {"jobs": 16, "jobs_max": 36, "cores": 32,
                                            "cores_max": 72}  # (5 + 7 + 36) / 3


# -- the roll-up buffer: the same result without reading the hour back from the store ------

def buffer_tables(parts):
    import sqlite3

    with sqlite3.connect(parts.buffer.path) as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'points_%'"))


def test_hours_the_buffer_holds_are_read_from_it_with_the_same_result(parts_for):
    parts = parts_for()
    if parts_for.path == "embedded":
        assert parts.buffer is None  # its client path is the same SQL on a local file
        return
    parts.writer.write(raw_points())  # the buffer starts at 09:00: complete from 10:00 on
    report = rollup(parts, "hourly", H + 2 * HOUR + timedelta(minutes=7), progress=False)
    assert report.exit_code == 0, report.errors
    # jobs: 09:00 from the store, 10:00 and 11:00 from the buffer; qmonit_run: 10:00, 11:00
    assert (report.done, report.buffered) == ({"jobs": 3, "qmonit_run": 2}, 4)
    assert rolled(parts, "1h") == {**HOURLY, ("A", H + HOUR): {
        "jobs": 1000, "jobs_max": 1000, "cores": 2000, "cores_max": 2000}}
    assert rolled(parts, "1h", "qmonit_run") == {("-", H): {"points": 3.0, "points_max": 3.0}}
    # 09:00-11:00 rolled up and dropped; 12:00 holds this run's own qmonit_run point
    assert buffer_tables(parts) == [f"points_{int((H + 2 * HOUR).timestamp())}"]

    backfill = rollup(parts, "hourly", H + 2 * HOUR + timedelta(minutes=7), since=H,
                      progress=False)  # the same windows again, from the store
    assert (backfill.done["jobs"], backfill.buffered) == (2, 0)
    assert rolled(parts, "1h")[("A", H)] == HOURLY[("A", H)]
    assert rolled(parts, "1h")[("B", H)] == HOURLY[("B", H)]


def test_late_points_and_a_rejected_write_send_their_windows_to_the_store(parts_for):
    from qmonit.collect.cycle import collect
    from qmonit.sources.base import Collection

    parts = parts_for()
    if parts_for.path == "embedded":
        pytest.skip("the embedded store has no roll-up buffer")
    parts.writer.write(raw_points())
    now = H + HOUR + timedelta(minutes=7)
    first = rollup(parts, "hourly", now, progress=False)
    assert (first.done["jobs"], first.buffered) == (2, 2)  # 10:00 for jobs and qmonit_run
    late = make_sample("jobs", {"q": "B"}, {"jobs": 36, "cores": 72}, H + 5 * SLOT)
    parts.spool.put([late], "10m")

    class Quiet:
        name = "panda"

        def collect(self, slot):
            return Collection()

    parts.sources = [Quiet()]
    collect(parts, now)  # replays the late point: 10:00 is rolled up again, from the store
    again = rollup(parts, "hourly", now, progress=False)
    assert (again.done["jobs"], again.buffered) == (1, 0)
    assert rolled(parts, "1h")[("B", H)] == {"jobs": 16, "jobs_max": 36, "cores": 32,
                                            "cores_max": 72}

    conflict = make_sample("jobs", {"q": "C"}, {"jobs": "text"}, H + HOUR + SLOT)
    fine = make_sample("jobs", {"q": "A"}, {"jobs": 999, "cores": 0}, H + HOUR + 2 * SLOT)
    delivery = parts.writer.write([conflict, fine])
    assert delivery.rejected == 1
    later = rollup(parts, "hourly", now + HOUR, progress=False)
    assert later.buffered == 1  # qmonit_run's 11:00 only: jobs 11:00 is tainted
    assert rolled(parts, "1h")[("A", H + HOUR)] == {"jobs": 999.5, "jobs_max": 1000,
                                                    "cores": 1000, "cores_max": 2000}


def test_without_the_buffer_every_window_reads_the_store(parts_for):
    parts = parts_for(downsample={"buffer": "false"})
    assert parts.buffer is None
    parts.writer.write(raw_points())
    report = rollup(parts, "hourly", H + 2 * HOUR, progress=False)
    assert (report.done["jobs"], report.buffered) == (3, 0)
    assert {k: v for k, v in rolled(parts, "1h").items() if k[1] == H} == {
        k: v for k, v in HOURLY.items() if k[1] == H}


def test_a_run_killed_while_writing_leaves_that_hour_to_the_store(parts_for):
    parts = parts_for()
    if parts_for.path == "embedded":
        pytest.skip("the embedded store has no roll-up buffer")
    parts.writer.write(raw_points())
    write = parts.store.write

    def killed(samples, retention="10m"):
        write(samples, retention)
        raise SystemExit("killed after the store took the points")

    parts.store.write = killed
    with pytest.raises(SystemExit):
        parts.writer.write([make_sample("jobs", {"q": "A"}, {"jobs": 70, "cores": 140},
                                        H + 2 * SLOT)])  # 10:20, the failed cycle, comes late
    parts.store.write = write
    report = rollup(parts, "hourly", H + 2 * HOUR, progress=False)
    assert (report.done["jobs"], report.buffered) == (3, 3)  # all but jobs 09:00 and 10:00
    assert rolled(parts, "1h")[("A", H)] == {"jobs": 250 / 6, "jobs_max": 70,
                                            "cores": 500 / 6, "cores_max": 140}


def test_a_field_added_later_does_not_hide_the_older_windows(parts_for):
    parts = parts_for()
    parts.store.write([make_sample("qmonit_run", {"job": "collect"}, {"points": 3}, H),
                       make_sample("qmonit_run", {"job": "hourly"}, {"buffered": 1, "points": 4},
                                   H + HOUR)])  # `buffered` sorts first, and is newer
    report = rollup(parts, "hourly", H + 2 * HOUR, progress=False)
    assert report.done == {"qmonit_run": 2}
    assert rolled(parts, "1h", "qmonit_run")[("-", H)] == {"points": 3.0, "points_max": 3.0}


def test_a_buffer_that_cannot_be_read_or_a_store_that_refuses_its_lines_is_reported(
        parts_for, caplog):
    import sqlite3

    parts = parts_for()
    if parts_for.path == "embedded":
        pytest.skip("the embedded store has no roll-up buffer")
    parts.writer.write(raw_points())
    for measurement in ("jobs", "qmonit_run"):
        watermarks.set_watermark(parts.engine, measurement, "hourly", H, H)
    with sqlite3.connect(parts.buffer.path) as conn:
        conn.execute(f"DROP TABLE points_{int(H.timestamp())}")  # damaged under the job
    read = rollup(parts, "hourly", H + HOUR + timedelta(minutes=7), progress=False)
    assert (read.errors, read.done["jobs"], read.buffered) == ([], 1, 0)
    assert ("roll-up buffer: jobs 2026-11-21 10:00 UTC not read (no such table: "
            f"points_{int(H.timestamp())}); reading the store") in caplog.text
    assert rolled(parts, "1h")[("A", H)] == HOURLY[("A", H)]  # from the store

    parts.store.query(f'DROP RETENTION POLICY "1h" ON "{parts.store.database}"', method="POST",
                      database=False)
    refused = rollup(parts, "hourly", H + 2 * HOUR + timedelta(minutes=7), progress=False)
    assert refused.exit_code == 1
    assert refused.errors[0].startswith(
        f'jobs 2026-11-21 11:00 UTC into "1h": {parts.store.location()}: HTTP 500 '
        '{"error":"retention policy not found: 1h"} (gave up after ')
    assert watermarks.watermark(parts.engine, "jobs", "hourly") == H + HOUR  # tried again next run
