from datetime import UTC, datetime, timedelta

import pytest

from qmonit.core import config
from qmonit.core.sample import make_sample
from qmonit.sources.base import SourceError
from qmonit.sources.panda import PATHS, PandaJobStats
from qmonit.stores.sql import make_engine
from qmonit.stores.timeseries.base import WriteResult
from qmonit.stores.timeseries.durable import DurableWriter
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.spool import Spool
from tests.conftest import DATA
from tests.servers import Reply, ScriptedServer, self_signed_certificate

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def https(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server = ScriptedServer(tls=(cert, key))
    server.route(PATHS["v1"], Reply(200, (DATA / "panda_job_stats_v1.json").read_text()))
    yield server, cert
    server.close()


def panda(url, **extra):
    cfg = config.defaults({"panda": {"url": url, **extra}, "sources": {"enabled": "simulated"}})
    return PandaJobStats(cfg.settings.panda)


def test_tls_is_verified_by_default(https):
    server, _ = https
    with pytest.raises(SourceError) as caught:
        panda(server.url).collect(T)
    assert str(caught.value) == (f"PanDA {server.url}{PATHS['v1']}: TLS verification failed: "
                                 f"the server's certificate is not trusted (set ca_bundle to "
                                 f"the CA that signed it, or check the host name)")


def test_ca_bundle_makes_it_trusted(https):
    server, cert = https
    assert len(panda(server.url, ca_bundle=str(cert)).collect(T).samples) == 26


def points(*queues, minutes=0):
    return [make_sample("jobs", {"panda_queue": q}, {"jobs": 1},
                        T + timedelta(minutes=minutes)) for q in queues]


class FlakyStore:
    """Accepts what it is given until told to fail; remembers what it got, in order."""

    def __init__(self, fail_after: int | None = None):
        self.got: list[tuple[str, str]] = []
        self.fail_after = fail_after

    def location(self):
        return "flaky store"

    def write(self, samples, retention="10m"):
        if self.fail_after is not None and len(self.got) + len(samples) > self.fail_after:
            room = max(0, self.fail_after - len(self.got))
            self.got += [(s.tag("panda_queue"), retention) for s in samples[:room]]
            return WriteResult(written=room, unwritten=list(samples[room:]), error="down")
        self.got += [(s.tag("panda_queue"), retention) for s in samples]
        return WriteResult(written=len(samples))


def test_spool_replays_oldest_first_and_resumes_after_a_partial_failure(tmp_path):
    spool = Spool(tmp_path / "spool", 10**6)
    spool.put(points("A1", "A2"), "10m")
    spool.put(points("B1", "B2", "B3"), "1h")
    spool.put(points("C1"), "10m")
    store = FlakyStore(fail_after=3)
    result = DurableWriter(store, spool).replay()
    assert (result.files, result.points, result.error) == (1, 2, "down")
    assert store.got == [("A1", "10m"), ("A2", "10m"), ("B1", "1h")]
    left = spool.files()
    assert [(f.retention, f.points) for f in left] == [("1h", 2), ("10m", 1)]
    store.fail_after = None
    result = DurableWriter(store, spool).replay()
    assert (result.files, result.points, result.error) == (2, 3, None)
    assert store.got[3:] == [("B2", "1h"), ("B3", "1h"), ("C1", "10m")]
    assert spool.files() == [] and spool.size_bytes() == 0


def test_spooled_points_come_back_exactly(tmp_path):
    spool = Spool(tmp_path / "spool", 10**6)
    original = [make_sample("jobs", {"q": 'a "b" ,c', "s": "é"}, {"jobs": 2.5, "note": "x"}, T)]
    [spool_file] = [spool.files()[0] for _ in [spool.put(original, "10m")]]
    assert spool.read(spool_file) == original
    assert oct(spool.directory.stat().st_mode & 0o777) == "0o700"


def test_unreadable_spool_file_is_reported_and_moved_aside(tmp_path, caplog):
    spool = Spool(tmp_path / "spool", 10**6)
    spool.put(points("A"), "10m")
    broken = spool.directory / "00000000000000000001-10m.jsonl.gz"
    broken.write_bytes(b"not gzip")
    assert [f.points for f in spool.files()] == [1]
    assert (f"spool file {broken} is damaged: its header is unreadable (Not a gzipped file "
            f"(b'no')); moved to {spool.directory / 'damaged' / broken.name}") in caplog.text
    assert not broken.exists()
    assert spool.damaged() == [spool.directory / "damaged" / broken.name]


def test_replay_into_the_embedded_store_is_idempotent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'e.sqlite'}")
    store = EmbeddedStore(engine)
    store.init({})
    spool = Spool(tmp_path / "spool", 10**6)
    spool.put(points("A", "B"), "10m")
    writer = DurableWriter(store, spool)
    assert writer.replay().points == 2
    assert store.write(points("A", "B")).written == 2  # the same slot again: overwritten
    with engine.connect() as conn:
        from sqlalchemy import func, select

        from qmonit.stores.timeseries.ts_tables import ts_points
        assert conn.execute(select(func.count()).select_from(ts_points)).scalar_one() == 2


