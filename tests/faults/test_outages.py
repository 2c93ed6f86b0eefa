"""The pipeline broken where the shift crew cannot see it: the store down during derive."""

from datetime import UTC, datetime, timedelta

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.derive.job import derive
from qmonit.stores.state import alerts, schema
from tests.servers import InfluxServer

T = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)  # no simulated outage around it
SLOT = timedelta(minutes=10)


def test_an_influxdb_outage_raises_a_stale_store_alert(make_config, mariadb_url, tmp_path):
    server = InfluxServer(tmp_path / "influxd").start()
    try:
        cfg = make_config({"influxdb": {"url": server.url, "retry_deadline_s": "0.2",
                                        "retry_initial_s": "0.01", "timeout_s": "2"},
                           "sql": {"url": mariadb_url}, "sources": {"enabled": "simulated"}})
        parts = build(cfg)
        schema.create_tables(parts.engine)
        parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
        assert collect(parts, T).exit_code == 0
        assert derive(parts, T).error is None
        server.stop()
        reports = []
        for n in (1, 2):
            assert collect(parts, T + n * SLOT).delivery.spooled > 0
            reports.append(derive(parts, T + n * SLOT))
        assert [r.error for r in reports] == [None, None]  # derive works on SQL alone
        assert [r.stale_sources for r in reports] == [["sinks"], ["sinks"]]
        [finding] = [f for f in reports[1].findings if f.key[0] == "source:sinks"]
        assert (finding.violated, finding.severity, finding.current) == (True, "critical", 20.0)
        assert finding.reason == (f"InfluxDB {server.url} database qmonit: no collect wrote "
                                  f"everything since {T:%Y-%m-%d %H:%M} UTC; the points wait "
                                  "in the spool until the store takes them again")
        assert ("source:sinks", "all", "all", "stale") in reports[1].open_flags  # 2 of 3 cycles
        opened = alerts.load_flags(parts.engine)[("source:sinks", "all", "all", "stale")]
        assert opened.is_open
    finally:
        server.stop()


def test_a_collect_killed_mid_write_is_reported_by_the_next_run(write_config, drip,
                                                                 tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.servers import environ_without_qmonit

    hang = drip(b"", every=None)  # InfluxDB takes the write and never answers
    cfg = write_config({"influxdb": {"url": hang.url, "timeout_s": "60"},
                        "sources": {"enabled": "simulated"}})
    env = environ_without_qmonit()
    schema.create_tables(build(make_config_from(cfg)).engine)  # init, less the store
    run = subprocess.Popen([sys.executable, "-m", "qmonit", "-c", str(cfg), "run", "collect",
                            "--at", "2026-11-22T03:00Z"], env=env)
    deadline = time.monotonic() + 30
    while hang.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hang.connections > 0  # in the middle of writing
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert (tmp_path / "data" / "collect.running").read_text() == "2026-11-22T03:00Z\n"
    hang.close()
    parts = build(make_config_from(cfg, influxdb={"url": "http://127.0.0.1:9",
                                                  "retry_deadline_s": "0"}))
    report = collect(parts, T + SLOT)
    assert ("the collect of 2026-11-22T03:00Z did not finish (killed or crashed): that slot "
            "may be partly written; `qmonit run collect --at` it again if its sources still "
            "know it") in report.state_errors
    assert report.exit_code == 1
    assert not (tmp_path / "data" / "collect.running").exists()
    assert collect(parts, T + 2 * SLOT).state_errors == []  # said once


def make_config_from(path, **overrides):
    import configparser

    from qmonit.core import config
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    sections = {name: dict(parser[name]) for name in parser.sections()}
    for name, keys in overrides.items():
        sections.setdefault(name, {}).update(keys)
    return config.defaults(sections)
