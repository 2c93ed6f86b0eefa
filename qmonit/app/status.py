"""`qmonit status`: one screen for whoever is on call, and a Nagios/Icinga check.

Per job its last run, result and duration; per source its last success and age; the
spool; who holds the leases; the open critical alerts. The first line and the exit
code follow the monitoring-plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
(the state store cannot be read), with performance data after `|`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from qmonit.collect.components import Components
from qmonit.core.sample import SLOT, epoch_seconds, from_epoch
from qmonit.derive.batch_health import scheduler_warnings
from qmonit.stores.sql import describe_db_error, safe_db_url, state_errors, utc
from qmonit.stores.state import alerts, lease, schema
from qmonit.stores.state.batch import scheduler_readings
from qmonit.stores.state.status import source_status

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
STALE_AFTER = 3 * SLOT  # collect, or one of its sources, without success for this long
LATE_AFTER = {"hourly": timedelta(hours=2), "daily": timedelta(days=2)}
JOB_ORDER = ("collect", "derive", "hourly", "daily", "datadisk")


@dataclass(frozen=True)
class Thresholds:
    """`status -w MIN -c MIN`: how long collect may not have run, or a source not have
    succeeded, before a WARNING and a CRITICAL (by default both 30 minutes: three missed
    cycles are critical, with no warning before)."""

    warning: timedelta = STALE_AFTER
    critical: timedelta = STALE_AFTER

    def judge(self, age: timedelta) -> int:
        return CRITICAL if age > self.critical else WARNING if age > self.warning else OK


@dataclass
class Status:
    code: int = OK
    problems: list[str] = field(default_factory=list)  # worst first once sorted
    jobs: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    spool: dict[str, Any] = field(default_factory=dict)
    leases: list[dict[str, Any]] = field(default_factory=list)
    critical_alerts: list[dict[str, Any]] = field(default_factory=list)
    schedulers: list[dict[str, Any]] = field(default_factory=list)  # each daemon's health

    def raise_to(self, code: int, problem: str) -> None:
        self.code = max(self.code, code)
        self.problems.append(f"{NAMES[code]}: {problem}")


def _age(now: datetime, moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def gather(parts: Components, now: datetime | None = None,
           thresholds: Thresholds = Thresholds()) -> Status:
    now = now or parts.clock.now()
    status = Status()
    try:
        all_missing = schema.missing_tables(parts.engine)
        missing = [t for t in all_missing if t not in lease.DAEMON_ONLY]
        if missing:
            status.code = UNKNOWN
            status.problems.append(f"UNKNOWN: the state store {safe_db_url(parts.engine)} has "
                                   f"no tables yet ({', '.join(missing[:3])}): run `qmonit init`")
            return status
        with parts.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(select(source_status))]
        held = [] if lease.leases.name in all_missing else lease.held(parts.engine)
        open_critical = [a for a in alerts.open_alerts(parts.engine) if a.severity == "critical"]
    except SQLAlchemyError as exc:
        status.code = UNKNOWN
        status.problems.append(f"UNKNOWN: the state store {safe_db_url(parts.engine)} cannot "
                               f"be read: {describe_db_error(exc)}")
        return status
    _judge_jobs(status, rows, now, thresholds)
    _judge_sources(status, rows, now, thresholds)
    _judge_spool(status, parts, now)
    with state_errors() as caught:
        _judge_schedulers(status, parts, now, thresholds)
    if caught.error:
        status.raise_to(UNKNOWN, f"the schedulers' health cannot be read: {caught.error}")
    for one in held:
        alive = one.expires_at >= epoch_seconds(now)
        status.leases.append({"job": one.job, "holder": one.holder, "alive": alive,
                              "expires_at": from_epoch(one.expires_at).isoformat(),
                              "claimed_slot": from_epoch(one.claimed_slot).isoformat()
                              if one.claimed_slot else None})
    for alert in open_critical:
        queue, prod_source, resource, rule = alert.key
        status.critical_alerts.append({
            "panda_queue": queue, "prod_source": prod_source, "resource": resource,
            "rule": rule, "reason": alert.reason, "opened_at": utc(alert.opened_at).isoformat()})
    if open_critical:
        status.raise_to(WARNING, f"{len(open_critical)} critical suspicious-site alert(s) open")
    return status


def _judge_jobs(status: Status, rows: list[dict], now: datetime, thresholds: Thresholds
                ) -> None:
    by_job: dict[str, list[dict]] = {}
    for row in rows:
        by_job.setdefault(row["job"], []).append(row)
    if "collect" not in by_job:
        status.raise_to(WARNING, "collect has never run (a new installation: start cron or "
                                 "`qmonit daemon`)")
    for job in sorted(by_job, key=lambda j: (JOB_ORDER + (j,)).index(j)):
        last = max(by_job[job], key=lambda r: r["last_run_at"])
        last_run = utc(last["last_run_at"])
        this_run = [r for r in by_job[job] if r["last_run_at"] == last["last_run_at"]]
        failed = [r for r in this_run if r["status"] != "ok"]
        status.jobs.append({
            "job": job, "last_run_at": last_run.isoformat(),
            "slot": utc(last["last_slot"]).isoformat(),
            "result": "failed" if failed else "ok",
            "failed": {r["source"]: r["message"] for r in failed},
            "duration_s": round(max(r["duration_s"] for r in this_run), 1)})
        if job == "collect" and thresholds.judge(now - last_run) != OK:
            status.raise_to(thresholds.judge(now - last_run),
                            f"collect last ran {_age(now, last_run)}: the pipeline is not "
                            "running")
        elif job in LATE_AFTER and now - last_run > LATE_AFTER[job]:
            status.raise_to(WARNING, f"{job} last ran {_age(now, last_run)}")
        elif failed:
            status.raise_to(WARNING, f"{job}'s last run failed: " + "; ".join(
                f"{r['source']}: {r['message']}" for r in failed))


def _judge_sources(status: Status, rows: list[dict], now: datetime, thresholds: Thresholds
                   ) -> None:
    for row in sorted((r for r in rows if r["job"] == "collect" and r["source"] != "sinks"),
                      key=lambda r: r["source"]):
        ok = utc(row["last_ok_slot"])
        # when it last succeeded: its last run, if that was a success; else no later than the
        # start of the slot it last succeeded for
        success = utc(row["last_run_at"]) if row["status"] == "ok" else ok
        status.sources.append({"source": row["source"], "status": row["status"],
                               "last_ok_slot": ok.isoformat() if ok else None,
                               "last_success": success.isoformat() if success else None,
                               "age_s": int((now - success).total_seconds())
                               if success else None})
        code = CRITICAL if success is None else thresholds.judge(now - success)
        if code != OK:
            status.raise_to(code, f"source {row['source']}: last success {_age(now, success)}")


def _judge_schedulers(status: Status, parts: Components, now: datetime,
                      thresholds: Thresholds) -> None:
    """The batch schedulers' own health as the last collect read it: a slurmctld whose
    agent queue or scheduling cycles, or a schedd or negotiator whose duty cycle, crossed
    [slurm] / [htcondor]'s warnings. A reading older than the critical age is the
    source's staleness, said elsewhere."""
    for key, (slot, fields) in sorted(scheduler_readings(parts.engine).items()):
        if now - slot > thresholds.critical + SLOT:
            continue
        cluster, daemon, name = key
        shown = {field: fields[field] for field in HEALTH_SAID if field in fields}
        status.schedulers.append({"cluster": cluster, "daemon": daemon, "name": name,
                                  "slot": slot.isoformat(), **shown})
        for warning in scheduler_warnings(key, fields, parts.cfg.settings):
            status.raise_to(WARNING, warning)



