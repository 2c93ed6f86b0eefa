"""Write-time aggregates: the per-queue series summed at the coarse levels the dashboards show.

A dashboard panel over all 790 queues of ATLAS would otherwise sum ~52,000 series every
time it is drawn, and its cost would grow with the number of queues, not with what it
shows. Each `Level` is its own measurement (`jobs_by_state`, ...) holding, per slot, the
sum of every numeric field of the base measurement's series over the tags the level
drops (`suspicious_flagged` drops none: it keeps the points of the findings that raised
a flag, which the Suspicious Sites panels read instead of every finding judged). A
measurement per level (rather than one with a `level` tag) keeps each level's series,
tag values and field keys apart, so a Grafana variable or panel reading a level
never touches another level's series, and the roll-ups treat levels as what they are:
derived, never rolled up from their own raw points.

The rule is one and the same everywhere: a level's point is the sum, per field, of the
base measurement's points of its group at the same time in the same retention policy.
collect applies it to the slot's samples (zero-filled series included, so a vanished
group sums to an explicit 0); the hourly and daily roll-ups apply it to the rolled-up
per-series points (sum of means, sum of maxima), so a panel shows the same number from a
level as from the per-queue series at every resolution.

`Choice` is what a dashboard's hidden variable resolves: for a panel's filters and
split, the cheapest level that has every tag a filter not on All, and the split, need.
`qmonit init` writes the choices into the "meta" retention policy (`meta.levels`), and
the variable reads it the way `$rp` reads `meta.rp_config`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from math import isfinite
from operator import itemgetter
from typing import cast

from qmonit.core.sample import Sample

Numbers = tuple[tuple[str, float], ...]  # a sample's fields without its text fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # one object per level: hashed by identity, in C (the
class Level:                        # generated hash of its fields was a third of the summing)
    measurement: str
    base: str  # the measurement it sums
    tags: tuple[str, ...]  # the tags it keeps
    above: tuple[str, float] | None = None  # (field, value): only points with field > value


# Per base measurement, from the finest level to the coarsest (the cheapest to read).
LEVELS = (
    Level("jobs_by_queue", "jobs", ("panda_queue", "atlas_site", "cloud", "tier", "state")),
    Level("jobs_by_status", "jobs", ("cloud", "prod_source", "resource_type", "state",
                                     "job_status")),
    Level("jobs_by_state", "jobs", ("cloud", "tier", "prod_source", "resource_type", "state")),
    Level("jobs_grid", "jobs", ("prod_source", "resource_type", "state", "job_status")),
    Level("workers_by_cloud", "workers", ("factory", "factory_type", "cloud", "worker_status",
                                          "state")),
    Level("batch_jobs_by_partition", "batch_jobs", ("cluster", "scheduler", "partition",
                                                    "state", "reason")),
    # every tag kept: the findings that raised a flag, out of ~15,000 series judged a cycle
    Level("suspicious_flagged", "suspicious", ("panda_queue", "atlas_site", "cloud",
                                               "prod_source", "resource", "rule", "severity"),
          above=("flagged", 0.0)),
)
DERIVED = frozenset(level.measurement for level in LEVELS)
BASES = frozenset(level.base for level in LEVELS)


def levels_of(base: str) -> list[Level]:
    return [level for level in LEVELS if level.base == base]


class Aggregator:
    """Sums numeric fields into every level of their base measurement, per group and time."""

    def __init__(self, levels: Iterable[Level] = LEVELS):
        self._levels: dict[str, list[Level]] = {}
        for level in levels:
            self._levels.setdefault(level.base, []).append(level)
        # per (measurement, tag keys): (level, picks the level's (tag, value) pairs) pairs
        self._pickers: dict[tuple, list[tuple[Level, Callable]]] = {}
        # (level, group's (tag, value) pairs, time) -> {field: total}
        self._sums: dict[tuple[Level, tuple, datetime], dict[str, float]] = {}

    def _pickers_for(self, measurement: str, keys: tuple[str, ...]) -> list[tuple]:
        pickers = self._pickers.get((measurement, keys))
        if pickers is None:
            pickers = []
            for level in self._levels.get(measurement, ()):
                wanted = [n for n, key in enumerate(keys) if key in level.tags]
                pick = (itemgetter(*wanted) if len(wanted) > 1 else
                        (lambda tags, n=wanted[0]: (tags[n],)) if wanted else (lambda tags: ()))
                pickers.append((level, pick))
            self._pickers[(measurement, keys)] = pickers
        return pickers

    def groups(self, measurement: str,
               tags: tuple[tuple[str, str], ...]) -> list[tuple[Level, tuple]]:
        """The (level, group's (tag, value) pairs) a series of `measurement` is summed into."""
        return [(level, pick(tags)) for level, pick in
                self._pickers_for(measurement, tuple([k for k, _ in tags]))]

    def add(self, measurement: str, tags: tuple[tuple[str, str], ...],
            fields: Iterable[tuple[str, float | str]], time: datetime) -> None:
        """One point of `measurement`; `tags` sorted by key, as a Sample holds them."""
        self.add_samples([Sample(measurement, tags, tuple(fields), time)])

    def add_totals(self, level: Level, group: tuple[tuple[str, str], ...],
                   numbers: Iterable[tuple[str, float]], time: datetime) -> None:
        """Numbers already summed elsewhere (or one point's) into one group of `level`."""
        key = (level, group, time)
        totals = self._sums.get(key)
        if totals is None:
            self._sums[key] = dict(numbers)
            return
        for name, value in numbers:
            totals[name] = totals.get(name, 0.0) + value

    def merge(self, other: Aggregator) -> None:
        """Add another aggregator's sums to these."""
        for (level, group, time), totals in other._sums.items():
            self.add_totals(level, group, totals.items(), time)

    def add_samples(self, samples: Iterable[Sample]) -> Aggregator:
        """Every numeric field of these samples into each level of their measurement (one
        loop, inlined: ~4,000 samples a cycle of the small grid, ~60,000 at ATLAS scale)."""
        levels, sums, pickers_for = self._levels, self._sums, self._pickers_for
        pickers: dict[tuple, list[tuple[Level, Callable]]] = {}
        for measurement, tags, fields, time in samples:
            if measurement not in levels:
                continue
            keys = tuple(map(_first, tags))
            chosen = pickers.get((measurement, keys))
            if chosen is None:
                chosen = pickers[(measurement, keys)] = pickers_for(measurement, keys)
            for _, value in fields:
                if value.__class__ is str:  # text fields are not summed
                    fields = tuple([(k, v) for k, v in fields if v.__class__ is not str])
                    break
            if not fields:
                continue
            numbers = cast(Numbers, fields)  # text fields were dropped just above
            for level, pick in chosen:
                if level.above is not None and not _above(numbers, *level.above):
                    continue
                key = (level, pick(tags), time)
                totals = sums.get(key)
                if totals is None:
                    sums[key] = dict(numbers)
                    continue
                for name, number in numbers:
                    totals[name] = totals.get(name, 0.0) + number
        return self

    def samples(self) -> list[Sample]:
        """One point per level, group and time; a tag a member lacks is left out, as InfluxDB's
        GROUP BY leaves it out of SELECT ... INTO. A sum that is not finite (members checked
        at parse time cannot reach it; a sum of 1e308s could) is reported and left out: no
        store may get inf (SQLite keeps it, MariaDB refuses the whole batch)."""
        out = []
        for (level, tags, time), totals in self._sums.items():
            if not all(map(isfinite, totals.values())):
                bad = {k: v for k, v in totals.items() if not isfinite(v)}
                log.warning("level %s %s at %s: sum %s is not finite; point not written",
                            level.measurement, dict(tags), time.isoformat(), bad)
                continue
            out.append(Sample(level.measurement, tags, tuple(sorted(totals.items())), time))
        return out


_first = itemgetter(0)


def _above(numbers: Iterable[tuple[str, float]], name: str, floor: float) -> bool:
    return any(key == name and value > floor for key, value in numbers)


def aggregate(samples: Iterable[Sample]) -> list[Sample]:
    """The level points of these samples (samples of other measurements are passed over)."""
    return Aggregator().add_samples(samples).samples()


LEVEL_NAMED = {level.measurement: level for level in LEVELS}


def combined(level_points: Iterable[Iterable[Sample]]) -> list[Sample]:
    """The level points of several sets of samples summed into one set, as `aggregate` of
    all the samples together gives them: collect sums each source's answer when it comes
    (the fetch), then the zeros it adds, and combines them (a member's numbers go in in
    the same order, and a zero adds exactly nothing)."""
    total = Aggregator()
    for points in level_points:
        for measurement, tags, fields, time in points:
            # level points hold numbers only (the sums of add_samples)
            total.add_totals(LEVEL_NAMED[measurement], tags, cast(Numbers, fields), time)
    return total.samples()


# -- what Grafana's hidden variables choose from ---------------------------------------------

ALL = "__all__"  # a choice row's filter value: the filter must be on All
ANY = "any"  # the level has the tag: any value of the filter will do


@dataclass(frozen=True)
class Choice:
    """A dashboard variable `name` naming the measurement its panels read."""

    name: str
    base: str
    filters: tuple[tuple[str, str], ...]  # (Grafana variable, tag it filters)
    group_by: tuple[str, ...]  # the tags its panels may be split by
    split: str  # the variable ($group_by) or the fixed tag (one of group_by) they split by

    def candidates(self) -> list[tuple[str, frozenset[str] | None]]:
        """The base measurement (it has every tag: None) then its levels, cheapest last."""
        return [(self.base, None)] + [(level.measurement, frozenset(level.tags))
                                      for level in levels_of(self.base)]

    def rows(self) -> Iterator[tuple[int, dict[str, str], str]]:
        """(order, tags, measurement) of the meta.levels points: the highest order that
        matches the selection is the cheapest level that answers it."""
        order = 0
        for measurement, tags in self.candidates():
            for split in self.group_by:
                if tags is not None and split not in tags:
                    continue
                row = {"choice": self.name, "group_by": split}
                for variable, tag in self.filters:
                    row[variable] = ANY if tags is None or tag in tags else ALL
                yield order, row, measurement
                order += 1

    def query(self) -> str:
        """InfluxQL of the Grafana variable: the last (cheapest) level the selection allows.

        A filter on All is `.*`, which matches the ALL marker; one value or several do not,
        so only the levels that have that tag (ANY) stay in."""
        where = [f"\"choice\" = '{self.name}'", f"\"group_by\" = '{self.split}'"]
        where += [f"(\"{variable}\" = '{ANY}' OR \"{variable}\" =~ /^${variable}$/)"
                  for variable, _ in self.filters]
        return f'SELECT last("measurement") FROM "meta"."levels" WHERE {" AND ".join(where)}'


JOB_FILTERS = (("cloud", "cloud"), ("tier", "tier"), ("site", "atlas_site"),
               ("queue", "panda_queue"), ("prod_source", "prod_source"),
               ("resource_type", "resource_type"), ("state", "state"))
JOB_SPLITS = ("cloud", "atlas_site", "panda_queue", "prod_source", "resource_type",
              "job_status")
WORKER_FILTERS = (("factory", "factory"), ("cloud", "cloud"), ("queue", "panda_queue"))
BATCH_FILTERS = (("cluster", "cluster"), ("partition", "partition"), ("owner", "owner"))

CHOICES = (
    # the panels not split, or split by state (every level has it)
    Choice("jobs_m", "jobs", JOB_FILTERS, ("state",), split="state"),
    Choice("jobs_split_m", "jobs", JOB_FILTERS, JOB_SPLITS, split="$group_by"),
    Choice("jobs_status_m", "jobs", JOB_FILTERS, ("job_status",), split="job_status"),
    # split by worker_status or factory (both in every level)
    Choice("workers_m", "workers", WORKER_FILTERS, ("worker_status",), split="worker_status"),
    # split by partition, state or reason (all in every level)
    Choice("batch_jobs_m", "batch_jobs", BATCH_FILTERS, ("reason",), split="reason"),
)


def choice(name: str) -> Choice:
    return next(c for c in CHOICES if c.name == name)


def choose(name: str, selected: dict[str, bool], split: str | None = None) -> str:
    """What the variable resolves to, in Python: `selected` says per filter whether it is on
    All (True) or narrowed (False). For tests and the benchmark."""
    best = None
    one = choice(name)
    split = split or one.split
    for order, row, measurement in one.rows():
        if row["group_by"] != split:
            continue
        if all(row[variable] == ANY or selected.get(variable, True)
               for variable, _ in one.filters):
            best = (order, measurement)
    if best is None:
        raise KeyError(f"{name}: no level answers group_by {split}")
    return best[1]

