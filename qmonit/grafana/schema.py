"""The dashboard JSON for the Grafana of today: grafanalib's output brought to schemaVersion 42.

grafanalib writes `schemaVersion: 12` with keys Grafana dropped long ago (`rows`, `style`,
`hideControls`, `sharedCrosshair`, `gnetId`, `__inputs`, `"datasource": null` on rows,
`span`/`height` on panels, Prometheus fields on every query). Grafana 12-13 convert
dashboards in the backend and refuse some of that; the Foundation SDK's parser fails on it.
`modernise` does what Grafana's own migrations would do up to version 42 (the latest of
Grafana 12.1 to 13; 12.0 writes 41, Grafana 11 opens a newer one as it is) for what the
qmonit dashboards use, and `problems` checks a dashboard before it is pushed. The queries
(`query`, `rawSql`) pass through untouched.
"""

from __future__ import annotations

import copy
from typing import Any, TypeGuard

# The dashboard schema version written: the latest of Grafana 12.1-13 (Grafana's
# apps/dashboard/pkg/migration/schemaversion: minimum 13, latest 42).
SCHEMA_VERSION = 42
GRAFANA_VERSIONS = "12.1 to 13 (11.x opens them without migrating)"

# Keys of grafanalib's old model that no current Grafana reads, wherever they appear.
LEGACY_KEYS = frozenset({
    "rows", "style", "hideControls", "sharedCrosshair", "gnetId", "__inputs",  # dashboard
    "span", "minSpan", "height", "error", "fontSize",  # panel (before gridPos, v16)
    "useTags", "tagsQuery", "tagValuesQuery",  # variable tags (removed in Grafana 8)
    "time_options",  # timepicker (v41)
    "expr", "target", "metric", "step", "intervalFactor", "legendFormat",  # other queries
})
# What a panel has in Grafana's schema (Panel; the rest, e.g. grafanalib's `columns`, is
# the old table's or Grafana 4's), and a row panel (RowPanel).
PANEL_KEYS = ("type", "id", "pluginVersion", "targets", "title", "description", "transparent",
              "datasource", "gridPos", "links", "repeat", "repeatDirection", "maxPerRow",
              "maxDataPoints", "transformations", "interval", "timeFrom", "timeShift",
              "hideTimeOverride", "libraryPanel", "cacheTimeout", "queryCachingTTL", "options",
              "fieldConfig")
ROW_KEYS = ("type", "id", "title", "collapsed", "gridPos", "panels", "repeat")
# The fields of each datasource's query model that the qmonit dashboards set.
TARGET_KEYS = {
    "influxdb": ("refId", "datasource", "query", "rawQuery", "resultFormat", "alias", "hide"),
    "mysql": ("refId", "datasource", "rawSql", "rawQuery", "format", "editorMode", "hide"),
}
# grafanalib's table display modes as cell options (Grafana's v38 migration).
CELL_OPTIONS = {
    "auto": {"type": "auto"},
    "color-text": {"type": "color-text"},
    "color-background": {"type": "color-background", "mode": "gradient"},
    "color-background-solid": {"type": "color-background", "mode": "basic"},
    "gradient-gauge": {"type": "gauge", "mode": "gradient"},
    "lcd-gauge": {"type": "gauge", "mode": "lcd"},
    "basic": {"type": "gauge", "mode": "basic"},
    "json-view": {"type": "json-view"},
    "image": {"type": "image"},
}


class SchemaError(ValueError):
    """A dashboard that cannot be written at SCHEMA_VERSION; the message names the place."""