def _judge_spool(status: Status, parts: Components, now: datetime) -> None:
    files = parts.spool.files()
    damaged = parts.spool.damaged()
    since = min((f.created for f in files), default=None)
    oldest = min((f.oldest or f.created for f in files), default=None)
    status.spool = {"files": len(files), "bytes": sum(f.size for f in files),
                    "points": sum(f.points for f in files),
                    "oldest_slot": oldest.isoformat() if oldest else None,
                    "damaged": len(damaged)}
    if since is not None and now - since > SLOT:
        status.raise_to(WARNING, f"{status.spool['points']} point(s) spooled since "
                                 f"{_age(now, since)}: a store is not taking writes")
    if damaged:
        status.raise_to(WARNING, f"{len(damaged)} damaged spool file(s) set aside (points "
                                 "lost; `qmonit spool status`)")


def render(status: Status, now: datetime) -> str:
    worst = [p.split(": ", 1)[1] for p in status.problems
             if p.startswith(NAMES[status.code])] if status.code != OK else []
    summary = "; ".join(worst) if worst else "collect, derive and the sources are current"
    perf = ""
    if status.code != UNKNOWN:
        perf = (f" | spool_points={status.spool.get('points', 0)} "
                f"critical_alerts={len(status.critical_alerts)}")
    lines = [f"QMONIT {NAMES[status.code]} - {summary}{perf}"]
    if status.code == UNKNOWN:
        return "\n".join(lines) + "\n"
    if status.jobs:
        lines.append("")
        lines.append(f"{'job':<9} {'last run':<30}  {'result':<6}  {'duration':>8}  slot")
    for job in status.jobs:
        when = datetime.fromisoformat(job["last_run_at"])
        lines.append(f"{job['job']:<9} {f'{when:%Y-%m-%d %H:%M} ({_age(now, when)})':<30}  "
                     f"{job['result']:<6}  {job['duration_s']:>6.1f} s  "
                     f"{datetime.fromisoformat(job['slot']):%H:%M}")
    if status.sources:
        lines.append("")
        lines.append(f"{'source':<16} last success")
        for source in status.sources:
            at = source["last_success"]
            success = datetime.fromisoformat(at) if at else None
            lines.append(f"{source['source']:<16} "
                         f"{f'{success:%Y-%m-%d %H:%M}' if success else 'never'} "
                         f"({_age(now, success)})" + ("" if source["status"] == "ok" else
                                                   f", last run {source['status']}"))
    spool = status.spool
    lines.append("")
    lines.append(f"spool: {spool['files']} file(s), {spool['points']} point(s), "
                 f"{spool['bytes']} bytes" + (
                     f", oldest slot {datetime.fromisoformat(spool['oldest_slot']):%Y-%m-%d %H:%M}"
                     if spool["oldest_slot"] else "") +
                 (f"; {spool['damaged']} damaged" if spool["damaged"] else ""))
    if status.leases:
        lines.append("leases: " + "; ".join(
            f"{one['job']} {one['holder']} ({'held' if one['alive'] else 'lapsed'})"
            for one in status.leases))
    else:
        lines.append("leases: none (cron, or no daemon has run)")
    for one in status.schedulers:
        said = ", ".join(text.format(one[key]) for key, text in HEALTH_SAID.items()
                         if key in one)
        lines.append(f"scheduler: {one['daemon']} {one['name'] or 'of ' + one['cluster']}: "
                     f"{said}")
    lines.append(f"critical alerts open: {len(status.critical_alerts)}")
    for alert in status.critical_alerts:
        lines.append(f"  {alert['panda_queue']} {alert['prod_source']} {alert['resource']} "
                     f"{alert['rule']}: {alert['reason']}")
    if status.problems:
        lines.append("")
        lines.extend(sorted(status.problems, key=lambda p: -next(
            code for code, name in NAMES.items() if p.startswith(name))))
    return "\n".join(lines) + "\n"


# what `status` shows of a daemon's reading, and how
HEALTH_SAID = {"agent_queue_size": "agent queue {:,.0f}",
               "schedule_cycle_last_s": "main cycle {:.2f} s",
               "bf_cycle_last_s": "backfill cycle {:.2f} s", "duty_cycle": "duty cycle {:.0%}",
               "jobs_started_per_s": "{:.2f} jobs started/s"}


def as_json(status: Status) -> str:
    return json.dumps({"status": NAMES[status.code], "exit_code": status.code,
                       "problems": status.problems, "jobs": status.jobs,
                       "sources": status.sources, "spool": status.spool,
                       "leases": status.leases, "critical_alerts": status.critical_alerts,
                       "schedulers": status.schedulers},
                      indent=2, sort_keys=True) + "\n"
