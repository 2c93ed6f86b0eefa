"""Fixtures: a private InfluxDB, MariaDB, a scripted HTTP server, and config files."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qmonit.core import config
from tests.servers import InfluxServer, MariaDB, ScriptedServer

DATA = Path(__file__).parent / "data"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
_counter = itertools.count()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    server = InfluxServer(tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxd) -> dict[str, str]:
    """[influxdb] settings for a fresh database on the private server, fast retries."""
    return {"url": influxd.url, "database": f"qmonit_test_{next(_counter)}",
            "retry_deadline_s": "1", "retry_initial_s": "0.01", "retry_max_s": "0.05",
            "timeout_s": "5"}


@pytest.fixture(scope="session")
def mariadb():
    server = MariaDB()
    name = f"qmonit_test_{os.getpid()}"
    admin = create_engine(server.url())
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield server.url(name)
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()
    server.stop()


@pytest.fixture
def mariadb_url(mariadb):
    """The test database, emptied of qmonit's tables before each test."""
    engine = create_engine(mariadb)
    with engine.begin() as conn:
        for (table,) in conn.execute(text("SHOW TABLES")).fetchall():
            conn.execute(text(f"DROP TABLE `{table}`"))
    engine.dispose()
    return mariadb


@pytest.fixture
def http():
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def write_config(tmp_path):
    """Write an INI file (mode 600) from {section: {key: value}}; return its path."""

    def write(sections: dict[str, dict[str, str]], name: str = "config.cfg") -> Path:
        sections = {"qmonit": {"data_dir": str(tmp_path / "data")}, **sections}
        lines = []
        for section, keys in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{k} = {v}" for k, v in keys.items())
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    return write


@pytest.fixture
def make_config(write_config):
    def make(sections: dict[str, dict[str, str]]) -> config.Config:
        return config.load(str(write_config(sections)), environ={})

    return make


@pytest.fixture
def influx_store(influx_db):
    """An InfluxStore on a fresh, initialised database of the private server."""
    from qmonit.stores.timeseries.influx import InfluxStore

    cfg = config.defaults({"influxdb": influx_db, "sources": {"enabled": "simulated"}})
    store = InfluxStore(cfg.settings.influxdb)
    store.init({"10m": "30d", "1h": "400d", "1d": "INF"})
    return store


@pytest.fixture(autouse=True)
def _no_cli_log_handler_left():
    """A test that runs the CLI in-process points the root logger at its captured stderr
    (qmonit.support.logs.setup); take that handler away after it, so a later thread's log line
    never meets a closed stream."""
    import logging

    from qmonit.support.logs import FORMAT

    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.formatter is not None and handler.formatter._fmt == FORMAT:
            root.removeHandler(handler)


@pytest.fixture(params=["sqlite", "mariadb"])
def state_engine(request, tmp_path):
    """A state store with qmonit's tables, on SQLite and on MariaDB in turn."""
    from qmonit.stores.state import schema
    url = f"sqlite:///{tmp_path}/state.db" if request.param == "sqlite" else \
        request.getfixturevalue("mariadb_url")
    engine = create_engine(url)
    schema.create_tables(engine)
    yield engine
    engine.dispose()
