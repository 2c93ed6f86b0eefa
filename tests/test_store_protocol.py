"""The time-series stores meet through their protocol only: both stores have every member of
TimeSeriesStore, the embedded store refuses what needs a server by name, and no module but
the factory asks which concrete store it holds."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from qmonit.core import config
from qmonit.core.levels import CHOICES
from qmonit.core.rollup_spec import ROLLUP
from qmonit.stores.timeseries.base import TimeSeriesStore
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.influx import InfluxStore, reader_statements

PACKAGE = Path(__file__).resolve().parent.parent / "qmonit"
FACTORY = PACKAGE / "collect" / "components.py"
CONCRETE = {"EmbeddedStore", "InfluxStore"}
INFLUX = config.defaults({"sources": {"enabled": "simulated"},
                          "influxdb": {"url": "http://127.0.0.1:9", "database": "qmonit"}}
                         ).settings.influxdb  # nothing listens on port 9: never reached


def protocol_members() -> set[str]:
    own = set(vars(TimeSeriesStore)) | set(TimeSeriesStore.__annotations__)
    return {name for name in own if not name.startswith("_")}


def test_protocol_names_what_the_callers_use() -> None:
    assert {"version", "write_lines", "rollup_into", "levels_into", "until",
            "rolls_up_in_server", "server", "write_grafana_tables", "create_reader",
            "reader_statements"} <= protocol_members()


@pytest.mark.parametrize("store", [
    EmbeddedStore(create_engine("sqlite://")),
    InfluxStore(INFLUX),
], ids=["embedded", "influxdb"])
def test_both_stores_have_every_member(store: TimeSeriesStore) -> None:
    missing = sorted(name for name in protocol_members() if not hasattr(store, name))
    assert missing == []
    for name in protocol_members():
        declared = getattr(TimeSeriesStore, name, None)
        if inspect.isfunction(declared):
            wanted = list(inspect.signature(declared).parameters)[1:]
            assert list(inspect.signature(getattr(store, name)).parameters) == wanted, name


def test_embedded_store_says_it_has_no_server() -> None:
    store = EmbeddedStore(create_engine("sqlite://"))
    assert (store.server, store.rolls_up_in_server) == (None, False)
    assert store.write_grafana_tables([("10m", 86400.0)], CHOICES) == []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for call, what in [
            (lambda: store.create_reader("grafana", "pw"), "a reading account of its own"),
            (lambda: store.rollup_into("panda", ROLLUP.windows[0], start),
             "a server-side roll-up"),
            (lambda: store.write_lines(["m f=1 0"], "1h"), "line protocol")]:
        with pytest.raises(NotImplementedError) as caught:
            call()
        assert str(caught.value).startswith("embedded SQL store sqlite://: " + what)


def test_influx_reader_statements_quote_the_password() -> None:
    store = InfluxStore(INFLUX)
    assert store.server == "influxdb"
    assert store.reader_statements("grafana", "p'w\\") == reader_statements(
        "grafana", "p'w\\", "qmonit") == [
        "CREATE USER \"grafana\" WITH PASSWORD 'p\\'w\\\\'", 'GRANT READ ON "qmonit" TO "grafana"']


def concrete_store_tests(text: str, where: str) -> list[str]:
    """`isinstance(x, EmbeddedStore)`-like calls and hasattr/getattr on a store in a file."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        names = {n.id for arg in node.args[1:] for n in ast.walk(arg) if isinstance(n, ast.Name)}
        first = ast.unparse(node.args[0]) if node.args else ""
        if node.func.id == "isinstance" and names & CONCRETE \
                or node.func.id in ("hasattr", "getattr") and "store" in first:
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_factory_asks_which_store_it_has() -> None:
    found = [line for path in sorted(PACKAGE.rglob("*.py")) if path != FACTORY
             for line in concrete_store_tests(path.read_text(encoding="utf-8"),
                                              str(path.relative_to(PACKAGE.parent)))]
    assert found == []


def test_the_check_finds_a_concrete_store_test() -> None:
    text = ("if isinstance(store, (InfluxStore, int)) or hasattr(parts.store, 'until'):\n"
            "    getattr(source, 'last_jobs', None)\n")
    assert concrete_store_tests(text, "probe.py") == [
        "probe.py:1: isinstance(store, (InfluxStore, int))",
        "probe.py:1: hasattr(parts.store, 'until')"]
