"""What every time-series store promises, and how a write can fail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from qmonit.core.sample import Sample

if TYPE_CHECKING:
    from qmonit.core.rollup_spec import RollupSpec, Window
    from qmonit.stores.timeseries.aggregate import GroupedQuery, Stats

RETENTION_POLICIES = ("10m", "1h", "1d")


class StoreUnavailable(Exception):
    """The store could not take the points now (down, timed out, 5xx, auth): spool and replay."""


@dataclass
class Rejection:
    """Points the store refused as invalid (4xx): retrying cannot help; kept aside, reported."""

    reason: str
    first_line: str
    points: int
    lines: tuple[str, ...] = ()  # every line refused, as far as the store says which

    def kept(self) -> tuple[str, ...]:
        """The lines to keep aside: all refused, else the first."""
        return self.lines or (self.first_line,)


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    unwritten: list[Sample] = field(default_factory=list)
    error: str | None = None

    def merge(self, other: WriteResult) -> None:
        self.written += other.written
        self.rejected.extend(other.rejected)
        self.unwritten.extend(other.unwritten)
        self.error = self.error or other.error


class TimeSeriesStore(Protocol):
    def location(self) -> str:
        """Where the points go, without secrets."""

    def init(self, durations: dict[str, str]) -> list[str]:
        """Create the database and retention policies (idempotent); return what was done."""

    def write(self, samples: Sequence[Sample], retention: str = "10m") -> WriteResult:
        """Write in batches; what could not be written comes back in `unwritten`."""

    def check(self) -> str:
        """Reach the store and authenticate; return a one-line status or raise."""

    # what derive and the roll-ups ask of a store (aggregation runs in the store)

    def grouped_stats(self, query: GroupedQuery) -> dict[tuple[str, ...], Stats]:
        """Mean and count per group over a window, for every group in one query."""

    def last_time(self, measurement: str, field: str, tags: dict[str, str],
                  rp: str = "10m") -> datetime | None:
        """The newest time a series with these tags has `field`."""

    def measurements(self) -> list[str]:
        """Every measurement written so far."""

    def first_time(self, measurement: str, rp: str) -> datetime | None:
        """The oldest point of a measurement in a retention policy."""

    def window_aggregates(self, measurement: str, window: Window, start: datetime,
                          spec: RollupSpec = ...) -> list[Sample]:
        """The spec's statistics of every numeric field per series for one window (the
        roll-up client path; the spec is qmonit/core/rollup_spec.py's ROLLUP unless given)."""
