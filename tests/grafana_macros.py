"""Grafana's query interpolation, as its InfluxDB and MySQL datasources do it, for the tests.

No Grafana can run here, so the tests expand every panel query the way Grafana would
(time filters, intervals, template variables with their format options) and run the
result on the real InfluxDB and MariaDB. A variable a query uses but the dashboard
does not define is an error, not an empty string.

The rules, as Grafana 10-13 apply them (grafana/grafana `public/app/features/templating/
template_srv.ts` and `formatRegistry.ts`, their scenes successors `@grafana/scenes`
`variables/interpolation/{sceneInterpolator,formatRegistry}.ts` and `CustomAllValue`,
`packages/grafana-data/src/text/string.ts` `escapeRegex`, the InfluxDB datasource's
`interpolateQueryExpr` and `@grafana/sql`'s `SqlDatasource.interpolateVariable`):
- All with a custom `allValue`: the allValue unformatted for every format except `text`,
  `percentencode` and `queryparam` (percentencode formats it); All without one: every option.
- `:regex`: each value regex-escaped (`\\ ^ $ * + ? . ( ) | [ ] { } /` get a backslash);
  one value alone, several as `(a|b)`.
- `:sqlstring`: each value in single quotes with `'` doubled, joined by `,`.
- `:percentencode`: encodeURIComponent with `!'()*` escaped too (encodeURIComponentStrict):
  only [A-Za-z0-9-_.~] stay, UTF-8 bytes as %XX; several values are encoded as `{a,b}`.
- no format, InfluxDB: a variable neither multi nor includeAll goes in raw; otherwise a
  number raw, a string regex-escaped, a list as for `:regex`.
- no format, MySQL: multi/includeAll values quoted as for `:sqlstring`; otherwise `'` doubled.
The expanded SQL then runs as the reading account, whose sessions have NO_BACKSLASH_ESCAPES
(a backslash is an ordinary character inside a literal, as the expander assumes).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")
ALL = "$__all"
REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|\[\]{}/])")


class UndefinedVariable(KeyError):
    pass


def regex_escape(value: str) -> str:
    return REGEX_SPECIAL.sub(r"\\\1", value)


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def percent_encode(value: str) -> str:
    """Grafana's encodeURIComponentStrict."""
    return urllib.parse.quote(value, safe="-_.~")


# Formats that format a custom All value instead of inserting it as it is.
FORMATS_ALL_VALUE = {"text", "percentencode", "queryparam"}


@dataclass
class View:
    """What a user looks at: the time range, Grafana's interval and the variables' values."""

    start: datetime
    end: datetime
    interval: str = "10m"
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> template JSON
    values: dict[str, list[str]] = field(default_factory=dict)  # every option of a variable
    selected: dict[str, Any] = field(default_factory=dict)  # name -> value, list or ALL

    @property
    def range_s(self) -> int:
        return int((self.end - self.start).total_seconds())

    def builtin(self, name: str) -> str | None:
        return {
            "timeFilter": f"time >= {int(self.start.timestamp() * 1000)}ms and "
                          f"time <= {int(self.end.timestamp() * 1000)}ms",
            "__interval": self.interval,
            "__range_s": str(self.range_s),
            "__range": f"{self.range_s}s",
        }.get(name)

    def value(self, name: str) -> tuple[Any, dict[str, Any]]:
        if name not in self.variables:
            raise UndefinedVariable(f"${name} is used but not defined by the dashboard")
        template = self.variables[name]
        chosen = self.selected.get(name, template.get("current", {}).get("value", ""))
        if chosen == ALL or chosen == [ALL]:
            if template.get("allValue"):
                return template["allValue"], {**template, "_raw": True}
            return self.values.get(name, []), template
        return chosen, template


def _format(value: Any, template: dict[str, Any], fmt: str | None, dialect: str) -> str:
    if template.get("_raw"):  # a custom All value
        if fmt not in FORMATS_ALL_VALUE:
            return str(value)
    multi = template.get("multi") or template.get("includeAll")
    if fmt == "percentencode":
        if isinstance(value, list):
            return percent_encode("{" + ",".join(value) + "}")
        return percent_encode(value)
    if fmt == "regex" or (fmt is None and dialect == "influx"):
        if fmt is None and not multi:
            return value if isinstance(value, str) else str(value)
        if isinstance(value, list):
            escaped = [regex_escape(v) for v in value]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        if fmt is None and _is_number(value):
            return value
        return regex_escape(value)
    if fmt == "sqlstring" or (fmt is None and dialect == "sql" and multi):
        values = value if isinstance(value, list) else [value]
        return ",".join(sql_quote(v) for v in values)
    if fmt is None and dialect == "sql":
        return str(value).replace("'", "''")
    raise ValueError(f"format :{fmt} is not expanded by these tests")


def _is_number(value: str) -> bool:
    """JavaScript's !isNaN(parseFloat(value)): a leading number."""
    return re.match(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|\s*[+-]?Infinity", value) \
        is not None


def expand_variables(query: str, view: View, dialect: str) -> str:
    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(3) or match.group(4)
        fmt = match.group(2)
        builtin = view.builtin(name)
        if builtin is not None:
            return builtin
        value, template = view.value(name)
        return _format(value, template, fmt, dialect)

    return VARIABLE.sub(substitute, query)


def expand_influx(query: str, view: View) -> str:
    return expand_variables(query, view, "influx")


def expand_sql(query: str, view: View) -> str:
    start, end = int(view.start.timestamp()), int(view.end.timestamp())

    def time_filter(match: re.Match) -> str:
        return f"{match.group(1)} BETWEEN FROM_UNIXTIME({start}) AND FROM_UNIXTIME({end})"

    query = re.sub(r"\$__timeFilter\(([^)]+)\)", time_filter, query)
    # Grafana's MySQL $__timeFrom() / $__timeTo(): the range's ends as UTC datetimes
    query = query.replace("$__timeFrom()", f"FROM_UNIXTIME({start})")
    query = query.replace("$__timeTo()", f"FROM_UNIXTIME({end})")
    query = re.sub(r"\$__unixEpochFilter\(([^)]+)\)",
                   lambda m: f"{m.group(1)} >= {start} AND {m.group(1)} <= {end}", query)
    return expand_variables(query, view, "sql")


def resolve_hidden(view: View, rows_of: Callable[[str], list[dict]]) -> None:
    """Grafana's refresh of the hidden query variables other than $rp (the level variables):
    each takes the value its query returns for the current selection. One that returns
    nothing is an error: every panel reading it would fail."""
    for name, variable in view.variables.items():
        if variable.get("type") != "query" or variable.get("hide") != 2 or name == "rp":
            continue
        rows = rows_of(expand_influx(variable["query"], view))
        values = [value for row in rows for key, value in row.items() if key != "time"]
        if not values:
            raise UndefinedVariable(f"${name} has no value for {view.selected}")
        view.selected[name] = str(values[0])