def modernise(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard at SCHEMA_VERSION: legacy keys gone, every panel, query and query
    variable naming its datasource by {type, uid}, nulls left out (Grafana's default)."""
    model = copy.deepcopy(dashboard)
    if model.get("rows"):
        raise SchemaError("uses legacy `rows` (Grafana 4): put row panels in `panels` "
                          "(qmonit.grafana.helpers.row)")
    for key in LEGACY_KEYS | {"id"}:  # id: Grafana's own number, given by the Grafana saving it
        model.pop(key, None)
    model["schemaVersion"] = SCHEMA_VERSION
    timepicker = model.get("timepicker", {})
    timepicker.pop("time_options", None)
    model["panels"] = [_panel(panel) for panel in model.get("panels", [])]
    templating = model.setdefault("templating", {"list": []})
    templating["list"] = [_variable(variable) for variable in templating.get("list", [])]
    return _without_nulls(model)


def _panel(panel: dict[str, Any]) -> dict[str, Any]:
    if panel.get("type") == "row":
        row = {key: panel[key] for key in ROW_KEYS if panel.get(key) is not None}
        row["panels"] = [_panel(inner) for inner in row.get("panels", [])]
        return row
    title = panel.get("title", "?")
    # grafanalib's Table puts colour and value mappings beside fieldConfig, not in it
    beside = {"color": panel.get("color"), "mappings": panel.get("mappings")}
    panel = {key: panel[key] for key in PANEL_KEYS if key in panel}
    datasource = panel.get("datasource")
    if not _is_reference(datasource):
        raise SchemaError(f"panel {title!r}: no datasource {{type, uid}} (got {datasource!r})")
    panel["targets"] = [_target(target, datasource, title) for target in panel.get("targets", [])]
    field_config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
    defaults = field_config.setdefault("defaults", {})
    for key, value in beside.items():
        if value and not defaults.get(key):
            defaults[key] = value
    _cell_options(defaults.get("custom", {}))
    for override in field_config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "custom.displayMode":
                prop["id"], prop["value"] = "custom.cellOptions", _cell(prop["value"], title)
    return panel


def _cell_options(custom: dict[str, Any]) -> None:
    mode = custom.pop("displayMode", None)
    if mode is not None:
        custom.setdefault("cellOptions", _cell(mode, "?"))


def _cell(mode: str, title: str) -> dict[str, str]:
    if mode not in CELL_OPTIONS:
        raise SchemaError(f"panel {title!r}: unknown table display mode {mode!r}")
    return dict(CELL_OPTIONS[mode])


def _target(target: dict[str, Any], panel_datasource: dict[str, str], title: str
            ) -> dict[str, Any]:
    """The query with the fields of its datasource's model only (no Prometheus `expr`,
    `step`... on an InfluxQL or SQL query); its datasource is the panel's when unset."""
    datasource = target.get("datasource") or panel_datasource
    if not _is_reference(datasource):
        raise SchemaError(f"panel {title!r} query {target.get('refId')}: no datasource "
                          f"{{type, uid}} (got {datasource!r})")
    keys = TARGET_KEYS.get(datasource["type"])
    if keys is None:
        raise SchemaError(f"panel {title!r}: queries of a {datasource['type']} datasource "
                          f"are not known here (known: {', '.join(sorted(TARGET_KEYS))})")
    modern = {**target, "datasource": datasource}
    if datasource["type"] == "mysql":
        modern["editorMode"] = "code"  # rawSql, not the builder: what Grafana would infer
    if modern.get("hide") is False:
        del modern["hide"]
    if modern.get("alias") == "":
        del modern["alias"]
    return {key: modern[key] for key in keys if key in modern}


def _variable(variable: dict[str, Any]) -> dict[str, Any]:
    modern = {key: value for key, value in variable.items() if key not in LEGACY_KEYS}
    if modern.get("type") != "interval":  # the auto interval is an interval variable's
        for key in ("auto", "auto_min", "auto_count"):
            modern.pop(key, None)
    if isinstance(modern.get("current"), dict):
        modern["current"].pop("tags", None)
    if modern.get("type") == "query" and not _is_reference(modern.get("datasource")):
        raise SchemaError(f"variable {modern.get('name')!r}: a query variable needs a "
                          f"datasource {{type, uid}} (got {modern.get('datasource')!r})")
    return modern


def _is_reference(value: Any) -> TypeGuard[dict[str, str]]:
    return (isinstance(value, dict) and set(value) == {"type", "uid"}
            and all(isinstance(value[key], str) and value[key] for key in ("type", "uid")))


def _without_nulls(node: Any) -> Any:
    """Leave out every null but a threshold step's base `value` (null is minus infinity)."""
    if isinstance(node, dict):
        step = set(node) == {"value", "color"}
        return {key: _without_nulls(value) for key, value in node.items()
                if value is not None or (step and key == "value")}
    if isinstance(node, list):
        return [_without_nulls(value) for value in node]
    return node


# -- checking -----------------------------------------------------------------------------

def problems(dashboard: dict[str, Any]) -> list[str]:
    """What keeps the dashboard from being one of SCHEMA_VERSION, each naming its place;
    empty when it is one (the check `dashboards push` makes before sending)."""
    found = []
    if dashboard.get("schemaVersion") != SCHEMA_VERSION:
        found.append(f"schemaVersion is {dashboard.get('schemaVersion')!r}, not "
                     f"{SCHEMA_VERSION}")
    found += [f"{path}: legacy key" for path in _paths(dashboard) if
              path.rsplit(".", 1)[-1] in LEGACY_KEYS]
    found += [f"{path}: null" for path, value in _values(dashboard)
              if value is None and not path.endswith(".steps[].value")]
    for panel in _all_panels(dashboard.get("panels", [])):
        where = f"panel {panel.get('title', '?')!r}"
        if panel.get("type") == "row":
            continue
        if not _is_reference(panel.get("datasource")):
            found.append(f"{where}: datasource is not a {{type, uid}} reference")
        for target in panel.get("targets", []):
            if not _is_reference(target.get("datasource")):
                found.append(f"{where} query {target.get('refId')}: datasource is not a "
                             f"{{type, uid}} reference")
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and not _is_reference(variable.get("datasource")):
            found.append(f"variable {variable.get('name')!r}: datasource is not a "
                         f"{{type, uid}} reference")
    return found


def _all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for panel in panels for p in [panel, *_all_panels(panel.get("panels", []))]]


def _paths(node: Any, path: str = "") -> list[str]:
    return [p for p, _ in _values(node, path, leaves=False)]


def _values(node: Any, path: str = "", leaves: bool = True) -> list[tuple[str, Any]]:
    """(path, value) of every key (`panels[].targets[].query`): the leaves, or all keys."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if not leaves or not isinstance(value, dict | list):
                found.append((here, value))
            found += _values(value, here, leaves)
    elif isinstance(node, list):
        for value in node:
            found += _values(value, f"{path}[]", leaves)
    return found