def test_after_the_store_failed_the_run_spools_without_retrying(tmp_path):
    spool = Spool(tmp_path / "spool", 10**6)
    spool.put(points("OLD"), "10m")
    store = FlakyStore(fail_after=0)
    writer = DurableWriter(store, spool)
    assert writer.replay().error == "down"
    calls_before = len(store.got)
    delivery = writer.write(points("NEW1", "NEW2", minutes=10))
    assert (delivery.spooled, delivery.written) == (2, 0)
    assert delivery.errors == ["down (not tried again in this run); 2 points spooled"]
    assert len(store.got) == calls_before
    assert [f.points for f in spool.files()] == [1, 2]


def test_embedded_store_failure_spools_with_the_driver_message_then_replays(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'e.sqlite'}")
    store = EmbeddedStore(engine)  # no init: the tables are missing
    spool = Spool(tmp_path / "spool", 10**6)
    delivery = DurableWriter(store, spool).write(points("A", "B"))
    assert delivery.spooled == 2
    assert delivery.errors == [f"embedded SQL store sqlite:///{tmp_path / 'e.sqlite'}: "
                               "OperationalError: no such table: ts_series (the tables are "
                               "missing: run `qmonit init` first); 2 points spooled"]
    store.init({})
    assert DurableWriter(store, spool).replay().points == 2


def test_an_embedded_store_of_an_older_layout_is_moved_once_keeping_every_point(tmp_path,
                                                                              caplog):
    """ts_points was keyed by series first, without a measurement column, before the layout
    clustered by measurement and time: the first write moves it, nothing is lost."""
    from sqlalchemy import text

    from qmonit.stores.timeseries.ts_tables import ts_series, ts_tags

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    ts_series.create(engine)
    ts_tags.create(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE ts_points (rp VARCHAR(8), series_id BIGINT, time BIGINT, "
                          "field VARCHAR(64), value FLOAT, text TEXT, PRIMARY KEY (rp, series_id, "
                          "time, field))"))
        conn.execute(text("CREATE INDEX ix_ts_points_rp_time ON ts_points (rp, time)"))
    with engine.begin() as conn:  # what the older qmonit wrote
        conn.execute(text("INSERT INTO ts_series VALUES "
                          "(1, 'jobs', '[\"jobs\", [[\"q\", \"A\"]]]')"))
        conn.execute(text("INSERT INTO ts_points VALUES ('10m', 1, 600, 'jobs', 7.0, NULL), "
                          "('10m', 1, 1200, 'jobs', 8.0, NULL)"))
    store = EmbeddedStore(engine)
    with caplog.at_level("WARNING"):
        assert store.write(points("B")).written == 1
    assert "moving ts_points to the layout clustered by measurement and time (once)" in caplog.text
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT rp, measurement, time, series_id, field, value FROM "
                                 "ts_points WHERE series_id = 1 ORDER BY time")).all()
    assert [tuple(r) for r in rows] == [("10m", "jobs", 600, 1, "jobs", 7.0),
                                         ("10m", "jobs", 1200, 1, "jobs", 8.0)]
    assert store.first_time("jobs", "10m").timestamp() == 600
    assert store.init({})[1:] == []  # moved already: nothing more to do


def test_the_unused_tag_index_of_older_versions_is_dropped_once(tmp_path):
    from sqlalchemy import inspect, text

    engine = make_engine(f"sqlite:///{tmp_path / 'e.sqlite'}")
    EmbeddedStore(engine).init({})
    with engine.begin() as conn:  # as versions before made it
        conn.execute(text("CREATE INDEX ix_ts_tags_tag_value ON ts_tags (tag, value)"))
    store = EmbeddedStore(engine)
    assert store.init({})[1:] == ["ts_tags: unused index ix_ts_tags_tag_value dropped"]
    assert [i["name"] for i in inspect(engine).get_indexes("ts_tags")] == []
    assert store.write(points("A")).written == 1
    assert EmbeddedStore(engine).init({})[1:] == []


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("where, message", [
    ("https", "the server speaks plain HTTP, not TLS: use http:// in the URL"),
    ("closed", "connection refused: nothing listens there (server down, or wrong port)"),
    ("dns", "host name not found (DNS): check the URL's host")])
def test_each_failure_class_gets_its_own_line(http, where, message):
    """https:// against a plain-HTTP server said 'TLS verification failed (set ca_bundle
    ...)'; an unknown host and a closed port both said 'connection failed (server down or
    unreachable)' (issue 34)."""
    url = {"https": http.url.replace("http://", "https://"),
           "closed": f"http://127.0.0.1:{_closed_port()}",
           "dns": "http://panda.qmonit-test.invalid:25443"}[where]
    with pytest.raises(SourceError) as caught:
        panda(url).collect(T)
    assert str(caught.value) == f"PanDA {url}{PATHS['v1']}: {message}"


def test_an_http_error_page_is_one_line_of_the_server_s_words(http):
    """A 404 pasted multi-line HTML into check's one-line output."""
    page = ("<!DOCTYPE html>\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n"
            "<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n"
            "</body></html>\n")
    http.route(PATHS["v1"], Reply(404, page))
    with pytest.raises(SourceError) as caught:
        panda(http.url).collect(T)
    assert str(caught.value) == f"PanDA {http.url}{PATHS['v1']}: HTTP 404: 404 Not Found"
    http.route(PATHS["v1"], Reply(500, "Traceback (most recent call last):\n  File ...\n" +
                                  "x" * 300))
    with pytest.raises(SourceError) as caught:
        panda(http.url).collect(T)
    assert str(caught.value) == (f"PanDA {http.url}{PATHS['v1']}: HTTP 500: Traceback (most "
                                 "recent call last):")
