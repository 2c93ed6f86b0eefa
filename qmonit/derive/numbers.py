"""The numbers a shifter acts on, per panda_queue × prod_source × resource.

1h, 6h, 12h and 24h come from the last day of 10-minute counts that collect keeps in
the SQL state store (`queue_history`): one aggregation query returns, for every
queue, hourly sums and counts ending where the current slot begins, and every
window is a sum of those buckets, so the current slot is never part of its own
baseline. (The same counts are in InfluxDB's "10m" data, but InfluxDB 1.6 spends
~50-80 µs per series and field on every query: seven window queries over ATLAS's
20,000+ series take longer than the 10 minutes' budget allows; see
benchmarks/derive.py.) 7d and 30d come from the "1d" data through the time-series
store's own aggregation, once per UTC day.

A window's coverage is the share of its 10-minute slots that have counts (a failed
cycle writes none); below the minimum coverage an average is None: insufficient,
and it feeds no flag. The robust baseline of a status a rule compares with (assigned,
running, transferring) is the median and quartiles of its hourly means over [derive]
baseline_hours (of the others, their mean): it stays put until half of those
hours are anomalous. Hourly means smooth the 10-minute noise a rule judges (by about √6),
so the noise of the drop and backlog statuses is also read at that resolution: per hour,
the standard deviation of its 10-minute counts (from sums of squares, in the same query),
and the median of those over the baseline hours (an hour holding a drain's step is one
hour of many).

A daily rhythm is neither noise nor an incident: where queue_hourly holds at least
[derive] seasonal_min_days whole days of the last seasonal_days, the drop and backlog
statuses are judged against the time of day. On each such day, the slot's clock hour's
mean over that day's mean is a ratio (1.3: this hour runs 30 % above the day); the
expected count now is the last 24 h's mean times the median ratio, and the wider half of
the ratios' quartiles (times the same mean) is its hourly spread on either side. The 24 h
mean averages the rhythm out over a whole day and follows a lasting change of level within
a day; the ratios change only when the shape of the day does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from qmonit.core.model import (
    AVERAGED_STATUSES,
    HISTORY_STATUSES,
    NOISE_STATUSES,
    SEASONAL_STATUSES,
)
from qmonit.core.sample import SLOT
from qmonit.stores.state import history
from qmonit.stores.timeseries.aggregate import GroupedQuery, Stats
from qmonit.stores.timeseries.base import TimeSeriesStore

KEY_TAGS = ("panda_queue", "prod_source", "resource", "job_status")
QueueKey = tuple[str, str, str]  # panda_queue, prod_source, resource
ALL = "all"  # prod_source / resource of numbers or a finding about a whole queue or source
SLOTS_PER_HOUR = 6
HOURLY_WINDOWS = {"1h": 1, "6h": 6, "12h": 12, "24h": 24}
DAILY_WINDOWS = {"7d": 7, "30d": 30}


@dataclass
class QueueNumbers:
    current: dict[str, float] = field(default_factory=dict)  # status -> count at the slot
    # window -> status -> mean count; None where the window's coverage is too low
    averages: dict[str, dict[str, float] | None] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)  # window -> share of slots
    baseline: dict[str, Stats] = field(default_factory=dict)  # status -> robust stats
    baseline_coverage: float = 0.0
    noise: dict[str, float] = field(default_factory=dict)  # status -> 10-minute noise (σ)
    parts: tuple[str, ...] = ()  # a queue's total over these resources (see _totals)
    seasonal: dict[str, int] = field(default_factory=dict)  # status -> days of its time-of-day
    #                                                         baseline (see seasonal)

    def now(self, status: str) -> float:
        return self.current.get(status, 0.0)


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank, InfluxDB's definition: the value at rank floor(n·p/100 + 0.5)."""
    rank = int(len(ordered) * p / 100 + 0.5)
    return ordered[rank - 1] if 1 <= rank <= len(ordered) else None


def median(ordered: list[float]) -> float | None:
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def robust(hourly_means: list[float], total: float, count: int) -> Stats:
    ordered = sorted(hourly_means)
    return Stats(total / count if count else 0.0, count, percentile(ordered, 25),
                 median(ordered), percentile(ordered, 75))


def _windows(buckets: dict[int, tuple[int, list[float]]], spans: set[int]
             ) -> dict[int, tuple[int, list[float]]]:
    """Slots and per-status sums over buckets 0..span-1, for every span: one pass."""
    slots, sums, out = 0, [0.0] * len(HISTORY_STATUSES), {}
    for bucket in range(max(spans)):
        entry = buckets.get(bucket)
        if entry:
            slots += entry[0]
            sums = [a + b for a, b in zip(sums, entry[1], strict=True)]
        if bucket + 1 in spans:
            out[bucket + 1] = (slots, sums)
    return out


AVERAGED_AT = [HISTORY_STATUSES.index(s) for s in AVERAGED_STATUSES]
NOISE_AT = [HISTORY_STATUSES.index(s) for s in NOISE_STATUSES]


