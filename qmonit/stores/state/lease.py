"""The leader's lease: with two installations on the same stores, one runs each job.

One row per job kind (`cycle`: collect then derive; `hourly`; `daily`): who holds it,
until when, and the newest slot it has claimed. A daemon runs a slot only while it
holds the lease and only if no holder claimed that slot before: the claim is made
before the run, so a slot is never run by two hosts (and one whose holder died in the
middle of it is not run again: it was written, in part, once). The holder renews
its leases every third of their life; a standby takes one over once it lapsed, which
is within a slot when the leader dies or hangs. Plain rows and single-statement
updates, so it works the same on MySQL/MariaDB and on SQLite (one host).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Engine, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from qmonit.stores.state.metadata import metadata

DAEMON_ONLY = frozenset({"leases"})  # a cron installation runs without them

leases = Table(
    "leases", metadata,
    Column("job", String(16), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # epoch seconds
    Column("claimed_slot", BigInteger, nullable=False),  # epoch seconds; 0: none yet
)


@dataclass(frozen=True)
class Lease:
    job: str
    holder: str
    expires_at: int
    claimed_slot: int


def acquire(engine: Engine, job: str, holder: str, now: int, ttl_s: int) -> bool:
    """Take or renew the lease of `job` for `holder`: True when held until now + ttl_s."""
    until = now + ttl_s
    with engine.begin() as conn:
        taken = conn.execute(update(leases).where(
            leases.c.job == job,
            (leases.c.holder == holder) | (leases.c.expires_at < now),
        ).values(holder=holder, expires_at=until)).rowcount
        if taken:
            return True
        if conn.execute(select(leases.c.job).where(leases.c.job == job)).first():
            return False  # someone else holds it
    try:
        with engine.begin() as conn:
            conn.execute(insert(leases).values(job=job, holder=holder, expires_at=until,
                                               claimed_slot=0))
    except IntegrityError:
        return False  # another host inserted it first
    return True


def claim(engine: Engine, job: str, holder: str, slot: int, now: int) -> bool:
    """Claim `slot` of `job` for a run: only the live holder, only a slot newer than every
    one claimed before."""
    with engine.begin() as conn:
        return bool(conn.execute(update(leases).where(
            leases.c.job == job, leases.c.holder == holder, leases.c.expires_at >= now,
            leases.c.claimed_slot < slot,
        ).values(claimed_slot=slot)).rowcount)


def release(engine: Engine, holder: str) -> None:
    """Give up every lease of `holder` (a clean stop): the standby need not wait."""
    with engine.begin() as conn:
        conn.execute(update(leases).where(leases.c.holder == holder).values(expires_at=0))


def held(engine: Engine) -> list[Lease]:
    with engine.connect() as conn:
        return [Lease(*row) for row in conn.execute(
            select(leases.c.job, leases.c.holder, leases.c.expires_at, leases.c.claimed_slot)
            .order_by(leases.c.job))]
