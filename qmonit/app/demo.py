"""`qmonit demo`: a simulated grid through the real collect path into SQLite, and a report."""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from qmonit.app import report
from qmonit.app.suspicious import render as render_suspicious
from qmonit.collect.components import Components, build
from qmonit.collect.cycle import collect
from qmonit.collect.fetch import SlotFetch, fetch
from qmonit.core import config
from qmonit.core.sample import SLOT, epoch_seconds, slot_start
from qmonit.datadisk.job import placement_summary, run_datadisk
from qmonit.derive.job import derive
from qmonit.derive.notify import describe
from qmonit.stores.state import alerts, schema
from qmonit.support.clock import Clock, SystemClock
from qmonit.support.files import private_dir, write_text_atomic


def demo_config(directory: Path, scale: str, seed: int) -> config.Config:
    return config.defaults({
        "qmonit": {"data_dir": str(directory)},
        "sources": {"enabled": "simulated, simulated_batch", "simulated_scale": scale,
                    "simulated_seed": str(seed)},
        "logging": {"level": "ERROR"},
    })


MARK = ".qmonit-demo"  # the directory is one `qmonit demo` made: its own files may go
OWN_FILES = ("qmonit.sqlite", "qmonit.sqlite-wal", "qmonit.sqlite-shm", "qmonit.sqlite-journal")


def _prepare(directory: Path) -> str:
    """Make `directory` ready for a fresh demo, deleting only the demo's own files, and only
    in a directory a demo made; "" or the reason it cannot be used (nothing was deleted)."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        return f"{directory}: not a directory; nothing was changed: give a new or empty --dir"
    if directory.is_dir() and not (directory / MARK).is_file() and any(directory.iterdir()):
        return (f"{directory}: not empty and not made by `qmonit demo`; nothing was deleted: "
                f"give a new or empty --dir")
    private_dir(directory)
    write_text_atomic(directory / MARK, "made by `qmonit demo`: it deletes only its own "
                      f"files here ({', '.join(OWN_FILES)})\n")
    for name in OWN_FILES:
        (directory / name).unlink(missing_ok=True)
    return ""


DERIVE_HOURS = 8  # derive after each of the last cycles: by then the 24 h baseline is 70% full
AHEAD = 2  # slots fetched ahead of the one being written


_fetcher: Components | None = None  # the fetching process's own sources


def _start_fetcher(cfg: config.Config) -> None:
    global _fetcher
    _fetcher = build(cfg)


def _fetch(slot: datetime) -> SlotFetch:
    assert _fetcher is not None
    return fetch(_fetcher, slot)


@contextmanager
def _answers(cfg: config.Config, slots: list[datetime], serial: bool
             ) -> Iterator[Iterator[SlotFetch | None]]:
    """Every slot's sources asked, in order, in a second process AHEAD slots in front of the
    one being written (None for each slot when `serial`: collect asks them itself). On a real
    grid the sources are other machines; here their simulation and parsers run while the
    slot before is written. The process keeps its sources' state from slot to slot (a
    scheduler's jobs, a factory's pilots), as collect's own would."""
    if serial:
        yield iter([None] * len(slots))
        return
    context = multiprocessing.get_context("fork")  # started before any engine is opened
    with ProcessPoolExecutor(1, context, initializer=_start_fetcher, initargs=(cfg,)) as pool:
        pending = deque(pool.submit(_fetch, slot) for slot in slots[:AHEAD + 1])

        def in_order() -> Iterator[SlotFetch]:
            for slot in slots[AHEAD + 1:]:
                answer = pending.popleft().result()
                pending.append(pool.submit(_fetch, slot))
                yield answer
            while pending:
                yield pending.popleft().result()

        yield in_order()


PROGRESS_EVERY_S = 10.0  # not on a terminal: a progress line this often


