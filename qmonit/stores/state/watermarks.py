"""The roll-ups' watermarks: up to where each measurement is rolled up per resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    String,
    Table,
    select,
    update,
)

from qmonit.core.sample import epoch_seconds, from_epoch
from qmonit.stores.sql import upsert
from qmonit.stores.state.metadata import metadata

# Downsampling progress: the end of the last window rolled up, per measurement and policy.
watermarks = Table(
    "watermarks", metadata,
    Column("measurement", String(64), primary_key=True),
    Column("resolution", String(8), primary_key=True),
    Column("done_until", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def watermark(engine: Engine, measurement: str, resolution: str) -> datetime | None:
    with engine.connect() as conn:
        done = conn.execute(select(watermarks.c.done_until).where(
            watermarks.c.measurement == measurement,
            watermarks.c.resolution == resolution)).scalar_one_or_none()
    return None if done is None else from_epoch(done)


def set_watermark(engine: Engine, measurement: str, resolution: str, done_until: datetime,
                  now: datetime) -> None:
    with engine.begin() as conn:
        upsert(conn, watermarks, [{"measurement": measurement, "resolution": resolution,
                                   "done_until": epoch_seconds(done_until), "updated_at": now}],
               ["measurement", "resolution"])


def rewind_watermarks(engine: Engine, late: datetime, widths: Mapping[str, int]) -> None:
    """Points older than a watermark arrived late (a replayed spool): roll their windows up
    again. widths: resolution -> window width in seconds."""
    with engine.begin() as conn:
        for resolution, width in widths.items():
            window_start = epoch_seconds(late) // width * width
            conn.execute(update(watermarks).where(watermarks.c.resolution == resolution,
                                                  watermarks.c.done_until > window_start)
                         .values(done_until=window_start))
