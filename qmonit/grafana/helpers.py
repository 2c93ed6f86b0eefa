"""The house helpers every dashboards/*.dashboard.py uses: datasources, variables, panels, layout.

Queries follow four rules. Counts are summed per 10-minute slot first and only then
averaged over Grafana's interval, so a wide interval never adds slots together. The
retention policy is the `$rp` variable, which reads `meta.rp_config` (written by
`qmonit init`) and switches to "1h" and "1d" for long time ranges; the policy's name
is also its slot width, so `GROUP BY time($rp)` is the slot. Tag filters are regular
expressions, so a variable set to All (`.*`) or to several values works the same (a level
without the tag has it empty, which `.*` matches). The measurement is a hidden level variable
(`level_variable`): the per-queue series once someone narrows to a site or queue, a
write-time aggregate while the filters are on All.

No template variable reaches a query unescaped, and that is enforced here, not per panel:
`influx()`, `sql()` and the variables' own queries pass through `guard_influx`/`guard_sql`,
which give every `$var` a Grafana format that cannot leave its literal:
- an InfluxQL identifier or string (`"$rp"."$jobs_m"`, `time($rp)`, `'$group_by'`) and a
  text box in SQL: `${var:percentencode}`, whose output is only [A-Za-z0-9-_.~%] (Grafana's
  encodeURIComponentStrict), the identity for every legitimate value (`10m`, `jobs_by_cloud`,
  `1234.0`, `wn01.example.org`), so a hostile value matches nothing;
- an InfluxQL tag regex (`/^$var$/`): `${var:regex}`, which escapes `/` and `\\` too;
- a tag filter in SQL: `sql_match(column, var)` compares with the percent-encoded value
  (All, one value, or Grafana's `{a,b}` list), never a regex pasted into a string;
- a SQL variable's list: `IN (${var:sqlstring})` (quotes doubled; backslashes are literal
  for the reading account).
Any other use of a variable is refused when the dashboard is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from grafanalib.core import (
    Dashboard,
    DashboardLink,
    GridPos,
    Panel,
    RowPanel,
    SqlTarget,
    Stat,
    Table,
    Template,
    Templating,
    Time,
    TimeSeries,
)
from grafanalib.influxdb import InfluxDBTarget

from qmonit.core.levels import choice

INFLUX = {"type": "influxdb", "uid": "qmonit-influxdb"}
MYSQL = {"type": "mysql", "uid": "qmonit-mysql"}
TAG = "qmonit"
WIDTH = 24  # Grafana's grid
# The colours of a severity, as the derive job names them.
SEVERITY_COLOURS = {"none": "green", "warning": "orange", "critical": "red"}
PanelT = TypeVar("PanelT", bound=Panel)  # TimeSeries, Stat, Table, RowPanel


def dashboard_url(uid: str, **variables: str) -> str:
    """A link to another qmonit dashboard, keeping the time range."""
    query = "&".join(f"var-{name}={value}" for name, value in variables.items())
    return f"/d/{uid}?${{__url_time_range}}" + (f"&{query}" if query else "")


# -- variables in queries -----------------------------------------------------------------

# Grafana's own variables, expanded by Grafana from the time picker (never user text).
BUILTINS = frozenset({"timeFilter", "__interval", "__range_s", "__range", "__interval_ms",
                      "__timeFilter", "__unixEpochFilter", "__timeGroup", "__timeGroupAlias"})
_TAG_REGEX = re.compile(r"/\^\$(\w+)\$/")
_QUOTED = re.compile(r"""(["'])\$(\w+)\1""")
_TIME_GROUP = re.compile(r"time\(\$(\w+)\)")
_ANY_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
# sqlstring doubles quotes, which holds once backslashes are literal (NO_BACKSLASH_ESCAPES
# for the reading account, qmonit/grafana/readers.py); only for SQL variables (no All value).
SAFE_FORMATS = {"influx": {"regex", "percentencode"}, "sql": {"percentencode", "sqlstring"}}


class UnsafeVariable(ValueError):
    """A query uses a template variable in a way that could leave its literal."""


def guard_influx(query: str) -> str:
    """InfluxQL with every variable in a safe format (see the module docstring)."""
    query = _TAG_REGEX.sub(lambda m: f"/^${{{m.group(1)}:regex}}$/", query)
    query = _QUOTED.sub(lambda m: f"{m.group(1)}${{{m.group(2)}:percentencode}}{m.group(1)}",
                        query)
    query = _TIME_GROUP.sub(lambda m: m.group(0) if m.group(1) in BUILTINS
                            else f"time(${{{m.group(1)}:percentencode}})", query)
    return _checked(query, "influx")


def guard_sql(query: str) -> str:
    """SQL with every variable in a safe format: a text box in quotes is percent-encoded."""
    query = _QUOTED.sub(lambda m: m.group(0) if m.group(1) == '"' else
                        f"'${{{m.group(2)}:percentencode}}'", query)
    return _checked(query, "sql")


def _checked(query: str, dialect: str) -> str:
    for match in _ANY_VARIABLE.finditer(query):
        name = match.group(1) or match.group(3) or match.group(4)
        if name in BUILTINS or name.startswith("__"):
            continue
        if match.group(2) not in SAFE_FORMATS[dialect]:
            raise UnsafeVariable(f"{match.group(0)} in {query!r}: a variable must be "
                                 f"{' or '.join(sorted(SAFE_FORMATS[dialect]))}-formatted")
    return query


LISTED = 20  # values of a multi-value variable sql_match compares through the column's index


def sql_match(column: str, variable: str) -> str:
    """SQL: `column` equals the value(s) of a multi-value variable with All as `.*`.

    Grafana inserts a custom All value unformatted for every format but text, percentencode
    and queryparam, so neither `IN (${v:sqlstring})` nor a regex works with All; the
    percent-encoded value is always a safe literal: `.%2A` (All), `x` (one value, identity
    for tag values of [A-Za-z0-9-_.~]) or `%7Ba%2Cb%7D` (several, Grafana's `{a,b}`). A
    value with other characters is encoded and matches no row: it cannot be selected.

    Written so the database can use an index on `column`: every term but `column IN (...)`
    is a constant the optimizer folds (All: the whole filter is true and drops out), and the
    IN list holds the first LISTED values cut from the literal by constant functions
    (fewer values repeat the last). Beyond LISTED values, a LOCATE over the list, which no
    index serves, finds the rest."""
    value = f"'${{{variable}:percentencode}}'"
    listed = f"REPLACE(REPLACE(REPLACE({value}, '%7B', ''), '%7D', ''), '%2C', ',')"
    values = ", ".join(f"SUBSTRING_INDEX(SUBSTRING_INDEX({listed}, ',', {n}), ',', -1)"
                       for n in range(1, LISTED + 1))
    commas = f"(LENGTH({value}) - LENGTH(REPLACE({value}, '%2C', ''))) / 3"
    rest = (f"LOCATE(CONCAT('%2C', {column}, '%2C'), REPLACE(REPLACE({value}, '%7B', '%2C'), "
            f"'%7D', '%2C')) > 0")
    return (f"({value} = '.%2A' OR {column} IN ({values}) OR ({commas} >= {LISTED} AND "
            f"{rest}))")


# -- variables ---------------------------------------------------------------------------

def rp_variable() -> Template:
    """The retention policy for the time range in view (hidden; see the module docstring)."""
    return Template(
        name="rp", label="Resolution", dataSource=INFLUX, type="query", hide=2, refresh=2,
        query=guard_influx('SELECT first("rp") FROM "meta"."rp_config" WHERE "max_range_s" '
                           '>= ${__range_s}'),
        default="10m")


def level_variable(name: str) -> Template:
    """The measurement the panels using `$name` read: the cheapest level of write-time
    aggregates that answers the selection (hidden; qmonit/core/levels.py says how it is chosen).
    Grafana refreshes it whenever a filter it names changes."""
    return Template(name=name, label=name, dataSource=INFLUX, type="query", hide=2, refresh=1,
                    query=guard_influx(choice(name).query()), default=choice(name).base)


def tag_variable(name: str, measurement: str, key: str, label: str,
                 parents: Sequence[tuple[str, str]] = ()) -> Template:
    """A multi-value tag filter with All; `parents` are (variable, tag) it narrows by."""
    where = " AND ".join(f'"{tag}" =~ /^${var}$/' for var, tag in parents)
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"' + \
        (f" WHERE {where}" if where else "")
    return showing_all(Template(name=name, label=label, dataSource=INFLUX,
                                query=guard_influx(query),
                                includeAll=True, multi=True, allValue=".*", refresh=1))


def sql_variable(name: str, label: str, query: str) -> Template:
    return showing_all(Template(name=name, label=label, dataSource=MYSQL, query=guard_sql(query),
                                includeAll=True, multi=True, refresh=1))


def showing_all(template: Template) -> Template:
    """Start on All: a dashboard opens on everything, the user narrows it."""
    template._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return template


def text_variable(name: str, label: str) -> Template:
    """A free-text box; empty means "any"."""
    return Template(name=name, label=label, type="textbox", query="", default="")


def custom_variable(name: str, label: str, values: Sequence[str], with_all: bool = False
                    ) -> Template:
    """A fixed list; with_all: several values or All (".*") for a tag filter."""
    if with_all:
        return showing_all(Template(name=name, label=label, type="custom",
                                    query=",".join(values), includeAll=True, multi=True,
                                    allValue=".*"))
    return Template(name=name, label=label, type="custom", query=",".join(values),
                    default=values[0])


def tag_filter(*pairs: tuple[str, str]) -> str:
    """` AND "tag" =~ /^$var$/ ...` for (variable, tag) pairs."""
    return "".join(f' AND "{tag}" =~ /^${var}$/' for var, tag in pairs)


# -- queries -----------------------------------------------------------------------------

def per_slot(measurement: str, field: str, where: str, by: Iterable[str] = (),
             alias: str = "n") -> str:
    """InfluxQL: the per-slot sum of a field, then its mean per Grafana interval."""
    tags = "".join(f', "{tag}"' for tag in by)
    inner = (f'SELECT sum("{field}") AS "{alias}" FROM "$rp"."{measurement}" '
             f"WHERE $timeFilter{where} GROUP BY time($rp){tags}")
    return (f'SELECT mean("{alias}") AS "{alias}" FROM ({inner}) WHERE $timeFilter '
            f"GROUP BY time($__interval){tags} fill(none)")


def influx(query: str, ref: str = "A", alias: str = "", fmt: str = "time_series"
           ) -> InfluxDBTarget:
    return InfluxDBTarget(query=guard_influx(query), refId=ref, alias=alias, format=fmt,
                          datasource=INFLUX)


def sql(query: str, ref: str = "A", fmt: str = "table") -> SqlTarget:
    return SqlTarget(rawSql=guard_sql(" ".join(query.split())), refId=ref, format=fmt,
                     datasource=MYSQL)


# -- panels ------------------------------------------------------------------------------

def thresholds(*steps: tuple[float | None, str]) -> list[dict]:
    return [{"value": value, "color": colour} for value, colour in steps]


def timeseries(title: str, description: str, targets: list, unit: str = "short",
               stacked: bool = False, links: Sequence[dict] = (), height: int = 8,
               width: int = 12) -> TimeSeries:
    panel = TimeSeries(title=title, description=description, dataSource=targets[0].datasource,
                       targets=targets, unit=unit, fillOpacity=30 if stacked else 0,
                       stacking={"mode": "normal", "group": "A"} if stacked else {},
                       legendDisplayMode="table", legendPlacement="right",
                       legendCalcs=["lastNotNull", "max"], links=list(links))
    return sized(panel, width, height)


def stat(title: str, description: str, targets: list, unit: str = "short",
         steps: Sequence[tuple[float | None, str]] = ((None, "blue"),), width: int = 4,
         height: int = 4, reduce: str = "lastNotNull") -> Stat:
    panel = Stat(title=title, description=description, dataSource=targets[0].datasource,
                 targets=targets, format=unit, reduceCalc=reduce, graphMode="none",
                 colorMode="background", thresholds=thresholds(*steps))
    return sized(panel, width, height)


def table(title: str, description: str, targets: list, overrides: Sequence[dict] = (),
          width: int = 24, height: int = 8, transformations: Sequence[dict] = ()) -> Table:
    panel = Table(title=title, description=description, dataSource=targets[0].datasource,
                  targets=targets, filterable=True, overrides=list(overrides),
                  transformations=list(transformations))
    return sized(panel, width, height)


def link_column(column: str, title: str, url: str) -> dict:
    """A table column whose cells link somewhere (${__value.raw} is the cell)."""
    return {"matcher": {"id": "byName", "options": column},
            "properties": [{"id": "links", "value": [{"title": title, "url": url}]}]}


def colour_column(column: str, colours: dict[str, str]) -> dict:
    """A text column coloured by value (e.g. a severity)."""
    mapping = {"type": "value", "options": {
        value: {"color": colour, "index": n} for n, (value, colour) in enumerate(colours.items())}}
    return {"matcher": {"id": "byName", "options": column},
            "properties": [{"id": "mappings", "value": [mapping]},
                           colour_cells()]}


def threshold_column(column: str, steps: Sequence[tuple[float | None, str]]) -> dict:
    return {"matcher": {"id": "byName", "options": column},
            "properties": [{"id": "thresholds", "value": {"mode": "absolute",
                                                          "steps": thresholds(*steps)}},
                           colour_cells()]}


def colour_cells() -> dict:
    """Cells filled with their colour: Grafana 10.1+'s cellOptions, in the gradient that
    grafanalib's `displayMode: color-background` became."""
    return {"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "gradient"}}


def sized(panel: PanelT, width: int, height: int) -> PanelT:
    """The panel `width` x `height` grid units; `layout` places it."""
    panel.gridPos = GridPos(h=height, w=width, x=0, y=0)
    return panel


def row(title: str) -> RowPanel:
    return sized(RowPanel(title=title), WIDTH, 1)


def layout(panels: Sequence) -> list:
    """Place panels left to right, top to bottom, in the order given (a row starts a line)."""
    x = y = line_height = 0
    for panel in panels:
        pos = panel.gridPos
        if isinstance(panel, RowPanel) or x + pos.w > WIDTH:
            x, y, line_height = 0, y + line_height, 0
        panel.gridPos = GridPos(h=pos.h, w=pos.w, x=x, y=y)
        x += pos.w
        line_height = max(line_height, pos.h)
        if isinstance(panel, RowPanel):
            x, y, line_height = 0, y + pos.h, 0
    return list(panels)


def qmonit_dashboard(uid: str, title: str, description: str, panels: Sequence,
              variables: Sequence[Template], time_from: str = "now-2d") -> Dashboard:
    """A qmonit dashboard: UTC, refreshed every 5 minutes, linked to the others by tag."""
    board = Dashboard(
        uid=uid, title=title, description=description, tags=[TAG],
        panels=layout(panels), templating=Templating(list=list(variables)),
        time=Time(time_from, "now"), timezone="utc", refresh="5m",
        links=[DashboardLink(title="qmonit", tags=[TAG], asDropdown=True, includeVars=False,
                             keepTime=True)])
    return board.auto_panel_ids()
