"""Every built dashboard is a Grafana dashboard of schemaVersion 42, by Grafana's own model.

The model is Grafana Labs' `grafana-foundation-sdk` 1769699241 (PyPI, the test extra): the
types of Grafana's classic dashboard schema ("v1", dashboard.Dashboard and the panel options
of stat, table and timeseries) generated from Grafana's main branch on 2026-01-29, between
Grafana 12.3 and 13.0. A dashboard passes when the model parses it, gives every key back
with the same value when it writes it again (nothing unknown to Grafana's schema, nothing
lost), and every value it holds is of the type the schema declares (enums included).
Grafana's own migrations (apps/dashboard/pkg/migration/schemaversion) end at version 42.
"""

from __future__ import annotations

import enum
import json
import runpy
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from qmonit.core import config
from qmonit.grafana.build import DashboardError, _json_data, build_all
from qmonit.grafana.schema import SCHEMA_VERSION, SchemaError, modernise, problems

register_default_plugins()  # the stat, table and timeseries options models
DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
# Keys the issue found in grafanalib's output and others Grafana dropped; none may remain.
LEGACY = {"rows", "style", "hideControls", "sharedCrosshair", "gnetId", "__inputs", "span",
          "minSpan", "height", "error", "fontSize", "columns", "useTags", "tagsQuery",
          "tagValuesQuery", "time_options", "expr", "target", "metric", "step",
          "intervalFactor", "displayMode@custom"}
KNOWN_DATASOURCES = {("influxdb", "qmonit-influxdb"), ("mysql", "qmonit-mysql")}


def boards() -> list:
    return build_all(config.defaults({"sources": {"enabled": "simulated"}}))


def grafanalib_json(path: Path) -> dict[str, Any]:
    """A dashboard file's JSON as grafanalib writes it, before qmonit modernises it."""
    board = runpy.run_path(str(path))["dashboard"]
    return json.loads(json.dumps(board.to_json_data(), default=_json_data))


# -- Grafana's model ----------------------------------------------------------------------

def lost(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Where the model's JSON lacks a key of ours or holds another value (it may add its
    defaults: `repeatDirection`, `showLegend`...)."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return [f"{path}: {theirs!r}"]
        return [p for key, value in ours.items()
                for p in ([f"{path}.{key}: unknown to the schema"] if key not in theirs
                          else lost(value, theirs[key], f"{path}.{key}"))]
    if isinstance(ours, list):
        if not isinstance(theirs, list) or len(theirs) != len(ours):
            return [f"{path}: {ours!r} became {theirs!r}"]
        pairs = enumerate(zip(ours, theirs, strict=True))
        return [p for n, (a, b) in pairs for p in lost(a, b, f"{path}[{n}]")]
    same = ours == theirs and type(ours) is type(theirs)
    return [] if same else [f"{path}: {ours!r} became {theirs!r}"]


def matches(value: Any, hint: Any) -> bool:
    """The value is of the schema's type (its from_json passes enums and some lists raw)."""
    origin = typing.get_origin(hint)
    if hint is typing.Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, h) for h in typing.get_args(hint))
    if value is None:
        return hint is type(None)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint}
    if hint in (int, float):
        number = (int,) if hint is int else (int, float)
        return isinstance(value, number) and not isinstance(value, bool)
    if isinstance(value, dict) and hasattr(hint, "from_json"):
        return not wrong(hint.from_json(value), "") and not lost(value, _as_json(
            hint.from_json(value)))  # a list the model keeps raw: parse it as the schema says
    if isinstance(hint, type):
        return isinstance(value, hint)
    raise TypeError(f"no check for {hint!r}")


def wrong(node: Any, path: str) -> list[str]:
    """Every value of the parsed model that is not of the type its schema field declares."""
    if isinstance(node, list):
        return [p for n, value in enumerate(node) for p in wrong(value, f"{path}[{n}]")]
    if not hasattr(node, "to_json"):
        return []
    found = []
    for name, hint in typing.get_type_hints(type(node)).items():
        if name in vars(node):
            value = getattr(node, name)
            if not matches(value, hint):
                found.append(f"{path}.{name} = {value!r} is not {hint}")
            found += wrong(value, f"{path}.{name}")
    return found


def _as_json(model: Any) -> Any:
    return json.loads(json.dumps(model, cls=JSONEncoder))


def schema_faults(dashboard: dict[str, Any]) -> list[str]:
    """Empty when Grafana's model parses the dashboard without loss and with every type right."""
    try:
        parsed = Dashboard.from_json(dashboard)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        return [f"does not parse: {type(exc).__name__}: {exc}"]
    return lost(dashboard, _as_json(parsed)) + wrong(parsed, "")


