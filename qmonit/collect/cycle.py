"""The collect job: sources -> enrich -> zero-fill -> time-series store and state store.

One run handles one 10-minute slot. The spool is replayed first, oldest first.
A source that fails writes nothing for itself (not even zeros) and is recorded in
`qmonit_run`; everything else is still written, and the exit code says 1.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from qmonit.collect.components import Components
from qmonit.collect.factory_labels import label_rows
from qmonit.collect.fetch import SlotFetch, SourceAnswer, fetch
from qmonit.collect.zerofill import zero_samples
from qmonit.core.levels import aggregate, combined
from qmonit.core.rollup_spec import RESOLUTIONS
from qmonit.core.sample import Sample, make_sample, run_sample, slot_start
from qmonit.sources.cric import Topology
from qmonit.sources.scheduler_health import MEASUREMENT as SCHEDULER
from qmonit.sources.scheduler_health import counter_rates
from qmonit.stores.sql import state_step
from qmonit.stores.state import history, queues, series, watermarks
from qmonit.stores.state.batch import (
    SchedulerKey,
    keep_scheduler_readings,
    scheduler_readings,
    sync_jobs,
    sync_node_reasons,
    sync_reservations,
)
from qmonit.stores.state.status import record_run_samples, replace_factory_labels
from qmonit.stores.timeseries.durable import Delivery
from qmonit.stores.timeseries.spool import ReplayResult
from qmonit.support.files import write_text_atomic
from qmonit.support.gc_pause import gc_paused

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    source: str
    status: str  # ok | failed | cached (topology from the last snapshot) | missing
    points: int = 0
    zero_filled: int = 0
    errors: int = 0
    duration_s: float = 0.0
    message: str = ""


@dataclass
class CollectReport:
    slot: datetime
    sources: list[SourceReport] = field(default_factory=list)
    delivery: Delivery = field(default_factory=Delivery)
    replay: ReplayResult = field(default_factory=ReplayResult)
    state_errors: list[str] = field(default_factory=list)
    unknown_queues: set[str] = field(default_factory=set)
    spool_bytes: int = 0
    levels: int = 0  # write-time aggregate points (qmonit/core/levels.py)
    duration_s: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(
            any(s.status != "ok" for s in self.sources)
            or self.delivery.errors or self.state_errors or self.replay.error
            or self.replay.damaged
        )

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _topology_report(topology: Topology, duration_s: float) -> SourceReport | None:
    if topology.status == "unconfigured":
        return None
    status = {"fresh": "ok", "cached": "cached", "missing": "failed"}[topology.status]
    return SourceReport("cric", status, points=len(topology.queues),
                        errors=0 if status == "ok" else 1, duration_s=duration_s,
                        message="" if status == "ok" else topology.message)


def _queue_rows(topology: Topology, now: datetime) -> list[dict]:
    rows = []
    for name, q in topology.queues.items():
        rows.append({
            "panda_queue": name, "panda_resource": q.panda_resource,
            **{column: getattr(q, column) for column in queues.QUEUE_COLUMNS},
            "corecount": q.corecount, "corepower": q.corepower, "updated_at": now,
        })
    return rows


def run_samples(report: CollectReport, job: str = "collect") -> list[Sample]:
    """The pipeline watching itself: one `qmonit_run` point per source and one for the sinks."""
    out = []
    for src in report.sources:
        out.append(run_sample(job, src.source, report.slot, {
            "duration_s": src.duration_s, "points": src.points, "errors": src.errors,
            "zero_filled": src.zero_filled}, [src.message] if src.message else [], src.status))
    delivery = report.delivery
    errors = delivery.errors + report.state_errors + report.replay.damaged + (
        [report.replay.error] if report.replay.error else [])
    out.append(run_sample(job, "sinks", report.slot, {
        "duration_s": report.duration_s, "points": delivery.written,
        "errors": len(errors), "spool_bytes": report.spool_bytes,
        "spooled": delivery.spooled, "rejected": delivery.rejected,
        "lost": delivery.lost + report.replay.lost,
        "replayed": report.replay.points, "levels": report.levels,
    }, errors))
    return out


@gc_paused()  # see gc_pause: the cycle's objects die by reference count
def collect(parts: Components, slot: datetime, fetched: SlotFetch | None = None
            ) -> CollectReport:
    """Collect the slot holding `slot`; a source or sink failure is reported, not raised.
    `fetched`: the sources' answers for this slot, when they were asked beforehand."""
    slot = slot_start(slot)
    if fetched is not None and fetched.slot != slot:
        raise ValueError(f"collect of {slot:%Y-%m-%d %H:%M} UTC given the sources' answers "
                         f"for {fetched.slot:%Y-%m-%d %H:%M} UTC")
    started = time.monotonic()
    report = CollectReport(slot)
    marker = parts.cfg.data_dir / RUNNING
    unfinished = _unfinished_run(marker)
    if unfinished:
        report.state_errors.append(unfinished)
    _mark_running(marker, slot)
    parts.writer.set_deadline(parts.cfg.settings.collect.deadline_s)
    report.replay, errors = replay_spool(parts)
    report.state_errors.extend(errors)
    zero_fill_horizon = timedelta(hours=parts.cfg.settings.collect.zero_fill_hours)
    if fetched is None:
        fetched = fetch(parts, slot)
    topo_report = _topology_report(fetched.topology, fetched.topology_s)
    if topo_report:
        report.sources.append(topo_report)
    report.unknown_queues = fetched.unknown_queues

    data: list[Sample] = []
    jobs: list[Sample] = []
    level_points: list[list[Sample]] = []
    kept_ids = parts.kept_ids  # the embedded store's: the write asks for the fetch's ids
    for answer in fetched.answers:
        if answer.samples is None:
            log.error("source %s failed, nothing written for it: %s", answer.source,
                      answer.message)
            report.sources.append(SourceReport(answer.source, "failed", errors=1,
                                               duration_s=answer.duration_s,
                                               message=answer.message))
            continue
        clock = time.monotonic()
        for problem in answer.problems:
            log.warning(problem)
        samples = answer.samples
        ids = answer.series_ids
        if ids is None:
            ids = list(map(parts.series_ids, samples))
        elif kept_ids is not None:
            kept_ids.remember(samples, ids)
        if any(s.measurement == SCHEDULER for s in samples):  # counters -> rates
            samples = answer.samples = _with_rates(parts, samples, slot, report)
        zeros = _zero_fill(parts, answer.source, dict(zip(ids, samples, strict=True)), slot,
                           zero_fill_horizon, report)
        level_points += [aggregate(samples) if answer.levels is None else answer.levels,
                         aggregate(zeros)]
        samples += zeros
        if answer.source == "panda":
            jobs = samples
        data.extend(samples)
        report.sources.append(SourceReport(
            answer.source, "ok", points=len(samples), zero_filled=len(zeros),
            errors=len(answer.problems),
            duration_s=answer.duration_s + time.monotonic() - clock,
        ))
    if report.unknown_queues:
        shown = ", ".join(sorted(report.unknown_queues)[:10])
        more = len(report.unknown_queues) - 10
        log.warning("%d queue(s) unknown to CRIC, tagged unknown: %s%s",
                    len(report.unknown_queues), shown, f" and {more} more" if more > 0 else "")

    # the coarse levels the dashboards read, summed from the same samples (zeros included)
    levels = combined(level_points)
    report.levels = len(levels)
    report.delivery = parts.writer.write(data + levels)
    if kept_ids is not None:
        kept_ids.forget()
    _update_state(parts, fetched.topology, jobs, slot, report)
    _sync_batch_jobs(parts, fetched.answers, report)
    _update_factory_labels(parts, data, jobs, report)
    report.spool_bytes = parts.spool.size_bytes()
    report.duration_s = time.monotonic() - started
    runs = run_samples(report)
    run_delivery = parts.writer.write(runs)
    report.delivery.merge(run_delivery)
    record_run_samples(parts.engine, runs, report.slot, parts.clock.now())
    parts.writer.set_deadline(None)
    marker.unlink(missing_ok=True)
    return report


