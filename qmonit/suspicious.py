"""`qmonit suspicious`: the open flags as an aligned table for a shifter, or as JSON."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from qmonit.model import UNKNOWN
from qmonit.report import table
from qmonit.stores import alerts, state

SEVERITY_ORDER = {"critical": 0, "warning": 1}


def open_flags(engine: Engine) -> list[dict]:
    topology = state.queue_topology(engine)
    rows = []
    for alert in alerts.open_alerts(engine):
        queue, label, resource, rule = alert.key
        where = topology.get(queue, {})
        rows.append({
            "panda_queue": queue, "prod_source": label, "resource": resource,
            "atlas_site": where.get("atlas_site") or UNKNOWN,
            "cloud": where.get("cloud") or UNKNOWN, "rule": rule, "severity": alert.severity,
            "metric": alert.metric, "current": alert.current, "baseline": alert.baseline,
            "score": alert.score,
            "reason": alert.reason, "open_since": alert.opened_at.isoformat(),
        })
    rows.sort(key=lambda r: (SEVERITY_ORDER.get(r["severity"], 2), r["open_since"],
                             r["panda_queue"], r["rule"]))
    return rows


def render(engine: Engine, as_json: bool = False) -> str:
    rows = open_flags(engine)
    if as_json:
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "No open suspicious-site flags.\n"
    body = [[r["panda_queue"], f"{r['prod_source']}/{r['resource']}", r["atlas_site"],
             r["cloud"], r["rule"], r["severity"],
             r["metric"] or "", f"{_number(r['current'])} vs {_number(r['baseline'])}",
             r["open_since"][:16].replace("T", " "), r["reason"]] for r in rows]
    return table(["panda_queue", "prod_source/resource", "site", "cloud", "rule", "severity",
                  "metric", "current vs baseline", "open since (UTC)", "reason"], body) + "\n"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.1f}"
