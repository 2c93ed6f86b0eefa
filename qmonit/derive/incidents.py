"""Incidents: the alerts of one queue read as one thing that is wrong with it.

A draining queue whose pilots stopped arriving opens `starving` and `drop`, often on
several of its prod_source × resource splits; a PanDA outage opens a stale alert per
source PanDA serves. The flags stay per rule and split (each has its own hysteresis and
history), but the shift crew is shown one incident per panda_queue: a principal alert,
the rule nearest the cause (a queue with no pilots drops because it starves), with the
others as its evidence, and one severity, the highest of them. The digest opens, updates
and closes incidents, and `qmonit suspicious` lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from qmonit.stores.state.alerts import Alert

# nearest the cause first: a stale source explains everything, starving explains a drop,
# failing jobs explain fewer running; a backlog is the least specific
RULE_PRIORITY = {"stale": 0, "starving": 1, "failing": 2, "drop": 3, "backlog": 4}
SEVERITY_RANK = {"critical": 0, "warning": 1}


def _rank(alert: Alert) -> tuple:
    return (RULE_PRIORITY.get(alert.key[3], 9), SEVERITY_RANK.get(alert.severity, 2),
            alert.opened_at, alert.id)


def worst(alerts: Iterable[Alert]) -> str:
    """The highest severity among these alerts."""
    return min((a.severity for a in alerts), key=lambda s: SEVERITY_RANK.get(s, 2))


@dataclass(frozen=True)
class Incident:
    panda_queue: str
    alerts: tuple[Alert, ...]  # principal first

    @property
    def principal(self) -> Alert:
        return self.alerts[0]

    @property
    def evidence(self) -> tuple[Alert, ...]:
        return self.alerts[1:]

    @property
    def severity(self) -> str:
        return worst(self.alerts)

    @property
    def opened_at(self) -> datetime:
        return min(a.opened_at for a in self.alerts)

    @property
    def closed_at(self) -> datetime | None:
        """When the last of its alerts closed; None while any is open."""
        if any(a.closed_at is None for a in self.alerts):
            return None
        return max(a.closed_at for a in self.alerts if a.closed_at is not None)


def group(alerts: Iterable[Alert]) -> list[Incident]:
    """One incident per panda_queue (a source's stale alert is its own), most urgent first."""
    by_queue: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_queue.setdefault(alert.key[0], []).append(alert)
    incidents = [Incident(queue, tuple(sorted(members, key=_rank)))
                 for queue, members in by_queue.items()]
    return sorted(incidents, key=lambda i: (SEVERITY_RANK.get(i.severity, 2), i.opened_at,
                                            i.panda_queue))


def split(alert: Alert) -> str:
    """"managed/SCORE", or "" for an alert about the whole queue or source."""
    _, label, resource, _ = alert.key
    return "" if (label, resource) == ("all", "all") else f"{label}/{resource}"


def _field_rank(column: str, ranks: dict[str, int], other: int) -> str:
    """An SQL rank of `column` in the order of `ranks` (`other` for a value not in it)."""
    ordered = ", ".join(f"'{name}'" for name in sorted(ranks, key=ranks.__getitem__))
    return f"COALESCE(NULLIF(FIELD({column}, {ordered}), 0), {other + 1})"


def _alert_rank(alias: str) -> str:
    """_rank in SQL: rule nearest the cause, severity, opened first, lowest id."""
    return (f"{_field_rank(f'{alias}.rule', RULE_PRIORITY, 9)}, "
            f"{_field_rank(f'{alias}.severity', SEVERITY_RANK, 2)}, {alias}.opened_at, "
            f"{alias}.id")


# `group` in SQL, for the Suspicious Sites dashboard (Grafana's MySQL datasource cannot call
# Python): one row per queue with open alerts, its principal alert's fields, the incident's
# severity and opening, CRIC's status, tier and pilot manager (with the Harvester instance),
# and the queue's other open alerts as `also`, in `qmonit suspicious`'s words.
OPEN_INCIDENTS_SQL = f"""
SELECT i.panda_queue, COALESCE(q.atlas_site, 'unknown') AS atlas_site,
 COALESCE(q.cloud, 'unknown') AS cloud, COALESCE(q.tier, 'unknown') AS tier,
 COALESCE(q.queue_status, 'unknown') AS cric_status,
 CONCAT(COALESCE(q.pilot_manager, 'unknown'), COALESCE(CONCAT(' (', q.harvester, ')'), ''))
 AS pilot_manager,
 i.rule, CONCAT(i.prod_source, '/', i.resource) AS split, i.incident_severity AS severity,
 COALESCE(i.status, 'open') AS state, i.incident_opened AS since,
 TIMESTAMPDIFF(MINUTE, i.incident_opened, UTC_TIMESTAMP()) AS open_min,
 COALESCE(i.layer, 'unknown') AS layer, i.layer_evidence, i.metric, i.current, i.baseline,
 i.as_of, i.reason,
 COALESCE((SELECT GROUP_CONCAT(CONCAT(e.rule, ' ', e.prod_source, '/', e.resource, ': ',
 e.reason) ORDER BY {_alert_rank('e')} SEPARATOR '; ') FROM alerts e
 WHERE e.closed_at IS NULL AND e.panda_queue = i.panda_queue AND e.id <> i.id), '') AS also
FROM (SELECT a.*, ROW_NUMBER() OVER (PARTITION BY a.panda_queue ORDER BY {_alert_rank('a')})
 AS n, FIRST_VALUE(a.severity) OVER (PARTITION BY a.panda_queue
 ORDER BY {_field_rank('a.severity', SEVERITY_RANK, 2)}) AS incident_severity,
 MIN(a.opened_at) OVER (PARTITION BY a.panda_queue) AS incident_opened
 FROM alerts a WHERE a.closed_at IS NULL) i
LEFT JOIN queues q ON q.panda_queue = i.panda_queue
WHERE i.n = 1
ORDER BY {_field_rank('i.incident_severity', SEVERITY_RANK, 2)}, i.incident_opened,
 i.panda_queue
"""
