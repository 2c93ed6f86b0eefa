"""The CRIC snapshot in use (`queues`) and the latest count of every PanDA job status per
panda_queue x prod_source x resource (`queue_stats`, the table the Suspicious sites
dashboard reads); collect writes them, derive adds its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    Double,
    Engine,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)

from qmonit.core.model import (
    AVERAGE_WINDOWS,
    AVERAGED_STATUSES,
    PANDA_JOB_STATUSES,
    RULES,
)
from qmonit.core.sample import SLOT, Sample
from qmonit.stores.sql import naive, upsert, utc
from qmonit.stores.state.metadata import metadata

QUEUE_COLUMNS = ("atlas_site", "cloud", "country", "tier", "queue_status", "site_state",
                 "queue_type", "resource_type", "pilot_manager", "harvester", "rc")


queues = Table(
    "queues", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("panda_resource", String(128)),
    *(Column(name, String(128)) for name in QUEUE_COLUMNS),
    Column("corecount", Integer),
    Column("corepower", Double),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


queue_stats = Table(
    "queue_stats", metadata,
    Column("panda_queue", String(128), primary_key=True),
    Column("prod_source", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("atlas_site", String(128)),
    Column("cloud", String(64)),
    Column("queue_status", String(32)),
    Column("site_state", String(32)),
    *(Column(status, Double) for status in PANDA_JOB_STATUSES),
    Column("slot_time", DateTime(timezone=True), nullable=False),
    # written by the derive job: moving averages (NULL: insufficient coverage), flags
    *(Column(f"{status}_avg_{window}", Double) for status in AVERAGED_STATUSES
      for window in AVERAGE_WINDOWS),
    *(Column(f"coverage_{window}", Double) for window in AVERAGE_WINDOWS),
    *(Column(f"{rule}_flag", String(16)) for rule in RULES),
    Column("flag_reason", Text),
    Column("derived_at", DateTime(timezone=True)),
    Column("daily_for", DateTime(timezone=True)),  # the day the 7d/30d averages are for
)


def upsert_queues(engine: Engine, rows: Sequence[dict]) -> None:
    with engine.begin() as conn:
        upsert(conn, queues, list(rows), ["panda_queue"])


def newest_slot(engine: Engine, now: datetime) -> datetime | None:
    """The slot the current-state tables describe (None when empty). Rows of slots that have
    not begun yet (a clock or an --at once set in the future) are passed over: they must
    not keep the present from updating the state."""
    begun = now + SLOT
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(queue_stats.c.slot_time))
                              .where(queue_stats.c.slot_time < naive(begun))
                              ).scalar_one()
    return utc(newest)


QueueCounts = dict[tuple[str, str, str], tuple[dict[str, str], dict[str, float]]]


def counts_per_queue(job_samples: Sequence[Sample]) -> QueueCounts:
    """One pass over `jobs` samples: per panda_queue × prod_source × resource, the tags of its
    first sample and the jobs of every status summed (topology variants included)."""
    out: QueueCounts = {}
    for sample in job_samples:
        tags = dict(sample.tags)
        key = (tags["panda_queue"], tags["prod_source"], tags["resource"])
        if key not in out:
            out[key] = (tags, {})
        counts = out[key][1]
        status = tags["job_status"]
        counts[status] = counts.get(status, 0.0) + float(dict(sample.fields)["jobs"])
    return out


def upsert_queue_stats(engine: Engine, counts: QueueCounts, slot: datetime) -> int:
    """Current count of every job status per queue × prod_source × resource; absent = 0."""
    rows = [{"panda_queue": key[0], "prod_source": key[1], "resource": key[2],
             "atlas_site": tags.get("atlas_site"), "cloud": tags.get("cloud"),
             "queue_status": tags.get("queue_status"), "site_state": tags.get("site_state"),
             "slot_time": slot,
             **{status: by_status.get(status, 0.0) for status in PANDA_JOB_STATUSES}}
            for key, (tags, by_status) in counts.items()]
    with engine.begin() as conn:
        upsert(conn, queue_stats, rows, ["panda_queue", "prod_source", "resource"])
    return len(rows)


def queue_topology(engine: Engine) -> dict[str, dict[str, str]]:
    """queue_status, site_state, atlas_site, cloud, tier, pilot_manager and harvester (the
    instance) of every queue, by CRIC name and by panda_resource."""
    out: dict[str, dict[str, str]] = {}
    names = ("queue_status", "site_state", "atlas_site", "cloud", "tier", "pilot_manager",
             "harvester")
    with engine.connect() as conn:
        for row in conn.execute(select(queues.c.panda_queue, queues.c.panda_resource,
                                       *(queues.c[name] for name in names))):
            where = {name: getattr(row, name) for name in names}
            if row.panda_resource:
                out.setdefault(row.panda_resource, where)
            out[row.panda_queue] = where
    return out


def update_derived(engine: Engine, rows: Sequence[dict]) -> None:
    """Moving averages, coverage and flags into queue_stats (the counts are collect's)."""
    with engine.begin() as conn:
        upsert(conn, queue_stats, list(rows), ["panda_queue", "prod_source", "resource"])
