"""Files cut in half, disks that fill, stores that refuse many lines: nothing stops
collection, every point is accounted for, no temporary file is left behind."""

import gzip
import json
import logging
import zlib
from argparse import Namespace
from datetime import UTC, datetime, timedelta

import pytest

from qmonit.app import commands
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.core.sample import make_sample
from qmonit.sources.cric import CricTopology
from qmonit.stores.state import schema
from qmonit.stores.timeseries.durable import DurableWriter
from qmonit.stores.timeseries.influx import InfluxStore
from qmonit.stores.timeseries.spool import Spool
from tests.conftest import DATA
from tests.faults.conftest import fill
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
HEALTHY = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # no simulated outage then
SLOT = timedelta(minutes=10)
SIMULATED = {"sources": {"enabled": "simulated"}}


def jobs(*queues, value=1):
    return [make_sample("jobs", {"panda_queue": q}, {"jobs": value}, T) for q in queues]


def count(store, measurement="jobs"):
    rows = store.rows(f'SELECT count("jobs") FROM "10m"."{measurement}"')
    return rows[0]["count"] if rows else 0


def cut_in_half(path):
    """Truncate a spool file at half its bytes; return the points that still read back,
    counted from the raw gzip stream (not by qmonit's reader)."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    text = zlib.decompressobj(wbits=31).decompress(data[:len(data) // 2])
    return text.count(b"\n") - 1  # complete lines, less the header


def test_a_spool_file_cut_in_half_is_moved_aside_and_everything_else_replays(
        influx_store, tmp_path, caplog):
    spool = Spool(tmp_path / "spool", 10**8)
    spool.put(jobs("A1", "A2"), "10m")
    cut = spool.put(jobs(*[f"B{n:04d}" for n in range(3000)]), "10m")
    spool.put(jobs("C1", "C2", "C3"), "10m")
    readable = cut_in_half(cut)
    assert 0 < readable < 3000

    result = DurableWriter(influx_store, spool).replay()

    assert (result.files, result.points, result.lost) == (3, 2 + readable + 3, 3000 - readable)
    assert result.damaged == [f"spool file {cut.name} cut short: {readable} of 3000 points "
                              f"read back and replayed, {3000 - readable} lost"]
    assert result.error is None
    assert count(influx_store) == 2 + readable + 3
    assert spool.files() == []
    assert [p.name for p in spool.damaged()] == [cut.name]
    assert f"spool file {cut} is damaged: cut short: {readable} of 3000" in caplog.text


def test_collect_goes_on_past_a_damaged_spool_file(make_config, influx_db):
    cfg = make_config({"influxdb": influx_db, "sources": {"enabled": "simulated"}})
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    spool_file = parts.spool.put(jobs(*[f"B{n:04d}" for n in range(2000)]), "10m")
    readable = cut_in_half(spool_file)
    from qmonit.collect.cycle import collect

    report = collect(parts, HEALTHY)
    assert [(s.source, s.status) for s in report.sources] == [("cric", "ok"), ("panda", "ok")]
    assert report.exit_code == 1  # data was lost: said, once
    assert report.replay.damaged == [
        f"spool file {spool_file.name} cut short: {readable} of 2000 points read back and "
        f"replayed, {2000 - readable} lost"]
    assert report.delivery.spooled == 0 and report.delivery.lost == 0
    assert report.delivery.written > 0  # the slot itself
    sinks = parts.store.rows('SELECT "lost", "message" FROM "10m"."qmonit_run" '
                             "WHERE source = 'sinks'")
    assert sinks[0]["lost"] == 2000 - readable
    assert f"spool file {spool_file.name} cut short" in sinks[0]["message"]
    assert collect(parts, HEALTHY + SLOT).exit_code == 0  # reported once, not for ever


def test_spool_status_shows_a_damaged_file_and_the_files_moved_aside(tmp_path, make_config,
                                                                      capsys):
    parts = build(make_config({"sources": {"enabled": "simulated"}}))
    whole = parts.spool.put(jobs("A"), "10m")
    cut = parts.spool.put(jobs(*[f"B{n:04d}" for n in range(2000)]), "10m")
    readable = cut_in_half(cut)
    not_gzip = parts.spool.directory / "00000000000000000001-10m.jsonl.gz"
    not_gzip.write_bytes(b"not gzip at all")

    assert commands.spool(Namespace(action="status"), parts) == 1
    out = capsys.readouterr().out
    assert f"{whole.name}\n" in out
    assert f"{cut.name}  DAMAGED: cut short: {readable} points readable\n" in out
    assert (f"damaged files moved aside in {parts.spool.directory / 'damaged'} (1): "
            f"{not_gzip.name}\n") in out


def test_a_full_spool_disk_loses_the_points_loudly_and_leaves_no_temporary_file(
        small_disk, caplog):
    disk = small_disk(256)
    spool = Spool(disk / "spool", 10**8)
    spool.put(jobs("OLD"), "10m")  # a file already pending
    fill(disk)
    store = InfluxStore(config.defaults({"influxdb": {
        "url": "http://127.0.0.1:9", "retry_deadline_s": "0"}, **SIMULATED}).settings.influxdb)
    with caplog.at_level(logging.CRITICAL):
        delivery = DurableWriter(store, spool).write(jobs(*[f"Q{n}" for n in range(500)]))
    assert (delivery.written, delivery.spooled, delivery.lost) == (0, 0, 500)
    [error] = delivery.errors
    assert error == (f"spool {disk / 'spool'} could not be written ([Errno 28] No space left "
                     "on device): 500 points could not be spooled and are lost")
    assert error in caplog.text
    assert sorted(p.name for p in (disk / "spool").iterdir()) == \
        [f.path.name for f in spool.files()]  # the pending file only: no *.tmp
    assert [f.points for f in spool.files()] == [1]


CRIC = (DATA / "cric_pandaqueue.json").read_text()


def test_a_full_data_dir_costs_only_the_cached_snapshot(small_disk, http, caplog):
    disk = small_disk(64)
    fill(disk)
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC))
    settings = config.defaults({"cric": {"url": http.url}, **SIMULATED}).settings.cric
    topology = CricTopology(settings, disk / "cric.json").load()
    assert topology.status == "fresh" and len(topology.queues) > 0
    assert topology.message.endswith(
        f"; the snapshot could not be cached in {disk / 'cric.json'} ([Errno 28] No space left "
        "on device); the last one cached stays the fallback")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no temporary file


def test_every_line_a_partial_write_refuses_is_kept_aside(influx_store, tmp_path):
    influx_store.write([make_sample("jobs", {"panda_queue": "X"}, {"note": "text"}, T)])
    spool = Spool(tmp_path / "spool", 10**8)
    good = jobs(*[f"G{n}" for n in range(100)])
    bad = [make_sample("jobs", {"panda_queue": f"R{n}"}, {"note": float(n)}, T)
           for n in range(336)]
    delivery = DurableWriter(influx_store, spool).write(good + bad)
    assert (delivery.written, delivery.rejected) == (100, 336)
    [kept] = (tmp_path / "spool" / "rejected").iterdir()
    with gzip.open(kept, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("# HTTP 400: partial write: field type conflict")
    assert sorted(lines[1:]) == sorted(f"jobs,panda_queue=R{n} note={float(n)!r} "
                                       f"{int(T.timestamp())}" for n in range(336))


@pytest.mark.parametrize("body, expected", [
    ('{"error":"unable to parse \'a b\': invalid field format\\nunable to parse \'c\': '
     'missing fields"}', ["a b", "c"]),
    ('{"error":"partial write: points beyond retention policy dropped=2"}',
     ["m x=1 100", "m x=1 200"]),
    ('{"error":"something else"}', ["m x=1 300", "m x=1 100", "m x=1 200"]),
])
def test_the_lines_refused_are_the_ones_influxdb_names(http, body, expected):
    http.route("/write", Reply(400, body))
    store = InfluxStore(config.defaults({"influxdb": {"url": http.url},
                                         **SIMULATED}).settings.influxdb)
    lines = ["m x=1 300", "m x=1 100", "m x=1 200"]
    [rejection] = [store.post_lines(lines, "10m")]
    assert list(rejection.lines) == expected
    assert json.loads(body)  # the bodies are InfluxDB's shape


def test_a_spool_file_another_run_replayed_meanwhile_is_passed_over(influx_store, tmp_path):
    spool = Spool(tmp_path / "spool", 10**8)
    spool.put(jobs("A"), "10m")
    taken = spool.put(jobs("B"), "10m")
    spool.put(jobs("C"), "10m")
    writer = DurableWriter(influx_store, spool)

    def write_and_race(samples, retention):
        taken.unlink(missing_ok=True)  # a second `run collect` of the slot replayed it
        return writer._write(samples, retention)

    result = spool.replay(write_and_race)
    assert (result.files, result.points, result.error) == (2, 2, None)
    assert spool.files() == []


def test_a_full_data_dir_with_the_store_up_still_writes_the_slot(small_disk, http, influx_db,
                                                                  make_config, mariadb_url):
    from qmonit.collect.cycle import collect

    disk = small_disk(64)
    fill(disk)
    v1 = (DATA / "panda_job_stats_v1.json").read_text()
    http.route("/api/v1/statistics/job_stats_by_site_share_and_resource_type", Reply(200, v1))
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC))
    cfg = make_config({"qmonit": {"data_dir": str(disk)}, "influxdb": influx_db,
                       "sql": {"url": mariadb_url}, "panda": {"url": http.url},
                       "cric": {"url": http.url}})
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert [(s.source, s.status) for s in report.sources] == [("cric", "ok"), ("panda", "ok")]
    assert (report.delivery.spooled, report.delivery.lost) == (0, 0)
    assert count(parts.store) == 26  # every recorded count of the slot
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # nothing half-written


def test_check_says_when_damaged_spool_files_were_moved_aside(write_config):
    import subprocess
    import sys

    from tests.servers import environ_without_qmonit

    path = write_config({"sources": {"enabled": "simulated"}})
    spool = Spool(path.parent / "data" / "spool", 10**8)
    spool.put(jobs("A"), "10m")
    broken = spool.directory / "00000000000000000001-10m.jsonl.gz"
    broken.write_bytes(b"not gzip")
    spool.files()  # moves it aside
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "check"],
                          capture_output=True, text=True, env=environ_without_qmonit())
    [line] = [line for line in done.stdout.splitlines() if line.startswith("spool")]
    assert line == (f"spool  {spool.directory}  1 file(s) pending; 1 damaged file(s) moved "
                    f"aside in {spool.directory / 'damaged'}")
