"""What a roll-up computes, stated once: every path that rolls up is built from a RollupSpec.

Four paths compute the same roll-up and must agree to the bit: InfluxDB's SELECT ... INTO
(the server path), the same SELECT queried and written back (the client path, InfluxDB
2.x/3.x), the embedded store's SQL, and the roll-up buffer's SQLite (the hourly job's
usual path with InfluxDB). Each builds its query or computation from `ROLLUP` (or a spec
handed to it), so a statistic, a level or a window is added here and nowhere else;
tests/test_rollup_paths.py runs the four on the same points against exact values.

The rule: for each window of a `Window` (closed, aligned to its width from the epoch),
each series of each measurement in the window's source retention policy (all tags kept)
gets, per numeric field (text fields are not rolled up), one field per `Statistic` of the
field's points in the window (`jobs` the mean, `jobs_max` the maximum), as floats, at the
window's start, in the target retention policy. Both windows read the raw "10m" data: a
day's mean is the mean of its cycles, not of its hours' means, which would weigh an hour
with a failed cycle like a full one. A level (qmonit/core/levels.py) is never rolled up from
its own raw points: after each window of its base measurement, each statistic field of
the base's rolled-up points is totalled (`level_total`) per level group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from qmonit.core.levels import LEVELS, Level


@dataclass(frozen=True)
class Statistic:
    """One number a rolled-up field gets per series and window, named in each dialect."""

    suffix: str  # appended to the field's name; "" keeps the name
    influxql: str  # InfluxQL's function (the server and client paths)
    sql: str  # the SQL aggregate (the embedded store, the roll-up buffer's SQLite)

    def field(self, name: str) -> str:
        """The rolled-up field this statistic of field `name` is written as."""
        return name + self.suffix


@dataclass(frozen=True)
class Window:
    """A roll-up job: the width of its windows, where it reads and where it writes."""

    job: str  # the job's name: hourly | daily
    source_rp: str  # the retention policy its windows are read from
    rp: str  # the retention policy it writes into
    width: timedelta
    limit_key: str  # [downsample] key bounding the windows per run
    buffered: bool  # whether the roll-up buffer (one table per hour) may serve its windows

    @property
    def width_s(self) -> int:
        return int(self.width.total_seconds())


@dataclass(frozen=True)
class RollupSpec:
    statistics: tuple[Statistic, ...]
    numeric_types: frozenset[str]  # InfluxDB field types rolled up; the others are passed over
    level_total: str  # how a level adds up its members' statistics (InfluxQL and SQL alike)
    levels: tuple[Level, ...]
    windows: tuple[Window, ...]

    def fields(self, name: str) -> list[str]:
        """The rolled-up fields of raw field `name`, in the order of the statistics."""
        return [statistic.field(name) for statistic in self.statistics]

    def window(self, job: str) -> Window:
        for window in self.windows:
            if window.job == job:
                return window
        raise KeyError(f"no roll-up job {job!r}; the jobs are "
                       f"{', '.join(w.job for w in self.windows)}")

    @property
    def derived(self) -> frozenset[str]:
        """The level measurements: summed from rolled-up points, never rolled up themselves."""
        return frozenset(level.measurement for level in self.levels)

    def levels_of(self, base: str) -> tuple[Level, ...]:
        return tuple(level for level in self.levels if level.base == base)


ROLLUP = RollupSpec(
    statistics=(Statistic("", influxql="mean", sql="avg"),
                Statistic("_max", influxql="max", sql="max")),
    numeric_types=frozenset({"float", "integer"}),
    level_total="sum",
    levels=LEVELS,
    windows=(Window("hourly", "10m", "1h", timedelta(hours=1), "max_hourly_windows",
                    buffered=True),
             Window("daily", "10m", "1d", timedelta(days=1), "max_daily_windows",
                    buffered=False)),
)

# each job's window by name; collect rewinds the watermarks of late points by their widths
RESOLUTIONS = {window.job: window for window in ROLLUP.windows}
