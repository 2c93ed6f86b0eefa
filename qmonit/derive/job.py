"""The derive job: moving averages, suspicious flags with hysteresis, alerts, one digest.

Run right after collect for the same slot. When a source has not collected this
slot, that is one `stale` finding for the source and nothing else is judged: an
outage is no reason to flag hundreds of queues, and their flags stay as they were.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qmonit.collect.components import Components
from qmonit.core.flags import FlagState, Hysteresis, advance
from qmonit.core.levels import aggregate
from qmonit.core.model import AVERAGED_STATUSES, RULES, UNKNOWN
from qmonit.core.sample import SLOT, Sample, make_sample, run_sample, slot_start
from qmonit.derive.batch_health import evidence_by_site
from qmonit.derive.layers import LAYER_STATUSES, Layer, Pilots, attribute
from qmonit.derive.notify import NotifyError, build_digest, notifiers
from qmonit.derive.numbers import (
    DAILY_WINDOWS,
    HOURLY_WINDOWS,
    QueueKey,
    QueueNumbers,
    gather,
    gather_daily,
)
from qmonit.derive.rules import ALL, Finding, evaluate
from qmonit.stores.sql import state_errors
from qmonit.stores.state import alerts, history, queues
from qmonit.stores.state import status as status_tables
from qmonit.stores.state.alerts import FlagKey
from qmonit.stores.state.status import record_run_samples
from qmonit.stores.timeseries.base import StoreUnavailable
from qmonit.stores.timeseries.durable import Delivery
from qmonit.stores.timeseries.influx import InfluxQueryError
from qmonit.support.gc_pause import gc_paused

log = logging.getLogger(__name__)

# a source's stale finding: minutes since its last successful collect, against one cycle
SINCE_COLLECT = "minutes since the last successful collect"
CYCLE_MIN = SLOT.total_seconds() / 60


@dataclass
class DeriveReport:
    slot: datetime
    queries: int = 0
    findings: list[Finding] = field(default_factory=list)
    opened: list[FlagKey] = field(default_factory=list)
    closed: list[FlagKey] = field(default_factory=list)
    open_flags: dict[FlagKey, Finding] = field(default_factory=dict)
    stale_sources: list[str] = field(default_factory=list)
    notified: dict[str, str | None] = field(default_factory=dict)  # notifier -> error or None
    delivery: Delivery = field(default_factory=Delivery)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        failed = self.error or self.delivery.errors or any(self.notified.values())
        return 1 if failed else 0


class _Steps:
    """Advances every flag once for this slot and sorts the transitions."""

    def __init__(self, states: dict[FlagKey, FlagState], rule: Hysteresis, slot: datetime):
        self.before, self.rule, self.slot = states, rule, slot
        self.after: dict[FlagKey, FlagState] = {}
        self.gone: list[FlagKey] = []
        self.opened: list[tuple[FlagKey, dict]] = []
        self.updated: list[tuple[FlagKey, dict]] = []
        self.closed: list[FlagKey] = []
        self.open_now: set[FlagKey] = set()

    def step(self, key: FlagKey, violated: bool, finding: Finding | None,
             layer: Layer | None = None) -> None:
        rule = self.rule
        if key[3] == "starving" and rule.open_cycles < 2:  # never on a single cycle
            rule = Hysteresis(2, max(2, rule.window_cycles), rule.close_cycles)
        elif finding is not None and finding.sharp:  # no reason to wait for a second cycle
            rule = Hysteresis(1, rule.window_cycles, rule.close_cycles)
        was_open, new = advance(self.before.get(key), violated, self.slot, rule)
        is_open = bool(new and new.is_open)
        if new is not None:
            self.after[key] = new
        elif key in self.before:
            self.gone.append(key)
        details = None if finding is None else {
            "severity": finding.severity, "reason": finding.reason, "current": finding.current,
            "baseline": finding.baseline, "score": finding.score,
            "metric": finding.metric or None,
            "layer": layer.name if layer else None,
            "layer_evidence": layer.evidence[:2000] if layer else None}
        if is_open and not was_open and details:
            self.opened.append((key, details))
        elif is_open and violated and details:
            self.updated.append((key, {**details, "status": "open", "as_of": self.slot}))
        elif is_open:  # clean, not closed yet: this cycle's numbers, where it was judged
            self.updated.append((key, {**self._numbers(finding), "status": "recovering"}))
        elif was_open:
            self.updated.append((key, self._numbers(finding)))  # the numbers it closed on
            self.closed.append(key)
        if is_open:
            self.open_now.add(key)

    def _numbers(self, finding: Finding | None) -> dict:
        """current, baseline and score of a finding, as of this slot (none where the queue
        reported nothing this cycle: the alert keeps its last)."""
        if finding is None:
            return {}
        return {"current": finding.current, "baseline": finding.baseline,
                "score": finding.score, "as_of": self.slot}


def _source_findings(parts: Components, slot: datetime) -> tuple[list[Finding], list[str]]:
    """A stale finding per source that collect has not read successfully for this slot,
    and one for the store when collect's writes have been failing: read from SQL
    (source_status), so an InfluxDB outage raises its alert instead of hiding it."""
    findings, stale = [], []
    last_ok_of = status_tables.last_ok_slots(parts.engine, "collect")
    judged = [source.name for source in parts.sources]
    if "sinks" in last_ok_of:  # recorded by every collect run of this version
        judged.append("sinks")
    for name in judged:
        last_ok = last_ok_of.get(name)
        key = (f"source:{name}", ALL, ALL)
        if last_ok is not None and last_ok >= slot:
            findings.append(Finding(key, "stale", False, "none", 0.0, CYCLE_MIN, 0.0,
                                    "reporting", SINCE_COLLECT))
            continue
        stale.append(name)
        when = "" if last_ok is None else f" since {last_ok:%Y-%m-%d %H:%M} UTC"
        minutes = 0.0 if last_ok is None else (slot - last_ok).total_seconds() / 60
        if name == "sinks":
            reason = (f"{parts.store.location()}: no collect wrote everything{when or ' yet'}; "
                      "the points wait in the spool until the store takes them again")
        else:
            since = f"no successful collect{when}" if when else "never collected successfully"
            reason = f"source {name}: {since}; its queues are not judged until it reports again"
        findings.append(Finding(key, "stale", True, "critical", minutes, CYCLE_MIN, minutes,
                                reason, SINCE_COLLECT))
    return findings, stale


@gc_paused()  # see gc_pause: the cycle's objects die by reference count
def derive(parts: Components, slot: datetime) -> DeriveReport:
    """Derive one slot; never raises for a store, rule or notifier failure (see the report)."""
    slot = slot_start(slot)
    started = time.monotonic()
    report = DeriveReport(slot)
    cfg = parts.cfg
    flags_cfg = cfg.settings.suspicious
    rule = Hysteresis(flags_cfg.open_cycles, flags_cfg.window_cycles,
                      flags_cfg.close_cycles)
    numbers: dict[QueueKey, QueueNumbers] = {}
    topology: dict[str, dict[str, str]] = {}
    with state_errors() as caught:
        try:
            findings, report.stale_sources = _source_findings(parts, slot)
            topology = queues.queue_topology(parts.engine)
            daily = None
            # queues are judged on PanDA's counts: only a stale PanDA source holds them back
            judged_now = "panda" not in report.stale_sources
            if judged_now:
                coverage_min = cfg.settings.derive.coverage_min
                numbers, report.queries = gather(parts.engine, slot, coverage_min,
                                                 cfg.settings.derive.baseline_hours,
                                                 cfg.settings.derive.seasonal_days,
                                                 cfg.settings.derive.seasonal_min_days)
                if history.daily_for(parts.engine) != _day(slot):
                    try:
                        daily, queries = gather_daily(parts.store, slot, coverage_min)
                        report.queries += queries
                    except (StoreUnavailable, InfluxQueryError) as exc:  # tried again next cycle
                        log.warning("derive %s UTC: the 7d/30d averages are not recomputed: %s",
                                    f"{slot:%Y-%m-%d %H:%M}", exc)
                queue_status = {q: t["queue_status"] for q, t in topology.items()}
                findings += evaluate(numbers, queue_status, flags_cfg,
                                     cfg.settings.derive.coverage_min,
                                     cfg.settings.panda.time_window)
            report.findings = findings
            layers = _layers(parts, findings, numbers, topology, report.stale_sources, slot)
            steps = _Steps(alerts.load_flags(parts.engine), rule, slot)
            for finding in findings:
                key = (*finding.key, finding.rule)
                steps.step(key, finding.violated, finding, layers.get(key))
            if judged_now:  # flags nothing judged this time: a clean cycle
                judged = {(*f.key, f.rule) for f in findings}
                for key in steps.before.keys() - judged:
                    steps.step(key, False, None)
            alerts.save_flags(parts.engine, steps.after, steps.gone)
            alerts.record(parts.engine, steps.opened, steps.updated, steps.closed, slot)
            if not judged_now:  # the queues' flags keep their state, and say they are unjudged
                alerts.mark_unjudged(parts.engine)
            report.opened = [k for k, _ in steps.opened]
            report.closed = steps.closed
            by_key = {(*f.key, f.rule): f for f in findings}
            report.open_flags = {k: by_key[k] for k in steps.open_now if k in by_key}
            if numbers:
                rows = _queue_stats_rows(numbers, daily, steps.open_now, by_key, slot)
                queues.update_derived(parts.engine, rows)
        except (StoreUnavailable, InfluxQueryError) as exc:
            report.error = str(exc)
    report.error = report.error or caught.error or None
    if report.error:
        log.error("derive %s UTC failed: %s", f"{slot:%Y-%m-%d %H:%M}", report.error)
    else:
        _notify(parts, report)
    samples = _suspicious_samples(report, topology)
    report.duration_s = time.monotonic() - started
    runs = _run_samples(report)
    report.delivery = parts.writer.write(samples + aggregate(samples) + runs)
    # what the write did, as collect records its sinks: a derive whose points went to the
    # spool exits 1, and `status` must not show it ok
    record_run_samples(parts.engine, [*runs, _sinks_sample(report)], report.slot, parts.clock.now())
    return report


def _sinks_sample(report: DeriveReport) -> Sample:
    delivery = report.delivery
    return run_sample("derive", "sinks", report.slot, {
        "points": float(delivery.written), "spooled": float(delivery.spooled),
        "errors": float(len(delivery.errors))}, delivery.errors)


def _layers(parts: Components, findings: list[Finding],
            numbers: dict[QueueKey, QueueNumbers], topology: dict[str, dict[str, str]],
            stale_sources: list[str], slot: datetime) -> dict[FlagKey, Layer]:
    """The likely layer of every violated finding, from CRIC's status and the pilots of
    its queue this cycle (factory_labels), and the batch cluster of its site."""
    violated = [f for f in findings if f.violated]
    if not violated:
        return {}
    pilots = status_tables.pilots_by_label(parts.engine)
    # a pilot source that did not answer: its queues' pilot data is not this cycle's
    pilots_stale = bool(set(stale_sources) - {"panda", "sinks"})
    panda: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (queue, _, _), n in numbers.items():
        if not n.parts:  # a total counts its resources again
            for status in LAYER_STATUSES:
                panda[queue][status] += n.now(status)
    batch = evidence_by_site(parts.engine, parts.cfg.settings, slot)
    return {(*f.key, f.rule): attribute(
        f, topology.get(f.key[0], {}).get("queue_status"),
        None if pilots_stale else Pilots.of(pilots.get(f.key[0], ())), pilots_stale,
        panda[f.key[0]], batch.get(topology.get(f.key[0], {}).get("atlas_site") or "", ""))
        for f in violated}


def _day(slot: datetime) -> datetime:
    return slot.replace(hour=0, minute=0, second=0, microsecond=0)


def _queue_stats_rows(numbers: dict[QueueKey, QueueNumbers], daily: dict | None,
                      open_now: set[FlagKey], findings: dict[FlagKey, Finding],
                      slot: datetime) -> list[dict[str, Any]]:
    """queue_stats columns of every queue collect wrote this slot; the 7d/30d columns only
    when they were recomputed (once a day), so the upsert leaves them alone otherwise."""
    rows = []
    for (queue, label, resource), n in numbers.items():
        if not n.current or n.parts:
            continue  # not written by collect for this slot; a unified queue's total
        row: dict[str, Any] = {"panda_queue": queue, "prod_source": label,
                               "resource": resource, "slot_time": slot, "derived_at": slot}
        windows = {name: (n.averages.get(name), n.coverage.get(name, 0.0))
                   for name in HOURLY_WINDOWS}
        if daily is not None:
            row["daily_for"] = _day(slot)
            windows.update({name: daily.get((queue, label, resource), {}).get(name, (None, 0.0))
                            for name in DAILY_WINDOWS})
        for window, (averages, coverage) in windows.items():
            row[f"coverage_{window}"] = coverage
            for status in AVERAGED_STATUSES:
                row[f"{status}_avg_{window}"] = (averages or {}).get(status)
        reasons = []
        for rule_name in RULES:
            keys = [(queue, ALL, ALL, rule_name)] if rule_name == "stale" else \
                [(queue, label, resource, rule_name), (queue, label, ALL, rule_name)]
            open_finding = next((findings[k] for k in keys if k in open_now and k in findings),
                                None)  # a unified queue's flag is on its total
            row[f"{rule_name}_flag"] = open_finding.severity if open_finding else None
            if open_finding:
                reasons.append(f"{rule_name}: {open_finding.reason}")
        row["flag_reason"] = "; ".join(reasons) or None
        rows.append(row)
    return rows


def _notify(parts: Components, report: DeriveReport) -> None:
    settings = parts.cfg.settings.notify
    digest = build_digest(alerts.to_notify(parts.engine), report.slot,
                          settings.repeat_critical_hours)
    if not digest:
        return
    senders = notifiers(settings)
    for name, send in senders.items():
        try:
            send(digest)
            report.notified[name] = None
            log.info("%s: sent %r", name, digest.subject)
        except NotifyError as exc:
            report.notified[name] = str(exc)
            log.error("notifier %s failed: %s", name, exc)
    if not senders or any(error is None for error in report.notified.values()):
        alerts.mark_notified(parts.engine, [a.id for a in digest.opened],
                             [a.id for a in digest.closed], [a.id for a in digest.repeated],
                             report.slot)


def _suspicious_samples(report: DeriveReport, topology: dict[str, dict[str, str]]
                        ) -> list[Sample]:
    out = []
    for f in report.findings:
        queue, label, resource = f.key
        where = topology.get(queue, {})
        tags = {"panda_queue": queue, "atlas_site": where.get("atlas_site") or UNKNOWN,
                "cloud": where.get("cloud") or UNKNOWN, "prod_source": label,
                "resource": resource, "rule": f.rule, "severity": f.severity}
        flagged = 1.0 if (*f.key, f.rule) in report.open_flags else 0.0
        out.append(make_sample("suspicious", tags, {"current": f.current, "baseline": f.baseline,
                                                    "score": f.score, "flagged": flagged},
                               report.slot))
    return out


def _run_samples(report: DeriveReport) -> list[Sample]:
    fields: dict[str, float | str] = {
        "duration_s": report.duration_s, "points": len(report.findings),
        "queries": report.queries, "opened": len(report.opened), "closed": len(report.closed),
        "open_flags": len(report.open_flags), "errors": 1 if report.error else 0,
    }
    out = [run_sample("derive", "derive", report.slot, fields,
                      [report.error] if report.error else [])]
    for name, error in report.notified.items():
        out.append(run_sample("derive", name, report.slot,
                              {"sent": 0.0 if error else 1.0, "errors": 1.0 if error else 0.0},
                              [error] if error else []))
    return out
