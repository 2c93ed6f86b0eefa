"""Writes that lose nothing: to the store, else to the spool; rejected points kept aside."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from qmonit.core.sample import Sample
from qmonit.stores.timeseries.base import Rejection, TimeSeriesStore, WriteResult
from qmonit.stores.timeseries.rollup_buffer import RollupBuffer
from qmonit.stores.timeseries.spool import ReplayResult, Spool, SpoolFull

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    written: int = 0
    spooled: int = 0
    rejected: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Delivery) -> None:
        self.written += other.written
        self.spooled += other.spooled
        self.rejected += other.rejected
        self.lost += other.lost
        self.errors.extend(other.errors)


class DurableWriter:
    """Once the store has failed, the rest of this run spools without trying it again, so a
    run with the store down costs one retry deadline, not one per write.

    Every raw ("10m") write, first try or replay, also goes to the roll-up buffer; points
    the store will never hold (rejected, or lost to a full spool) taint their windows there.
    A write marks its slots pending in the buffer first and clears the mark once the store
    (or the spool) and the buffer both have the points: a run killed in between leaves the
    mark, and the hourly job reads those windows from the store."""

    def __init__(self, store: TimeSeriesStore, spool: Spool, buffer: RollupBuffer | None = None):
        self.store = store
        self.spool = spool
        self.buffer = buffer
        self.down: str | None = None
        self.until: float | None = None  # time.monotonic() by which this job must be done
        self.deadline_s: float | None = None

    def set_deadline(self, seconds: float | None) -> None:
        """From now on, writes must be done within `seconds` (None: no deadline); past it,
        they are spooled."""
        self.deadline_s = seconds
        self.until = None if seconds is None else time.monotonic() + seconds
        self.store.until = self.until

    def _write(self, samples: Sequence[Sample], retention: str) -> WriteResult:
        """One write to the store (and the buffer), for the spool's replay."""
        pending = self._begin(samples, retention)
        result = self._store_and_buffer(samples, retention)
        self._finish(pending)
        return result

    def _buffer_for(self, retention: str) -> RollupBuffer | None:
        """The roll-up buffer keeps the raw ("10m") points only."""
        return self.buffer if retention == "10m" else None

    def _begin(self, samples: Sequence[Sample], retention: str) -> int | None:
        buffer = self._buffer_for(retention)
        return None if buffer is None else buffer.begin(samples)

    def _finish(self, pending: int | None) -> None:
        if pending is not None and self.buffer is not None:  # a pending begin had a buffer
            self.buffer.finish(pending)

    def _store_and_buffer(self, samples: Sequence[Sample], retention: str) -> WriteResult:
        buffer = self._buffer_for(retention)
        if not self.down and self.until is not None and time.monotonic() >= self.until:
            self.down = f"the job's deadline ([collect] deadline_s = {self.deadline_s:g}) passed"
        if self.down:
            if buffer is not None:
                buffer.add(samples)
            return WriteResult(unwritten=list(samples),
                               error=f"{self.down} (not tried again in this run)")
        if buffer is not None:  # while the store takes the points (waiting on the network)
            with ThreadPoolExecutor(1, thread_name_prefix="rollup-buffer") as pool:
                adding = pool.submit(buffer.add, samples)
                result = self.store.write(samples, retention)
                adding.result()
        else:
            result = self.store.write(samples, retention)
        if result.unwritten:
            self.down = result.error
        if buffer is not None and result.rejected:
            buffer.taint(samples)  # a rejection does not say which points it was
        for rejection in result.rejected:
            self._keep_aside(rejection)
        return result

    def _keep_aside(self, rejection: Rejection) -> None:
        lines = rejection.kept()
        try:
            path = self.spool.put_rejected(lines, rejection.reason)
            kept = f"{len(lines)} line(s) kept in {path}"
        except OSError as exc:
            kept = f"the lines could not be kept ({exc})"
        log.error("%s rejected %d point(s): %s; first offending line: %s (%s)",
                  self.store.location(), rejection.points, rejection.reason,
                  rejection.first_line, kept)

    def write(self, samples: Sequence[Sample], retention: str = "10m") -> Delivery:
        pending = self._begin(samples, retention)
        result = self._store_and_buffer(samples, retention)
        delivery = Delivery(written=result.written,
                            rejected=sum(r.points for r in result.rejected),
                            errors=[f"rejected: {r.reason}" for r in result.rejected])
        if result.unwritten:
            try:
                path = self.spool.put(result.unwritten, retention)
            except (SpoolFull, OSError) as exc:
                buffer = self._buffer_for(retention)
                if buffer is not None:
                    buffer.taint(result.unwritten)
                delivery.lost = len(result.unwritten)
                reason = str(exc) if isinstance(exc, SpoolFull) else (
                    f"spool {self.spool.directory} could not be written ({exc}): "
                    f"{delivery.lost} points could not be spooled and are lost")
                delivery.errors.append(reason)
                log.critical("%s; the store said: %s", reason, result.error)
            else:
                delivery.spooled = len(result.unwritten)
                delivery.errors.append(f"{result.error}; {delivery.spooled} points spooled")
                log.error("%s; %d points spooled to %s, replayed at the next run",
                          result.error, delivery.spooled, path)
        self._finish(pending)
        return delivery

    def replay(self) -> ReplayResult:
        """Start of a run: forget an earlier run's failure, then replay the spool."""
        self.down = None
        if not self.spool.files():
            return ReplayResult()
        result = self.spool.replay(self._write)
        if result.files:
            log.info("spool: replayed %d file(s), %d points to %s", result.files, result.points,
                     self.store.location())
        if result.error:
            log.warning("spool: replay stopped, %d file(s) still pending: %s",
                        len(self.spool.files()), result.error)
        return result
