"""Hourly and daily roll-ups of every measurement: closed windows only, exact, idempotent.

What a roll-up computes (the statistics per numeric field, the levels, the windows) is
stated once in qmonit/core/rollup_spec.py; this module runs it over the windows to do, on
whichever path the store and the roll-up buffer allow. Zero-fill makes every successful
cycle write every live series, so the mean over the cycles present is the right number; a
failed cycle is absent, not zero. A watermark per measurement and job in the SQL store
records the end of the last window done: a run fills every missing window oldest first, at
most [downsample] max_*_windows per run, and the next run goes on from there. Re-running a
window writes the same points at the same times: nothing changes. On InfluxDB 1.x, SELECT
... INTO runs in the server; elsewhere the statistics are queried and written back (the
client path). The hourly job reads a window from the roll-up buffer instead
(qmonit/stores/timeseries/rollup_buffer.py) where the buffer holds all of it: the same result
without reading the hour back out of the store, which is what makes an ATLAS-scale hour take
seconds, not half a minute.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from qmonit.collect.components import Components
from qmonit.core.levels import Aggregator
from qmonit.core.rollup_spec import ROLLUP, RollupSpec, Window
from qmonit.core.sample import EPOCH, run_sample
from qmonit.stores.sql import state_errors
from qmonit.stores.state import watermarks
from qmonit.stores.state.status import record_run_samples
from qmonit.stores.timeseries.base import StoreUnavailable, WriteResult
from qmonit.stores.timeseries.durable import Delivery
from qmonit.stores.timeseries.influx import InfluxQueryError

log = logging.getLogger(__name__)

@dataclass
class RollupReport:
    job: str
    mode: str
    done: dict[str, int] = field(default_factory=dict)  # measurement -> windows rolled up
    buffered: int = 0  # of them, windows read from the roll-up buffer
    points: int = 0
    pending: dict[str, int] = field(default_factory=dict)  # measurement -> windows left
    errors: list[str] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)
    duration_s: float = 0.0

    @property
    def windows(self) -> int:
        return sum(self.done.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.delivery.errors else 0


def floor_to(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((moment - EPOCH) // width) * width


def choose_mode(parts: Components) -> str:
    configured = parts.cfg.settings.downsample.mode
    if not parts.store.rolls_up_in_server:
        return "client"
    if configured != "auto":
        return configured
    return "server" if parts.store.version().startswith("1.") else "client"


def windows_to_do(done_until: datetime | None, first: datetime | None, closed_until: datetime,
                  width: timedelta, limit: int, since: datetime | None) -> tuple[list, int]:
    """The window starts to roll up now, oldest first, and how many remain after them."""
    if since is not None:
        start = floor_to(since, width)
    elif done_until is not None:
        start = done_until
    elif first is not None:
        start = floor_to(first, width)
    else:
        return [], 0
    total = max(0, int((closed_until - start) / width))
    return [start + n * width for n in range(min(total, limit))], max(0, total - limit)


def rollup(parts: Components, job: str, now: datetime, since: datetime | None = None,
           progress: bool | None = None, spec: RollupSpec = ROLLUP) -> RollupReport:
    """Roll every measurement up to the last closed window; never raises for a store failure."""
    window = spec.window(job)
    started = time.monotonic()
    closed_until = floor_to(now, window.width)
    limit = parts.cfg.settings.downsample.limit(window.limit_key)
    show = sys.stderr.isatty() if progress is None else progress
    report = RollupReport(job, "unknown")
    with state_errors() as caught:
        try:
            report.mode = choose_mode(parts)
            for measurement in sorted(set(parts.store.measurements()) - spec.derived):
                _rollup_measurement(parts, window, measurement, closed_until, limit, since,
                                    now, report, show, spec)
        except (StoreUnavailable, InfluxQueryError) as exc:
            report.errors.append(str(exc))
    if caught.error:
        report.errors.append(caught.error)
    if parts.buffer is not None and window.buffered and not report.errors:
        parts.buffer.drop_rolled_up_hours()
    if show:
        print(file=sys.stderr)
    for error in report.errors:
        log.error("%s roll-up: %s", job, error)
    report.duration_s = time.monotonic() - started
    fields: dict[str, float | str] = {"duration_s": report.duration_s, "points": report.points,
                                      "windows": report.windows, "buffered": report.buffered,
                                      "errors": len(report.errors),
                                      "pending": sum(report.pending.values())}
    run = run_sample(job, report.mode, floor_to(now, timedelta(minutes=10)), fields,
                     report.errors)
    report.delivery = parts.writer.write([run])
    record_run_samples(parts.engine, [run], run.time, parts.clock.now())
    return report


def _rollup_measurement(parts: Components, window: Window, measurement: str,
                        closed_until: datetime, limit: int, since: datetime | None,
                        now: datetime, report: RollupReport, show: bool,
                        spec: RollupSpec) -> None:
    done = watermarks.watermark(parts.engine, measurement, window.job)
    first = None if done is not None or since is not None else \
        parts.store.first_time(measurement, window.source_rp)
    starts, left = windows_to_do(done, first, closed_until, window.width, limit, since)
    if left:
        report.pending[measurement] = left
        log.warning("%s %s: %d window(s) left for the next run (at most %d per run)",
                    window.job, measurement, left, limit)
    for number, start in enumerate(starts, 1):
        end = start + window.width
        if show:
            print(f"\r{window.job} {measurement:<12} {start:%Y-%m-%d %H:%M} UTC "
                  f"[{number}/{len(starts)}]", end="", file=sys.stderr, flush=True)
        report.points += _rollup_window(parts, window, measurement, start, since, report, spec)
        report.done[measurement] = report.done.get(measurement, 0) + 1
        if done is None or end > done:
            watermarks.set_watermark(parts.engine, measurement, window.job, end, now)
        if parts.buffer is not None and window.buffered:
            parts.buffer.rolled_up(measurement, end)


def _rollup_window(parts: Components, window: Window, measurement: str, start: datetime,
                   since: datetime | None, report: RollupReport, spec: RollupSpec) -> int:
    """One window of one measurement and its levels, from the buffer where it vouches for
    the window, else in the server or through the client; returns the points written."""
    levels = spec.levels_of(measurement)
    totals = Aggregator(levels) if levels else None
    result = None
    buffer = parts.buffer if _buffer_covers(parts, window, measurement, start, since) else None
    if buffer is not None:
        try:
            result = parts.store.write_lines(
                buffer.rollup_lines(measurement, start, totals, spec), window.rp)
            report.buffered += 1
        except sqlite3.Error as exc:  # lines already posted are rewritten from the store
            log.warning("roll-up buffer: %s %s UTC not read (%s); reading the store",
                        measurement, f"{start:%Y-%m-%d %H:%M}", exc)
            totals = Aggregator(levels) if levels else None
    if result is None and report.mode == "server":
        points = parts.store.rollup_into(measurement, window, start, spec)
        if levels:  # summed in the server from what it just wrote
            points += parts.store.levels_into(measurement, window, start, spec)
        return points
    if result is None:
        samples = parts.store.window_aggregates(measurement, window, start, spec)
        result = parts.store.write(samples, window.rp)
        if totals is not None:
            totals.add_samples(samples)
    _check(result, measurement, start, window.rp)
    points = result.written
    if totals is not None:  # the levels of the series just written
        written = parts.store.write(totals.samples(), window.rp)
        _check(written, measurement, start, window.rp)
        points += written.written
    return points


def _check(result: WriteResult, measurement: str, start: datetime, rp: str) -> None:
    if result.error or result.unwritten or result.rejected:
        reason = result.error or "; ".join(r.reason for r in result.rejected)
        raise InfluxQueryError(f"{measurement} {start:%Y-%m-%d %H:%M} UTC into \"{rp}\": "
                               f"{reason}")


def _buffer_covers(parts: Components, window: Window, measurement: str, start: datetime,
                   since: datetime | None) -> bool:
    """Whether this window is read from the roll-up buffer (--since: the store)."""
    return (parts.buffer is not None and window.buffered and since is None
            and parts.buffer.covers(measurement, start, start + window.width))
