"""`qmonit suspicious`: the open incidents (one per queue) as an aligned table for a
shifter, or as JSON."""

from __future__ import annotations

import json

from sqlalchemy import Engine

from qmonit.incidents import group
from qmonit.model import UNKNOWN
from qmonit.report import table
from qmonit.stores import alerts, state


def _fields(alert: alerts.Alert) -> dict:
    queue, label, resource, rule = alert.key
    return {"prod_source": label, "resource": resource, "rule": rule,
            "severity": alert.severity, "metric": alert.metric, "current": alert.current,
            "baseline": alert.baseline, "score": alert.score, "reason": alert.reason,
            "layer": alert.layer or "unknown", "layer_evidence": alert.layer_evidence or "",
            "open_since": alert.opened_at.isoformat()}


def open_flags(engine: Engine) -> list[dict]:
    """The open incidents, most urgent first: one per queue, its principal alert's fields,
    and the queue's other open alerts as `evidence` (see incidents)."""
    topology = state.queue_topology(engine)
    rows = []
    for incident in group(alerts.open_alerts(engine)):
        where = topology.get(incident.panda_queue, {})
        rows.append({
            "panda_queue": incident.panda_queue,
            "atlas_site": where.get("atlas_site") or UNKNOWN,
            "cloud": where.get("cloud") or UNKNOWN,
            **_fields(incident.principal),
            "severity": incident.severity,  # the incident's: the highest of its alerts
            "evidence": [_fields(a) for a in incident.evidence],
        })
    return rows


def render(engine: Engine, as_json: bool = False) -> str:
    rows = open_flags(engine)
    if as_json:
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "No open suspicious-site flags.\n"
    body = [[r["panda_queue"], f"{r['prod_source']}/{r['resource']}", r["atlas_site"],
             r["cloud"], r["rule"], r["severity"], r["layer"],
             r["metric"] or "", f"{_number(r['current'])} vs {_number(r['baseline'])}",
             r["open_since"][:16].replace("T", " "), _reason(r)] for r in rows]
    return table(["panda_queue", "prod_source/resource", "site", "cloud", "rule", "severity",
                  "likely layer", "metric", "current vs baseline", "open since (UTC)",
                  "reason"], body) + "\n"


def _reason(row: dict) -> str:
    also = "; ".join(f"{e['rule']} {e['prod_source']}/{e['resource']}: {e['reason']}"
                     for e in row["evidence"])
    why = f" [{row['layer']}: {row['layer_evidence']}]" if row["layer_evidence"] else ""
    return row["reason"] + why + (f"; also {also}" if also else "")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.1f}"