def run_demo(directory: Path, hours: int = 24, scale: str = "small", seed: int = 1,
             now: datetime | None = None, out: TextIO = sys.stdout,
             serial: bool = False, clock: Clock | None = None) -> int:
    """Start from an empty demo directory, collect every slot of the last `hours` (derive after
    each of the last DERIVE_HOURS of them), and report. The sources are asked in a second
    process, slots ahead, unless `serial`. A directory it did not make must be empty: it
    never deletes what it did not make (exit 2)."""
    problem = _prepare(directory)
    if problem:
        print(f"qmonit demo: {problem}", file=sys.stderr)
        return 2
    cfg = demo_config(directory, scale, seed)
    clock = clock or SystemClock()
    last = slot_start(now or clock.now())
    slots = [last - SLOT * i for i in reversed(range(hours * 6))]
    started = time.monotonic()
    reports = []
    progress = sys.stderr.isatty()
    said = started
    derive_s = 0.0
    derived = 0
    derive_from = last - timedelta(hours=DERIVE_HOURS) + SLOT
    with _answers(cfg, slots, serial) as answers:
        parts = build(cfg, clock)
        assert parts.store.server is None  # demo_config names no [influxdb] url
        schema.create_tables(parts.engine)
        parts.store.init({})
        for number, (slot, fetched) in enumerate(zip(slots, answers, strict=True), 1):
            reports.append(collect(parts, slot, fetched))
            if slot >= derive_from:
                began = time.monotonic()
                derive(parts, slot)
                derive_s += time.monotonic() - began
                derived += 1
            if progress:
                print(f"\rcollecting {slot:%Y-%m-%d %H:%M} UTC  [{number}/{len(slots)}]",
                      end="", file=sys.stderr, flush=True)
            elif time.monotonic() - said >= PROGRESS_EVERY_S or number == len(slots):
                said = time.monotonic()  # piped or under cron: a log line now and then
                print(f"{clock.now():%Y-%m-%dT%H:%M:%SZ} INFO qmonit demo: collected "
                      f"{number} of {len(slots)} cycles (slot {slot:%Y-%m-%d %H:%M} UTC) in "
                      f"{said - started:.0f} s", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    placement = run_datadisk(parts, last)
    elapsed = time.monotonic() - started
    failed = [r for r in reports if any(s.status == "failed" for s in r.sources)]
    written = sum(r.delivery.written for r in reports)
    zero_filled = sum(s.zero_filled for r in reports for s in r.sources)
    latest = next(r for r in reversed(reports) if not any(s.status == "failed"
                                                            for s in r.sources))
    when = epoch_seconds(latest.slot)
    grid = parts.grid
    assert grid is not None  # demo_config enables the simulated sources only
    print(f"qmonit demo: simulated grid ({scale}, seed {seed}), {len(grid.queues)} PanDA queues, "
          f"{len(slots)} ten-minute cycles from {slots[0]:%Y-%m-%d %H:%M} to "
          f"{last:%Y-%m-%d %H:%M} UTC in {elapsed:.1f} s\n", file=out)
    print(f"Jobs per cloud and state at {latest.slot:%Y-%m-%d %H:%M} UTC:", file=out)
    print(report.cloud_state_table(parts.engine, when), "\n", file=out)
    print("Top queues by running jobs:", file=out)
    print(report.top_queues_table(parts.engine, when), "\n", file=out)
    print("Pilots and workers per factory and state:", file=out)
    print(report.pilots_table(parts.engine, when), "\n", file=out)
    print("Batch clusters now (batch_jobs_current):", file=out)
    print(report.batch_table(parts.engine), "\n", file=out)
    print(f"Points written: {written:,} ({zero_filled:,} of them zero-fill for series "
          f"that vanished); {report.point_count(parts.engine):,} field values stored.", file=out)
    for r in failed:
        reasons = "; ".join(s.message for s in r.sources if s.status == "failed")
        print(f"Cycle {r.slot:%H:%M} UTC: {reasons} — nothing written for it, recorded in "
              f"qmonit_run.", file=out)
    print(f"Stored in: {cfg.sql_url} (tables ts_points, ts_series, ts_tags; state: queues, "
          f"queue_stats, alerts, batch_jobs_current, batch_jobs_ended, source_status, "
          f"factory_labels)", file=out)
    print(f"DAOD placement at {placement.hour:%Y-%m-%d %H:%M} UTC (the datadisk job, \"1h\"): "
          f"{placement_summary(placement)}", file=out)
    print(f"\nSuspicious sites at {last:%Y-%m-%d %H:%M} UTC (derive ran after each of the last "
          f"{derived} cycles, {derive_s:.1f} s in all):", file=out)
    print(render_suspicious(parts.engine, parts.clock.now()), end="", file=out)
    closed = alerts.closed_since(parts.engine, slots[0])
    if closed:
        print("\nClosed during the run:", file=out)
        for alert in closed:
            print(f"  {describe(alert)}", file=out)
    print("\nGrafana: `qmonit dashboards build -o DIR` writes every dashboard and its "
          "provisioning files; `qmonit dashboards push` uploads them (see README, "
          "Dashboards).", file=out)
    return 0
