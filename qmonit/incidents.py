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

from qmonit.stores.alerts import Alert

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
