"""The numbers a shifter acts on, per panda_queue × prod_source × resource, from one
aggregation query per window (all series at once), run in the time-series store.

Windows are spans of time ending where the current slot begins, so the current
slot is never part of its own baseline: 1h, 6h, 12h, 24h from the "10m" data;
7d and 30d from the "1d" data over whole days. A window's coverage is the share
of its slots that have a point; thanks to zero-fill every successful cycle writes
every live series, so missing slots are failed cycles (or a series that is new).
Below the minimum coverage an average is None: insufficient, and it feeds no flag.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from qmonit.model import AVERAGED_STATUSES as AVERAGED
from qmonit.sample import SLOT
from qmonit.stores.aggregate import GroupedQuery, Stats

KEY_TAGS = ("panda_queue", "prod_source", "resource", "job_status")
QueueKey = tuple[str, str, str]  # panda_queue, prod_source, resource


@dataclass(frozen=True)
class Window:
    name: str
    rp: str
    span: timedelta
    step: timedelta

    def bounds(self, slot: datetime) -> tuple[datetime, datetime]:
        end = slot if self.rp == "10m" else slot.replace(hour=0, minute=0, second=0)
        return end - self.span, end

    @property
    def expected(self) -> int:
        return int(self.span / self.step)


DAY = timedelta(days=1)
WINDOWS = (
    Window("1h", "10m", timedelta(hours=1), SLOT),
    Window("6h", "10m", timedelta(hours=6), SLOT),
    Window("12h", "10m", timedelta(hours=12), SLOT),
    Window("24h", "10m", timedelta(hours=24), SLOT),
    Window("7d", "1d", timedelta(days=7), DAY),
    Window("30d", "1d", timedelta(days=30), DAY),
)


@dataclass
class QueueNumbers:
    current: dict[str, float] = field(default_factory=dict)  # job_status -> value at the slot
    averages: dict[str, dict[str, float | None]] = field(default_factory=dict)  # window -> ...
    coverage: dict[str, float] = field(default_factory=dict)  # window -> share of slots
    baseline: dict[str, Stats] = field(default_factory=dict)  # job_status -> robust stats
    baseline_coverage: float = 0.0

    def now(self, status: str) -> float:
        return self.current.get(status, 0.0)


# Windows read only the statuses the averages and rules use: the query is that much smaller.
JUDGED = (*AVERAGED, "transferring")


def _query(window: Window, slot: datetime, robust: bool = False) -> GroupedQuery:
    start, end = window.bounds(slot)
    return GroupedQuery("jobs", "jobs", KEY_TAGS, window.rp, start, end,
                        int(window.step.total_seconds()), robust, ("job_status", JUDGED))


def _by_queue(stats: dict[tuple[str, ...], Stats]) -> dict[QueueKey, dict[str, Stats]]:
    out: dict[QueueKey, dict[str, Stats]] = defaultdict(dict)
    for (queue, label, resource, status), value in stats.items():
        out[(queue, label, resource)][status] = value
    return out


def gather(store, slot: datetime, coverage_min: float,
           baseline_hours: int) -> tuple[dict[QueueKey, QueueNumbers], int]:
    """Every queue's numbers at `slot`, and how many queries it took."""
    baseline = Window("baseline", "10m", timedelta(hours=baseline_hours), SLOT)
    numbers: dict[QueueKey, QueueNumbers] = defaultdict(QueueNumbers)
    at_slot = GroupedQuery("jobs", "jobs", KEY_TAGS, "10m", slot, slot + SLOT,
                           int(SLOT.total_seconds()))
    for key, statuses in _by_queue(store.grouped_stats(at_slot)).items():
        numbers[key].current = {status: s.mean for status, s in statuses.items()}
    robust = _by_queue(store.grouped_stats(_query(baseline, slot, robust=True)))
    queries = 2
    for key, statuses in robust.items():
        entry = numbers[key]
        entry.baseline = statuses
        entry.baseline_coverage = max(s.count for s in statuses.values()) / baseline.expected
    for window in WINDOWS:
        if (window.rp, window.span) == (baseline.rp, baseline.span):
            by_queue = robust  # the same window: its mean and count are already here
        else:
            by_queue = _by_queue(store.grouped_stats(_query(window, slot)))
            queries += 1
        for key, statuses in by_queue.items():
            entry = numbers[key]
            coverage = max(s.count for s in statuses.values()) / window.expected
            entry.coverage[window.name] = coverage
            entry.averages[window.name] = {
                status: (statuses[status].mean if status in statuses else 0.0)
                if coverage >= coverage_min else None
                for status in AVERAGED
            }
    return dict(numbers), queries
