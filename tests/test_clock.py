"""One clock, injected: a run records the time its Components' clock gives, not the wall
clock's (the daemon's scheduler and the tests give their own)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.core import config
from qmonit.stores.state import schema
from qmonit.stores.state.status import source_status

T = datetime(2026, 11, 21, 10, 3, 7, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return T

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        raise AssertionError("not asked to sleep")


def test_a_collect_records_its_run_at_the_components_clock(tmp_path):
    parts = build(config.defaults({"sources": {"enabled": "simulated"},
                                   "qmonit": {"data_dir": str(tmp_path)}}))
    parts.clock = FixedClock()
    schema.create_tables(parts.engine)
    collect(parts, datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    with parts.engine.connect() as conn:
        ran = {row.source: row.last_run_at for row in conn.execute(
            select(source_status.c.source, source_status.c.last_run_at))}
    assert ran == {"cric": T.replace(tzinfo=None), "panda": T.replace(tzinfo=None),
                   "sinks": T.replace(tzinfo=None)}
