"""Clocks for driving `qmonit daemon` faster than the wall clock: the daemon's own clock
and the `schedule` library's (which reads datetime.datetime.now()) both follow it."""

from __future__ import annotations

import datetime as real
import threading
import time
import types
from collections.abc import Callable

import schedule


class _Shim(types.ModuleType):
    """What `schedule` sees as the datetime module: the real one, but now() is ours."""


def follow(now_utc: Callable[[], real.datetime]) -> Callable[[], None]:
    """Make `schedule` read `now_utc` (naive UTC, as under TZ=UTC); returns the undo."""

    class FakeDatetime(real.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206
            moment = now_utc()
            return moment.replace(tzinfo=None) if tz is None else moment.astimezone(tz)

    shim = _Shim("datetime")
    shim.__dict__.update({k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
    shim.datetime = FakeDatetime
    before = schedule.datetime
    schedule.datetime = shim

    def undo() -> None:
        schedule.datetime = before
    return undo


class FakeClock:
    """Time moves only when someone sleeps (or a fake job advances it)."""

    def __init__(self, start: real.datetime):
        self.moment = start
        self.undo = follow(lambda: self.moment)

    def now(self) -> real.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += real.timedelta(seconds=seconds)

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        self.advance(max(seconds, 0.0))


class FastClock:
    """Wall time `factor` times faster, from a common origin: processes given the same
    (start, origin_wall, factor) share one clock."""

    def __init__(self, start: real.datetime, origin_wall: float, factor: float):
        self.start, self.origin_wall, self.factor = start, origin_wall, factor
        self.undo = follow(self.now)

    def now(self) -> real.datetime:
        return self.start + real.timedelta(seconds=(time.time() - self.origin_wall)
                                           * self.factor)

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(max(seconds, 0.0) / self.factor)