RUNNING = "collect.running"  # in data_dir while a collect runs: left behind, it was killed


def _unfinished_run(marker: Path) -> str | None:
    """What a collect that never finished (killed, crashed, the host went down) left
    untold: its slot may be partly written."""
    try:
        slot = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        slot = f"an unknown slot ({exc})"
    message = (f"the collect of {slot} did not finish (killed or crashed): that slot may be "
               "partly written; `qmonit run collect --at` it again if its sources still "
               "know it")
    log.error(message)
    return message


def _mark_running(marker: Path, slot: datetime) -> None:
    try:
        write_text_atomic(marker, f"{slot:%Y-%m-%dT%H:%MZ}\n")
    except OSError as exc:  # a full disk: the run goes on, unmarked
        log.warning("collect: %s not written (%s); a kill of this run would go unnoticed",
                    marker, exc)


def _replay(parts: Components) -> ReplayResult:
    """Replay the spool; whatever goes wrong there, this slot is still collected (and
    spooled behind what is pending if the store is down)."""
    try:
        return parts.writer.replay()
    except Exception as exc:  # a bug or an unforeseen fault must not stop collection
        log.exception("spool replay failed; the slot is collected all the same")
        return ReplayResult(error=f"spool replay failed: {type(exc).__name__}: {exc}")


def _update_factory_labels(parts: Components, data: list[Sample], jobs: list[Sample],
                           report: CollectReport) -> None:
    rows = label_rows(data, jobs, parts.clock.now())
    with state_step(report.state_errors, "factory_labels not updated", log):
        replace_factory_labels(parts.engine, rows)


