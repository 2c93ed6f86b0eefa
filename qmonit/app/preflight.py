"""`qmonit init` and `qmonit check`: the stores made ready, every endpoint reached."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from qmonit.collect.components import Components
from qmonit.core.config import Config, duration_seconds
from qmonit.core.levels import CHOICES
from qmonit.sources.base import Source, SourceError
from qmonit.stores.sql import describe_db_error, safe_db_url
from qmonit.stores.state import metadata, schema
from qmonit.stores.timeseries.base import StoreUnavailable
from qmonit.stores.timeseries.influx import InfluxQueryError
from qmonit.stores.timeseries.spool import DAMAGED


def _collected(source: Source, now: datetime) -> str:
    """One line of what the source gives collect: its queues (PanDA, pilots), counts, jobs."""
    collection = source.collect(now)
    queues = {s.tag("panda_queue") for s in collection.samples} - {None, ""}
    said = ["answers"] + ([f"{len(queues)} queues"] if queues else []) + \
        [f"{len(collection.samples)} counts"] + \
        ([f"{len(collection.jobs)} jobs"] if collection.jobs else [])
    if collection.problems:
        said.append(f"{len(collection.problems)} record(s) skipped")
    return ", ".join(said)


def init(_args: argparse.Namespace, parts: Components) -> int:
    durations = parts.cfg.settings.influxdb.retentions()
    try:
        changed = schema.create_tables(parts.engine)
        for change in changed:
            print(f"state store {safe_db_url(parts.engine)}: {change}")
        if not changed:
            print(f"state store {safe_db_url(parts.engine)}: tables present, nothing to change")
        for line in parts.store.init(durations):
            print(f"{parts.store.location()}: {line}")
        for line in parts.store.write_grafana_tables(rp_ranges(parts.cfg), CHOICES):
            print(f"{parts.store.location()}: {line}")
        from qmonit.grafana import readers
        done, todo = readers.setup(parts.cfg, parts.engine, parts.store)
        for line in done:
            print(line)
        for line in todo:
            print(f"qmonit init: {line}", file=sys.stderr)
        if todo:
            return 1
    except SQLAlchemyError as exc:
        print(f"qmonit init failed: state store: {describe_db_error(exc)}", file=sys.stderr)
        return 1
    except (StoreUnavailable, InfluxQueryError) as exc:
        print(f"qmonit init failed: {exc}", file=sys.stderr)
        return 1
    return 0


def rp_ranges(cfg: Config) -> list[tuple[str, float]]:
    """Which retention policy Grafana reads up to which time range, in seconds."""
    return [("10m", duration_seconds(cfg.settings.grafana.raw_up_to)),
            ("1h", duration_seconds(cfg.settings.grafana.hourly_up_to)),
            ("1d", float("inf"))]


def check(_args: argparse.Namespace, parts: Components) -> int:
    """Reach every configured endpoint; say per endpoint what answers, never a secret."""
    results: list[tuple[str, str, str]] = []  # (what, where, status)

    def probe(name: str, where: str, action: Callable[[], str]) -> None:
        try:
            results.append((name, where, action()))
        except (SourceError, StoreUnavailable, InfluxQueryError) as exc:
            results.append((name, where, f"FAILED: {exc}"))
        except SQLAlchemyError as exc:
            results.append((name, where, f"FAILED: {describe_db_error(exc)}"))

    def sql_ok() -> str:
        with parts.engine.connect() as conn:
            conn.execute(select(1))
            missing = [t for t in metadata.metadata.tables
                       if not parts.engine.dialect.has_table(conn, t)]
        return "answers" + (f"; tables missing: {', '.join(missing)} (run `qmonit init`)"
                            if missing else ", tables present")

    probe("sql", safe_db_url(parts.engine), sql_ok)
    from qmonit.grafana import readers
    reader = readers.reader_engine(parts.cfg, parts.engine)
    if reader is not None:
        probe("sql reader", safe_db_url(reader), lambda: readers.backslash_status(reader))
        reader.dispose()
    if parts.store.server:
        probe(parts.store.server, parts.store.location(), parts.store.check)
    now = parts.clock.now()
    for source in parts.sources:  # what collect does with each, summed up
        probe(source.name, source.origin, partial(_collected, source, now))
    if parts.topology.origin:  # CRIC itself, never its snapshot
        probe(parts.topology.name, parts.topology.origin, parts.topology.probe)
    pending = parts.spool.files()
    spooled = f"{len(pending)} file(s) pending" if pending else "empty"
    damaged = parts.spool.damaged()
    if damaged:  # points were lost: said until someone looks (`qmonit spool status`)
        spooled += (f"; {len(damaged)} damaged file(s) moved aside in "
                    f"{parts.spool.directory / DAMAGED}")
    results.append(("spool", str(parts.spool.directory), spooled))
    width = max(len(name) for name, _, _ in results)
    for name, where, status in results:
        print(f"{name.ljust(width)}  {where}  {status}")
    return 1 if any(status.startswith("FAILED") for _, _, status in results) else 0
