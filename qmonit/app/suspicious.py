"""`qmonit suspicious`: the open incidents (one per queue) as an aligned table for a
shifter, or as JSON."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Engine

from qmonit.app.report import table
from qmonit.core.model import UNKNOWN
from qmonit.derive.incidents import group
from qmonit.stores.state import alerts, queues

CRIC_FIELDS = ("tier", "queue_status", "pilot_manager", "harvester")


def _fields(alert: alerts.Alert, now: datetime) -> dict:
    queue, label, resource, rule = alert.key
    return {"prod_source": label, "resource": resource, "rule": rule,
            "severity": alert.severity, "metric": alert.metric, "current": alert.current,
            "baseline": alert.baseline, "score": alert.score, "reason": alert.reason,
            "layer": alert.layer or "unknown", "layer_evidence": alert.layer_evidence or "",
            "state": alert.state(), "as_of": alert.as_of.isoformat() if alert.as_of else None,
            "open_since": alert.opened_at.isoformat(),
            "open_minutes": alert.open_minutes(now)}


def open_flags(engine: Engine, now: datetime) -> list[dict]:
    """The open incidents, most urgent first: one per queue, its principal alert's fields,
    and the queue's other open alerts as `evidence` (see incidents). Open minutes count to
    `now` (render: the newest slot the state tables describe)."""
    topology = queues.queue_topology(engine)
    rows = []
    for incident in group(alerts.open_alerts(engine)):
        where = topology.get(incident.panda_queue, {})
        rows.append({
            "panda_queue": incident.panda_queue,
            "atlas_site": where.get("atlas_site") or UNKNOWN,
            "cloud": where.get("cloud") or UNKNOWN,
            # CRIC's, as the last topology load had them (queues): what the shifter checks
            **{name: where.get(name) or UNKNOWN for name in CRIC_FIELDS},
            **_fields(incident.principal, now),
            "severity": incident.severity,  # the incident's: the highest of its alerts
            "evidence": [_fields(a, now) for a in incident.evidence],
        })
    return rows


def render(engine: Engine, now: datetime, as_json: bool = False) -> str:
    """The open incidents as of the newest slot the state describes at `now` (the clock's)."""
    rows = open_flags(engine, queues.newest_slot(engine, now) or now)
    if as_json:
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "No open suspicious-site flags.\n"
    body = [[r["panda_queue"], f"{r['prod_source']}/{r['resource']}", r["atlas_site"],
             r["cloud"], r["tier"], r["queue_status"], _pilots(r), r["rule"], r["severity"],
             r["state"], r["layer"],
             r["metric"] or "", f"{_number(r['current'])} vs {_number(r['baseline'])}",
             (r["as_of"] or r["open_since"])[11:16], r["open_since"][:16].replace("T", " "),
             duration(r["open_minutes"]), _reason(r)] for r in rows]
    return table(["panda_queue", "prod_source/resource", "site", "cloud", "tier", "CRIC status",
                  "pilot manager", "rule", "severity", "state", "likely layer", "metric",
                  "current vs baseline", "as of", "open since (UTC)", "open for", "reason"],
                 body) + "\n"


def _pilots(row: dict) -> str:
    """CRIC's pilot manager, with the Harvester instance where CRIC names one."""
    if row["harvester"] != UNKNOWN:
        return f"{row['pilot_manager']} ({row['harvester']})"
    return row["pilot_manager"]


def duration(minutes: int) -> str:
    """45m, 3h10m, 2d4h: how long an alert has been open."""
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 24 * 60:
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{minutes // 1440}d{minutes % 1440 // 60}h"


def _reason(row: dict) -> str:
    also = "; ".join(f"{e['rule']} {e['prod_source']}/{e['resource']}: {e['reason']}"
                     for e in row["evidence"])
    why = f" [{row['layer']}: {row['layer_evidence']}]" if row["layer_evidence"] else ""
    return row["reason"] + why + (f"; also {also}" if also else "")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value == int(value) or abs(value) >= 100 else f"{value:.1f}"