def legacy_keys(node: Any, path: str = "", parent: str = "") -> list[str]:
    if isinstance(node, list):
        return [p for value in node for p in legacy_keys(value, f"{path}[]", parent)]
    if not isinstance(node, dict):
        return []
    found = [f"{path}.{key}" for key in node
             if key in LEGACY or (parent == "custom" and f"{key}@custom" in LEGACY)]
    if node.get("id") == "custom.displayMode":  # an override property, before cellOptions
        found.append(f"{path}.id=custom.displayMode")
    return found + [p for key, value in node.items()
                    for p in legacy_keys(value, f"{path}.{key}", key)]


def nulls(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        step = set(node) == {"value", "color"}  # a threshold's base step: null is -infinity
        return [p for key, value in node.items()
                for p in ([f"{path}.{key}"] if value is None and not (step and key == "value")
                          else nulls(value, f"{path}.{key}"))]
    if isinstance(node, list):
        return [p for value in node for p in nulls(value, f"{path}[]")]
    return []


# -- the built dashboards -----------------------------------------------------------------

def test_every_built_dashboard_is_one_of_grafanas_schema_without_loss():
    built = boards()
    assert len(built) == 6
    for board in built:
        assert schema_faults(board.model) == [], board.name
        assert problems(board.model) == [], board.name


def test_every_built_dashboard_is_schema_version_42_without_legacy_keys_or_nulls():
    assert SCHEMA_VERSION == 42
    for board in boards():
        assert board.model["schemaVersion"] == 42
        assert legacy_keys(board.model) == [], board.name
        assert nulls(board.model) == [], board.name
        assert "id" not in board.model  # Grafana's own number; the uid names the dashboard


def test_every_panel_query_and_query_variable_names_its_datasource_by_uid():
    counted = {"panels": 0, "queries": 0, "variables": 0}
    for board in boards():
        for panel in board.model["panels"]:
            if panel["type"] == "row":
                assert "datasource" not in panel and panel["panels"] == []
                continue
            assert (panel["datasource"]["type"], panel["datasource"]["uid"]) in KNOWN_DATASOURCES
            counted["panels"] += 1
            for target in panel["targets"]:
                assert target["datasource"] in ({"type": "influxdb", "uid": "qmonit-influxdb"},
                                                {"type": "mysql", "uid": "qmonit-mysql"})
                counted["queries"] += 1
        for variable in board.model["templating"]["list"]:
            if variable["type"] == "query":
                assert (variable["datasource"]["type"],
                        variable["datasource"]["uid"]) in KNOWN_DATASOURCES
                counted["variables"] += 1
            else:
                assert "datasource" not in variable, variable["name"]
    assert min(counted.values()) > 20, counted


def test_the_queries_are_grafanalibs_unchanged():
    for path in sorted(DASHBOARDS.glob("*.dashboard.py")):
        raw = grafanalib_json(path)
        modern = modernise(raw)

        def queries(model: dict) -> list[tuple]:
            return [(p["title"], t["refId"], t.get("query") or t.get("rawSql"))
                    for p in model["panels"] for t in p.get("targets", [])]
        assert queries(modern) == queries(raw), path.name
        assert [v["query"] for v in modern["templating"]["list"]] == \
            [v["query"] for v in raw["templating"]["list"]]


# -- the check can fail: grafanalib's own JSON, and a wrong value --------------------------

def test_grafanas_model_refuses_what_grafanalib_writes():
    raw = grafanalib_json(DASHBOARDS / "batch.dashboard.py")
    assert raw["schemaVersion"] == 12 and raw["rows"] == []
    assert schema_faults(raw) == ["does not parse: TypeError: argument of type 'NoneType' is "
                                  "not iterable"]  # "datasource": null on its row panels
    found = {path.rsplit(".", 1)[-1] for path in legacy_keys(raw)}
    assert found >= {"rows", "style", "hideControls", "sharedCrosshair", "gnetId", "__inputs",
                     "span", "expr", "time_options", "displayMode"}
    assert ".panels[].datasource" in nulls(raw)
    modern = modernise(raw)
    assert schema_faults(modern) == [] and legacy_keys(modern) == [] and nulls(modern) == []


def test_a_key_unknown_to_grafana_or_a_value_of_the_wrong_type_is_found():
    model = boards()[0].model
    model["panels"][1]["span"] = 6
    model["templating"]["list"][0]["hide"] = 3
    model["panels"][-1]["options"]["showHeader"] = "yes"
    last = len(model["panels"]) - 1  # a table (the model's attribute names, not the JSON's)
    assert schema_faults(model) == [
        ".panels[1].span: unknown to the schema",
        f".panels[{last}].options.show_header = 'yes' is not <class 'bool'>",
        ".templating.list_val[0].hide = 3 is not typing.Optional[grafana_foundation_sdk.models."
        "dashboard.VariableHide]"]
    assert problems(model) == ["panels[].span: legacy key"]


# -- what modernise does ------------------------------------------------------------------

INFLUX = {"type": "influxdb", "uid": "db"}
LEGACY_TABLE = {
    "type": "table", "title": "Queues", "id": 3, "span": 6, "height": None, "editable": True,
    "error": False, "datasource": INFLUX, "color": {"mode": "thresholds"}, "fontSize": "100%",
    "columns": [], "mappings": [], "maxDataPoints": 100, "gridPos": {"h": 8, "w": 12, "x": 0,
                                                                       "y": 0},
    "targets": [{"refId": "A", "query": "SELECT 1", "rawQuery": True, "resultFormat": "table",
                 "expr": "", "step": 10, "intervalFactor": 2, "hide": False, "alias": ""}],
    "fieldConfig": {"defaults": {"custom": {"displayMode": "auto"}, "decimals": None},
                    "overrides": [{"matcher": {"id": "byName", "options": "state"},
                                   "properties": [{"id": "custom.displayMode",
                                                   "value": "color-background"}]}]}}


def test_modernise_writes_what_grafanas_migrations_would():
    legacy = {"title": "T", "uid": "t", "id": None, "schemaVersion": 12, "rows": [],
              "style": "dark", "hideControls": False, "sharedCrosshair": False, "gnetId": None,
              "__inputs": [], "timepicker": {"time_options": ["5m"], "nowDelay": None,
                                             "refresh_intervals": ["5m"]},
              "panels": [{"type": "row", "title": "Now", "id": 1, "datasource": None,
                          "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
                          "targets": [], "span": None, "fieldConfig": {"defaults": {}},
                          "panels": []}, LEGACY_TABLE],
              "templating": {"list": [{"name": "box", "type": "textbox", "datasource": None,
                                       "query": "", "useTags": False, "tagsQuery": None,
                                       "auto": False, "auto_min": "10s", "auto_count": 30,
                                       "current": {"text": "", "value": "", "tags": []}}]}}
    assert modernise(legacy) == {
        "title": "T", "uid": "t", "schemaVersion": 42, "timepicker": {"refresh_intervals": ["5m"]},
        "panels": [
            {"type": "row", "title": "Now", "id": 1, "collapsed": False,
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": []},
            {"type": "table", "title": "Queues", "id": 3, "datasource": INFLUX,
             "maxDataPoints": 100, "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
             "targets": [{"refId": "A", "datasource": INFLUX, "query": "SELECT 1",
                          "rawQuery": True, "resultFormat": "table"}],
             "fieldConfig": {
                 "defaults": {"custom": {"cellOptions": {"type": "auto"}},
                              "color": {"mode": "thresholds"}},
                 "overrides": [{"matcher": {"id": "byName", "options": "state"},
                                "properties": [{"id": "custom.cellOptions",
                                                "value": {"type": "color-background",
                                                          "mode": "gradient"}}]}]}}],
        "templating": {"list": [{"name": "box", "type": "textbox", "query": "",
                                 "current": {"text": "", "value": ""}}]}}
    assert LEGACY_TABLE["span"] == 6  # the input is left as it was


def test_modernise_refuses_legacy_rows_and_a_panel_or_variable_without_a_datasource():
    with pytest.raises(SchemaError, match=r"^uses legacy `rows` \(Grafana 4\): put row panels "
                                          r"in `panels` \(qmonit.grafana.helpers.row\)$"):
        modernise({"rows": [{"panels": []}], "panels": []})
    with pytest.raises(SchemaError, match=r"^panel 'Queues': no datasource \{type, uid\} "
                                          r"\(got None\)$"):
        modernise({"panels": [{**LEGACY_TABLE, "datasource": None}]})
    with pytest.raises(SchemaError, match=r"^panel 'Queues': queries of a loki datasource are "
                                          r"not known here \(known: influxdb, mysql\)$"):
        modernise({"panels": [{**LEGACY_TABLE, "datasource": {"type": "loki", "uid": "l"}}]})
    with pytest.raises(SchemaError, match=r"^variable 'site': a query variable needs a "
                                          r"datasource \{type, uid\} \(got 'InfluxDB'\)$"):
        modernise({"templating": {"list": [{"name": "site", "type": "query",
                                            "datasource": "InfluxDB"}]}})


def test_a_dashboard_file_that_cannot_be_modernised_is_named(tmp_path):
    (tmp_path / "bad.dashboard.py").write_text(
        "from grafanalib.core import Dashboard, Stat\n"
        "dashboard = Dashboard(uid='bad', title='Bad', panels=[Stat(title='No source')])\n")
    with pytest.raises(DashboardError) as caught:
        build_all(config.defaults({"sources": {"enabled": "simulated"}}), tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'bad.dashboard.py'}: panel 'No source': no "
                                 f"datasource {{type, uid}} (got None)")
