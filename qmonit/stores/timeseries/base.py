"""What every time-series store promises, and how a write can fail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from qmonit.core.sample import Sample

if TYPE_CHECKING:
    from qmonit.core.levels import Choice
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
    # time.monotonic() by which the running job must be done (None: no deadline); the
    # durable writer sets it, the store spools rather than outlive it
    until: float | None
    # whether the roll-ups can run in the store's own server (SELECT ... INTO); the
    # embedded store has no server: its roll-ups are the client path's SQL
    rolls_up_in_server: bool
    # the server the points live in, by its product name ("influxdb"): `qmonit check` probes
    # it; None when the points are tables of the state store (checked as "sql" already)
    server: str | None

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

    # the roll-ups' server path and the roll-up buffer's lines (rolls_up_in_server)

    def version(self) -> str:
        """The server's version ('1.6.7'); decides the roll-up path when mode = auto."""

    def write_lines(self, lines: Iterable[str], retention: str) -> WriteResult:
        """Line protocol encoded already (the roll-up buffer's windows)."""

    def rollup_into(self, measurement: str, window: Window, start: datetime,
                    spec: RollupSpec = ...) -> int:
        """The server path: the window rolled up inside the server; the points written."""

    def levels_into(self, base: str, window: Window, start: datetime,
                    spec: RollupSpec = ...) -> int:
        """The server path's level totals of `base` for the window; the points written."""

    # what Grafana reads from the store itself (`qmonit init`)

    def write_grafana_tables(self, up_to: Sequence[tuple[str, float]],
                             choices: Sequence[Choice]) -> list[str]:
        """The tables the dashboards' variables read from the store (which retention policy
        serves which range, the level choices); lines saying what was written, none when the
        store's dashboards need no such table."""

    def create_reader(self, user: str, password: str) -> list[str]:
        """A read-only account for Grafana's datasource (a server store only: `server`);
        lines saying what was done."""

    def reader_statements(self, user: str, password: str) -> list[str]:
        """The statements an administrator runs when create_reader was refused."""