def ten_minute_noise(buckets: dict[int, tuple[int, list[float]]],
                     squares: dict[int, list[float]], hours: int) -> dict[str, float]:
    """Per NOISE_STATUSES status, the median over the baseline hours of each hour's sample
    standard deviation of its 10-minute counts (hours with fewer than 3 counts pass)."""
    per_status: list[list[float]] = [[] for _ in NOISE_STATUSES]
    for bucket in range(hours):
        entry, sq = buckets.get(bucket), squares.get(bucket)
        if not entry or not sq or entry[0] < 3:
            continue
        for n, at in enumerate(NOISE_AT):
            per_status[n].append(_variance(entry, sq, n, at) ** 0.5)
    return {status: middle for status, values in zip(NOISE_STATUSES, per_status, strict=True)
            if (middle := median(sorted(values))) is not None}  # None: no hour of it


def _totals(buckets: dict[QueueKey, dict[int, tuple[int, list[float]]]],
            squares: dict[QueueKey, dict[int, list[float]]]
            ) -> tuple[dict[QueueKey, dict[int, tuple[int, list[float]]]],
                       dict[QueueKey, tuple[str, ...]]]:
    """The buckets of (queue, prod_source, ALL) for every queue and prod_source with more
    than one resource (a unified queue: SCORE, MCORE, ... of one pilot stream): its jobs
    move between the resource types, so it is judged on their total. Per hour, the slots
    are those of the resource with the most (a series zero-filled is counted), the sums
    and the squares of the total are summed over the slots: squares of a total are not
    the sum of squares, so the total's noise comes from its resources' in quadrature.
    Returns the totals' buckets (their squares go into `squares`) and their resources."""
    resources: dict[tuple[str, str], list[QueueKey]] = defaultdict(list)
    for key in buckets:
        resources[key[:2]].append(key)
    out, parts = {}, {}
    for (queue, label), keys in resources.items():
        if len(keys) < 2:
            continue
        parts[(queue, label, ALL)] = tuple(sorted(key[2] for key in keys))
        total: dict[int, tuple[int, list[float]]] = {}
        squared: dict[int, list[float]] = {}
        for bucket in {b for key in keys for b in buckets[key]}:
            entries = [buckets[key][bucket] for key in keys if bucket in buckets[key]]
            slots = max(entry[0] for entry in entries)
            total[bucket] = (slots, [sum(column) for column in
                                     zip(*(entry[1] for entry in entries), strict=True)])
            squared[bucket] = _summed_squares(
                [(buckets[key][bucket], squares[key].get(bucket)) for key in keys
                 if bucket in buckets[key]], slots)
        out[(queue, label, ALL)] = total
        squares[(queue, label, ALL)] = squared
    return out, parts


def _summed_squares(parts: list[tuple[tuple[int, list[float]], list[float] | None]],
                    slots: int) -> list[float]:
    """Sums of squares for a total whose 10-minute variance is the sum of its parts'
    (independent noise): slots · mean² + (slots - 1) · Σ variance, per NOISE_STATUSES."""
    out = []
    for n, at in enumerate(NOISE_AT):
        mean = sum(entry[1][at] for entry, _ in parts) / slots
        variance = sum(_variance(entry, sq, n, at) for entry, sq in parts
                       if sq is not None and entry[0] > 1)
        out.append(slots * mean * mean + (slots - 1) * variance)
    return out


def _variance(entry: tuple[int, list[float]], squares: list[float], n: int, at: int) -> float:
    """The sample variance of one hour's 10-minute counts of a status (at: its index in
    HISTORY_STATUSES, n: in NOISE_STATUSES), from their count, sum and sum of squares."""
    slots, sums = entry
    return max(0.0, (squares[n] - sums[at] * sums[at] / slots) / (slots - 1))


def gather(engine: Engine, slot: datetime, coverage_min: float, baseline_hours: int,
           seasonal_days: int = 0, seasonal_min_days: int = 3
           ) -> tuple[dict[QueueKey, QueueNumbers], int]:
    """Every queue's current counts, 1h-24h averages and robust baseline (time-of-day aware
    where enough whole days are kept): one query, and one more for the days' shapes."""
    hours = max(max(HOURLY_WINDOWS.values()), baseline_hours)
    buckets: dict[QueueKey, dict[int, tuple[int, list[float]]]] = defaultdict(dict)
    squares: dict[QueueKey, dict[int, list[float]]] = defaultdict(dict)
    width = len(HISTORY_STATUSES)
    for row in history.history_buckets(engine, slot, hours):
        queue, label, resource, bucket, slots, *sums = row
        numbers_of = [float(x or 0.0) for x in sums]
        buckets[(queue, label, resource)][bucket] = (slots, numbers_of[:width])
        squares[(queue, label, resource)][bucket] = numbers_of[width:]
    totals, parts = _totals(buckets, squares)
    buckets.update(totals)
    spans = {*HOURLY_WINDOWS.values(), baseline_hours}
    numbers = {}
    for key, by_bucket in buckets.items():
        n = QueueNumbers()
        n.parts = parts.get(key, ())
        if -1 in by_bucket:
            n.current = dict(zip(HISTORY_STATUSES, by_bucket[-1][1], strict=True))
        windows = _windows(by_bucket, spans)
        for name, span in HOURLY_WINDOWS.items():
            slots, sums = windows[span]
            n.coverage[name] = slots / (span * SLOTS_PER_HOUR)
            n.averages[name] = {status: sums[i] / slots for status, i in
                                zip(AVERAGED_STATUSES, AVERAGED_AT, strict=True)} \
                if slots and n.coverage[name] >= coverage_min else None
        base = [by_bucket[b] for b in range(baseline_hours) if b in by_bucket]
        slots, sums = windows[baseline_hours]
        n.baseline_coverage = slots / (baseline_hours * SLOTS_PER_HOUR)
        n.baseline = {status: robust([entry[1][i] / entry[0] for entry in base], sums[i], slots)
                      # a rule reads the median and quartiles of these only (the others'
                      # mean): ~12,600 keys' sorts a cycle are not spent on the rest
                      if status in SEASONAL_STATUSES else Stats(sums[i] / slots if slots else 0.0,
                                                           slots)
                      for i, status in enumerate(HISTORY_STATUSES)}
        n.noise = ten_minute_noise(by_bucket, squares[key], baseline_hours)
        numbers[key] = n
    if not seasonal_days:
        return numbers, 1
    seasonal(numbers, history.day_shapes(engine, slot, seasonal_days), coverage_min,
             seasonal_min_days)
    return numbers, 2


