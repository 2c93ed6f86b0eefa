"""Grafana's query interpolation, as its InfluxDB and MySQL datasources do it, for the tests.

No Grafana can run here, so the tests expand every panel query the way Grafana would
(time filters, intervals, template variables with their format options) and run the
result on the real InfluxDB and MariaDB. A variable a query uses but the dashboard
does not define is an error, not an empty string.
"""

from __future__ import annotations

import re
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
    if template.get("_raw"):  # a custom All value goes in as it is
        return str(value)
    multi = template.get("multi") or template.get("includeAll")
    if fmt == "regex" or (fmt is None and dialect == "influx"):
        if isinstance(value, list):
            escaped = [regex_escape(v) for v in value]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        return regex_escape(value) if multi else str(value)
    if fmt == "sqlstring" or (fmt is None and dialect == "sql" and multi):
        values = value if isinstance(value, list) else [value]
        return ",".join(sql_quote(v) for v in values) or "''"
    if fmt is None and dialect == "sql":
        return str(value).replace("'", "''")
    raise ValueError(f"format :{fmt} is not expanded by these tests")


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
