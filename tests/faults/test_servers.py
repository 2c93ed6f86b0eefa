"""Servers that hang, drip their answer, or answer with nonsense: every exchange ends
within its deadline, with a message that says what happened."""

import json
import time
from datetime import UTC, datetime

import pytest

from qmonit.core import config
from qmonit.core.sample import make_sample
from qmonit.sources.base import SourceError
from qmonit.sources.panda import PandaJobStats
from qmonit.stores.timeseries.influx import InfluxStore
from tests.conftest import DATA

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SIMULATED = {"sources": {"enabled": "simulated"}}
V1 = (DATA / "panda_job_stats_v1.json").read_bytes()


def http_answer(body: bytes, status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: "
            f"{len(body)}\r\n\r\n").encode() + body


def panda(url, timeout_s="1"):
    settings = config.defaults({"panda": {"url": url, "timeout_s": timeout_s},
                                "sources": {"enabled": "panda"}}).settings.panda
    return PandaJobStats(settings)


@pytest.mark.parametrize("what", ["headers", "body"])
def test_panda_dripping_its_answer_is_cut_off_at_timeout_s(drip, what):
    answer = http_answer(V1)  # ~30 s at 0.2 s a byte
    head, body = answer.split(b"\r\n\r\n", 1)
    server = drip(answer, every=0.2) if what == "headers" else \
        drip(body, every=0.2, head=head + b"\r\n\r\n")
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        panda(server.url).collect(T)
    elapsed = time.monotonic() - started
    assert str(failed.value).endswith("timed out: no complete answer within 1 s (raise "
                                      "timeout_s if the server is only slow)")
    assert 0.9 < elapsed < 2.0


def test_a_server_that_never_answers_is_a_timeout_not_a_connection_failure(drip):
    server = drip(b"", every=None)
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        panda(server.url, timeout_s="0.5").collect(T)
    assert str(failed.value).endswith("timed out: no complete answer within 0.5 s (raise "
                                      "timeout_s if the server is only slow)")
    assert time.monotonic() - started < 1.5


def test_influxdb_dripping_its_answer_spools_within_the_retry_deadline(drip):
    server = drip(b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: 1.6.7\r\n\r\n", every=0.3)
    store = InfluxStore(config.defaults({"influxdb": {
        "url": server.url, "timeout_s": "1", "retry_deadline_s": "2.5", "retry_initial_s": "0.1",
        "retry_max_s": "0.2"}, **SIMULATED}).settings.influxdb)
    started = time.monotonic()
    result = store.write([make_sample("jobs", {"panda_queue": "A"}, {"jobs": 1}, T)])
    elapsed = time.monotonic() - started
    assert (result.written, len(result.unwritten)) == (0, 1)
    assert "timed out: no complete answer within 1 s" in result.error
    assert elapsed < 2.5 + 1 + 0.5  # the retry deadline, one exchange, slack
    assert server.connections >= 2  # retried, each exchange cut at 1 s


def test_retry_after_zero_does_not_make_a_busy_loop(http):
    from tests.servers import Reply

    http.route("/write", Reply(503, "busy", headers={"Retry-After": "0"}))
    store = InfluxStore(config.defaults({"influxdb": {
        "url": http.url, "retry_deadline_s": "1", "retry_initial_s": "0.2",
        "retry_max_s": "0.4"}, **SIMULATED}).settings.influxdb)
    result = store.write([make_sample("jobs", {"panda_queue": "A"}, {"jobs": 1}, T)])
    assert len(result.unwritten) == 1
    assert len(http.hits("/write")) <= 6  # the back-off, not ~20 a second
    assert json.dumps(result.error)


def test_a_store_slower_than_the_job_deadline_gets_the_rest_spooled(drip, make_config):
    from qmonit.collect.components import build
    from qmonit.collect.cycle import collect
    from qmonit.stores.state import schema
    server = drip(b"HTTP/1.1 204 No Content\r\n\r\n", every=0.5)  # each write ~14 s
    parts = build(make_config({
        "influxdb": {"url": server.url, "timeout_s": "60", "retry_deadline_s": "600"},
        "sources": {"enabled": "simulated"}, "collect": {"deadline_s": "2"}}))
    schema.create_tables(parts.engine)
    started = time.monotonic()
    report = collect(parts, datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    elapsed = time.monotonic() - started
    assert elapsed < 2 + 1 + 1  # the deadline, the exchange it cut, slack
    assert report.delivery.written == 0 and report.delivery.lost == 0
    assert report.delivery.spooled == sum(f.points for f in parts.spool.files()) > 0
    assert report.delivery.errors[0].startswith(
        f"InfluxDB {server.url} database qmonit: the job's deadline passed while writing; the "
        "store had said: ")


def test_the_deadline_holds_through_an_http_proxy_too(drip, monkeypatch):
    proxy = drip(http_answer(V1), every=0.2)  # a proxy that drips what it relays
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        panda("http://panda.example.org").collect(T)
    assert str(failed.value).endswith("timed out: no complete answer within 1 s (raise "
                                      "timeout_s if the server is only slow)")
    assert proxy.connections == 1 and time.monotonic() - started < 2.0


def test_the_deadline_holds_over_tls(drip, tmp_path):
    from tests.servers import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    head, body = http_answer(V1).split(b"\r\n\r\n", 1)
    server = drip(body, every=0.2, head=head + b"\r\n\r\n", tls=(cert, key))
    settings = config.defaults({"panda": {"url": server.url, "timeout_s": "1",
                                          "ca_bundle": str(cert)},
                                "sources": {"enabled": "panda"}}).settings.panda
    started = time.monotonic()
    with pytest.raises(SourceError) as failed:
        PandaJobStats(settings).collect(T)
    assert str(failed.value).endswith("timed out: no complete answer within 1 s (raise "
                                      "timeout_s if the server is only slow)")
    assert time.monotonic() - started < 2.0
