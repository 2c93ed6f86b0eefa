"""Flag states and the alert history, in the SQL state store.

`flag_state` holds the hysteresis of every flag that is open or recently violated;
`alerts` one row per time a flag opened: when, why, when it closed, when the shift
crew was last told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Double,
    Engine,
    Integer,
    Row,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    select,
    tuple_,
    update,
)

from qmonit.core.flags import FlagState
from qmonit.stores.sql import upsert, utc
from qmonit.stores.state.metadata import metadata

# Suspicious-site flags: the hysteresis of every flag open or recently violated, and one
# alert row per time a flag opened (when, why, when it closed, when the crew was told).
KEY_COLUMNS = ("panda_queue", "prod_source", "resource", "rule")


def _flag_key(primary_key: bool) -> list[Column]:
    """The columns that name a flag: new Column objects for each table."""
    return [Column(name, String(length), primary_key=primary_key, nullable=False)
            for name, length in zip(KEY_COLUMNS, (128, 64, 64, 16), strict=True)]


flag_state = Table(
    "flag_state", metadata,
    *_flag_key(primary_key=True),
    Column("history", String(64), nullable=False),
    Column("is_open", Boolean, nullable=False),
    Column("last_slot", DateTime(timezone=True), nullable=False),
    Column("history_before", String(64), nullable=False),
    Column("open_before", Boolean, nullable=False),
)


alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *_flag_key(primary_key=False),
    Column("severity", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("current", Double),
    Column("baseline", Double),
    Column("score", Double),
    Column("metric", String(64)),  # what current and baseline measure ("running jobs")
    Column("layer", String(32)),  # the layer likely at fault (derive.layers) and why
    Column("layer_evidence", Text),
    # open (violated at as_of), recovering (open, its last judged cycle clean), unjudged
    # (open, its source stale: not judged since as_of), closed
    Column("status", String(16)),
    Column("as_of", DateTime(timezone=True)),  # the slot current and baseline are from
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_notified_at", DateTime(timezone=True)),
    Column("notified_open", Boolean, nullable=False, default=False),
    Column("notified_close", Boolean, nullable=False, default=False),
    UniqueConstraint("panda_queue", "prod_source", "resource", "rule", "opened_at",
                     name="uq_alerts_flag_opened"),
)

FlagKey = tuple[str, str, str, str]  # panda_queue, prod_source, resource, rule


@dataclass(frozen=True)
class Alert:
    id: int
    key: FlagKey
    severity: str
    reason: str
    current: float | None
    baseline: float | None
    score: float | None
    opened_at: datetime
    closed_at: datetime | None
    last_notified_at: datetime | None
    notified_open: bool
    notified_close: bool
    metric: str | None = None  # what current and baseline measure, in one unit
    layer: str | None = None  # the layer likely at fault, and the evidence for it
    layer_evidence: str | None = None
    status: str | None = None  # open | recovering | unjudged | closed
    as_of: datetime | None = None  # the slot current and baseline are from

    def state(self) -> str:
        """open, recovering, unjudged or closed (an alert of an older version: from
        closed_at)."""
        if self.closed_at is not None:
            return "closed"
        return self.status or "open"

    def open_minutes(self, now: datetime) -> int:
        """How long it has been open: until it closed, or until `now`."""
        return max(0, int(((self.closed_at or now) - self.opened_at).total_seconds() // 60))


def load_flags(engine: Engine) -> dict[FlagKey, FlagState]:
    with engine.connect() as conn:
        return {tuple(row[:4]): FlagState(row.history, bool(row.is_open), utc(row.last_slot),
                                          row.history_before, bool(row.open_before))
                for row in conn.execute(select(flag_state))}


def save_flags(engine: Engine, states: dict[FlagKey, FlagState], gone: list[FlagKey]) -> None:
    rows = [dict(zip(KEY_COLUMNS, key, strict=True), history=s.history, is_open=s.is_open,
                 last_slot=s.last_slot, history_before=s.history_before,
                 open_before=s.open_before) for key, s in states.items()]
    with engine.begin() as conn:
        upsert(conn, flag_state, rows, KEY_COLUMNS)
        for start in range(0, len(gone), 500):
            chunk = gone[start:start + 500]
            conn.execute(delete(flag_state).where(
                tuple_(*(flag_state.c[c] for c in KEY_COLUMNS)).in_(chunk)))


def _row_to_alert(row: Row[Any]) -> Alert:
    return Alert(row.id, (row.panda_queue, row.prod_source, row.resource, row.rule),
                 row.severity, row.reason, row.current, row.baseline, row.score,
                 utc(row.opened_at), utc(row.closed_at), utc(row.last_notified_at),
                 bool(row.notified_open), bool(row.notified_close), row.metric, row.layer,
                 row.layer_evidence, row.status, utc(row.as_of))


def _key_filter(key: FlagKey) -> ColumnElement[bool]:
    return and_(*(alerts.c[c] == v for c, v in zip(KEY_COLUMNS, key, strict=True)))


def record(engine: Engine, opened: list[tuple[FlagKey, dict]], updated: list[tuple[FlagKey, dict]],
           closed: list[FlagKey], slot: datetime) -> None:
    """Open new alerts (idempotent per slot), refresh open ones, close the ones that cleared."""
    with engine.begin() as conn:
        rows = [dict(zip(KEY_COLUMNS, key, strict=True), opened_at=slot, notified_open=False,
                     notified_close=False, status="open", as_of=slot, **details)
                for key, details in opened]
        upsert(conn, alerts, rows, ["panda_queue", "prod_source", "resource", "rule",
                                    "opened_at"])
        for key, details in updated:
            if not details:
                continue
            conn.execute(update(alerts).where(_key_filter(key), alerts.c.closed_at.is_(None))
                         .values(**details))
        for key in closed:
            conn.execute(update(alerts).where(_key_filter(key), alerts.c.closed_at.is_(None))
                         .values(closed_at=slot, status="closed"))


def mark_unjudged(engine: Engine) -> int:
    """The open alerts of queues (not of sources), while the source they are judged on is
    stale: their numbers are of their as_of slot, and nothing says whether they still hold."""
    with engine.begin() as conn:
        return conn.execute(update(alerts).where(
            alerts.c.closed_at.is_(None), ~alerts.c.panda_queue.startswith("source:"))
            .values(status="unjudged")).rowcount


def open_alerts(engine: Engine) -> list[Alert]:
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.closed_at.is_(None))
                            .order_by(alerts.c.opened_at, alerts.c.id))
        return [_row_to_alert(r) for r in rows]


def opened_between(engine: Engine, start: datetime, end: datetime) -> list[Alert]:
    """Every alert opened in [start, end), open or closed, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.opened_at >= start,
                                                 alerts.c.opened_at < end)
                            .order_by(alerts.c.opened_at, alerts.c.id))
        return [_row_to_alert(r) for r in rows]


def closed_since(engine: Engine, since: datetime) -> list[Alert]:
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(alerts.c.closed_at >= since)
                            .order_by(alerts.c.opened_at, alerts.c.id))
        return [_row_to_alert(r) for r in rows]


def to_notify(engine: Engine) -> list[Alert]:
    """Alerts whose opening or closing the crew has not been told about, plus all open ones."""
    with engine.connect() as conn:
        rows = conn.execute(select(alerts).where(
            (alerts.c.closed_at.is_(None)) | (alerts.c.notified_close.is_(False)))
            .order_by(alerts.c.opened_at, alerts.c.id))
        return [_row_to_alert(r) for r in rows]


def mark_notified(engine: Engine, opened: list[int], closed: list[int], repeated: list[int],
                  when: datetime) -> None:
    with engine.begin() as conn:
        if opened:
            conn.execute(update(alerts).where(alerts.c.id.in_(opened))
                         .values(notified_open=True, last_notified_at=when))
        if closed:
            conn.execute(update(alerts).where(alerts.c.id.in_(closed))
                         .values(notified_close=True, last_notified_at=when))
        if repeated:
            conn.execute(update(alerts).where(alerts.c.id.in_(repeated))
                         .values(last_notified_at=when))