def _with_rates(parts: Components, samples: list[Sample], slot: datetime,
                report: CollectReport) -> list[Sample]:
    """Each scheduler daemon's reading with its counters' rates since its last reading (a
    counter Slurm reset at midnight or `sdiag -r` counts from the reset, never below zero);
    the readings kept for the next cycle. The state store failing costs only the rates."""
    out = list(samples)
    with state_step(report.state_errors, "batch_scheduler rates not computed", log):
        before = scheduler_readings(parts.engine)
        now: dict[SchedulerKey, tuple[datetime, dict]] = {}
        for number, sample in enumerate(samples):
            if sample.measurement != SCHEDULER:
                continue
            key = (sample.tag("cluster") or "", sample.tag("daemon") or "",
                   sample.tag("daemon_name") or "")
            fields = dict(sample.fields)
            last = before.get(key)
            if last is not None and last[0] > slot:  # an older slot collected (--at): the
                continue  # newer reading stays the one the next cycle compares with
            now[key] = (slot, fields)
            if last is None or last[0] == slot:  # a first reading, or a slot collected again
                continue
            rates, problems = counter_rates(last[1], fields, (slot - last[0]).total_seconds())
            for problem in problems:
                log.warning("%s %s: %s", key[0], key[1], problem)
            out[number] = make_sample(SCHEDULER, dict(sample.tags), {**fields, **rates},
                                      sample.time)
        keep_scheduler_readings(parts.engine, now)
    return out


def _sync_batch_jobs(parts: Components, answers: list[SourceAnswer],
                     report: CollectReport) -> None:
    """The job-level tables of every scheduler source that answered this cycle."""
    keep = timedelta(days=parts.cfg.settings.collect.ended_jobs_days)
    for answer in answers:
        if answer.samples is None or answer.jobs is None:
            continue
        with state_step(report.state_errors,
                        f"batch_jobs_current of {answer.cluster} not updated", log):
            sync_jobs(parts.engine, answer.cluster, answer.source, answer.jobs,
                      report.slot, keep)  # the slot's time, like every point of it
        if answer.nodes is not None:
            with state_step(report.state_errors,
                            f"batch_node_reasons of {answer.cluster} not updated", log):
                sync_node_reasons(parts.engine, answer.cluster, answer.nodes, report.slot)
        if answer.reservations is not None:
            with state_step(report.state_errors,
                            f"batch_reservations of {answer.cluster} not updated", log):
                sync_reservations(parts.engine, answer.cluster, answer.reservations,
                                  report.slot)


def replay_spool(parts: Components) -> tuple[ReplayResult, list[str]]:
    """Replay the spool, and rewind the roll-up watermarks to the oldest point that came
    late, so the next hourly and daily runs roll those windows up again (collect and
    `qmonit spool replay` alike). Returns the replay and the state store's errors."""
    result = _replay(parts)
    if result.oldest is None:
        return result, []
    widths = {job: int(r.width.total_seconds()) for job, r in RESOLUTIONS.items()}
    errors: list[str] = []
    with state_step(errors, "roll-ups not rewound for late points", log):
        watermarks.rewind_watermarks(parts.engine, result.oldest, widths)
    return result, errors


def _zero_fill(parts: Components, source: str, present: dict[int, Sample], slot: datetime,
               horizon: timedelta, report: CollectReport) -> list[Sample]:
    """Zeros for the series of `source` that vanished; `present`: its samples by series id."""
    zeros: list[Sample] = []
    with state_step(report.state_errors, f"zero-fill of {source} skipped", log):
        zeros = zero_samples(series.seen_and_vanished(parts.engine, source, present, slot,
                                                     horizon), slot)
    return zeros


def _update_state(parts: Components, topology: Topology, jobs: list[Sample], slot: datetime,
                  report: CollectReport) -> None:
    with state_step(report.state_errors, log=log):
        _write_queue_state(parts, topology, jobs, slot)


def _write_queue_state(parts: Components, topology: Topology, jobs: list[Sample],
                       slot: datetime) -> None:
    """derive's history, then (unless a later slot was written) queues and queue_stats."""
    counts = queues.counts_per_queue(jobs)
    if counts:  # the derive job's history; backfilled slots belong in it too
        keep = timedelta(hours=max(24, parts.cfg.settings.derive.baseline_hours) + 1)
        days = parts.cfg.settings.derive.seasonal_days  # whole days before today's
        history.record_history(parts.engine, counts, slot, keep,
                               timedelta(days=days + 1) if days else timedelta(0))
    newest = queues.newest_slot(parts.engine, parts.clock.now())
    if newest is not None and slot < newest:
        log.info("slot %s is older than the current state (%s): queues and queue_stats "
                 "left as they are", f"{slot:%Y-%m-%d %H:%M}", f"{newest:%Y-%m-%d %H:%M}")
        return
    if topology.status == "fresh":
        queues.upsert_queues(parts.engine, _queue_rows(topology, slot))
    if counts:
        queues.upsert_queue_stats(parts.engine, counts, slot)