def seasonal(numbers: dict[QueueKey, QueueNumbers], rows: Sequence[Any], coverage_min: float,
             min_days: int) -> None:
    """The time-of-day baseline of SEASONAL_STATUSES (see the module's text) in place of the
    24 h quartiles, for every key with `min_days` days whose hours and whose slot's clock
    hour are covered. `rows` are history.day_shapes'; a unified queue's total sums its
    resources' means per day."""
    width = len(SEASONAL_STATUSES)
    days: dict[QueueKey, dict[int, list[float]]] = defaultdict(dict)
    summed: dict[tuple[QueueKey, int], int] = defaultdict(int)  # a total's resources per day
    for queue, label, resource, day, hours, slots_at_hour, *means in rows:
        if hours < coverage_min * 24 or (slots_at_hour or 0) < coverage_min * SLOTS_PER_HOUR:
            continue
        values = [float(x or 0.0) for x in means]
        days[(queue, label, resource)][day] = values
        total = (queue, label, ALL)
        if total in numbers and resource in numbers[total].parts:
            before = days[total].get(day, [0.0] * 2 * width)
            days[total][day] = [a + b for a, b in zip(before, values, strict=True)]
            summed[(total, day)] += 1
    for (total, day), count in summed.items():
        if count < len(numbers[total].parts):  # a resource uncovered that day: no total
            del days[total][day]
    for key, by_day in days.items():
        n = numbers.get(key)
        if n is None or len(by_day) < min_days:
            continue
        for i, status in enumerate(SEASONAL_STATUSES):
            ratios = sorted(v[width + i] / v[i] for v in by_day.values() if v[i] > 0)
            base, middle = n.baseline.get(status), median(ratios)
            if len(ratios) < min_days or base is None or middle is None:
                continue
            level = base.mean
            # the wider half of the ratios' quartiles, on both sides: they are previous days',
            # which today's anomaly does not touch, and of 3 ratios the nearest-rank p75 is
            # the median itself (no spread at all above it)
            low, high = (percentile(ratios, q) for q in (25, 75))  # None of one ratio
            half = max(middle - (middle if low is None else low),
                       (middle if high is None else high) - middle)
            n.baseline[status] = Stats(base.mean, base.count, level * (middle - half),
                                       level * middle, level * (middle + half))
            n.seasonal[status] = len(ratios)


def gather_daily(store: TimeSeriesStore, slot: datetime, coverage_min: float
                 ) -> tuple[dict[QueueKey, dict[str, tuple[dict | None, float]]], int]:
    """7d and 30d averages over whole days of "1d" data: {key: {window: (averages, coverage)}}."""
    day = slot.replace(hour=0, minute=0, second=0, microsecond=0)
    out: dict[QueueKey, dict[str, tuple[dict | None, float]]] = defaultdict(dict)
    for name, days in DAILY_WINDOWS.items():
        query = GroupedQuery("jobs", "jobs", KEY_TAGS, "1d", day - timedelta(days=days), day,
                             86400, only=("job_status", AVERAGED_STATUSES))
        by_key: dict[QueueKey, dict[str, Stats]] = defaultdict(dict)
        for (queue, label, resource, status), stats in store.grouped_stats(query).items():
            by_key[(queue, label, resource)][status] = stats
        for key, statuses in by_key.items():
            coverage = max(s.count for s in statuses.values()) / days
            averages = {status: statuses[status].mean if status in statuses else 0.0
                        for status in AVERAGED_STATUSES} if coverage >= coverage_min else None
            out[key][name] = (averages, coverage)
    return out, len(DAILY_WINDOWS)


WINDOW_NAMES = (*HOURLY_WINDOWS, *DAILY_WINDOWS)
assert SLOT == timedelta(minutes=60 // SLOTS_PER_HOUR)
