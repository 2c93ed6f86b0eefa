"""Suspicious-site rules: pure functions from a queue's numbers to findings a shifter can read.

Each rule only speaks when it can: a baseline with too little coverage, or a queue
whose CRIC status says it is not meant to run (offline, test, brokeroff), gives no
finding for drop, starving or stale, rather than a false alarm.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from qmonit.core.settings import SuspiciousSection
from qmonit.derive.numbers import ALL, QueueKey, QueueNumbers

NOT_RUNNING_STATES = ("offline", "test", "brokeroff")
HALF_IQR_TO_SIGMA = 0.6745  # p75 - median (or median - p25) of a normal distribution
SHARP = 0.8  # a change of more than this share in one cycle (of the baseline, or the backlog)


@dataclass(frozen=True)
class Finding:
    key: QueueKey
    rule: str
    violated: bool
    severity: str  # warning | critical | none
    current: float
    baseline: float
    score: float
    reason: str
    metric: str = ""  # what current and baseline measure, in one unit ("running jobs")
    sharp: bool = False  # > 80 % off a real baseline in one cycle, twice the noise guard:
    #                      it opens on its first cycle (derive.job._Steps)


def spread(numbers: QueueNumbers, status: str, side: str) -> float:
    """A robust, one-sided noise scale of one 10-minute count, in jobs (at least 1).

    Two parts, added in quadrature: how the hourly means move over the baseline window,
    and the 10-minute noise within an hour (numbers.ten_minute_noise), which the hourly
    means smooth away and which is what one cycle's count carries. A drop fills the low
    tail of its own baseline window, so the hourly part is read from the upper half
    ((p75 - median) / 0.6745), which stays clean until half of the window is anomalous; a
    backlog fills the high tail, so it reads the lower half.
    """
    stats = numbers.baseline.get(status)
    hourly = 0.0
    if stats and stats.p25 is not None and stats.median is not None and stats.p75 is not None:
        half = stats.p75 - stats.median if side == "upper" else stats.median - stats.p25
        hourly = half / HALF_IQR_TO_SIGMA
    within = numbers.noise.get(status, 0.0)
    return max(1.0, (hourly * hourly + within * within) ** 0.5)


def _expected(numbers: QueueNumbers, status: str) -> str:
    """What the baseline a rule compares with is, in the row's words."""
    days = numbers.seasonal.get(status)
    return f"expected at this hour from {days} previous days" if days \
        else "median of the baseline window"


def _median(numbers: QueueNumbers, status: str) -> float:
    stats = numbers.baseline.get(status)
    return stats.median if stats and stats.median is not None else 0.0


def drop(key: QueueKey, n: QueueNumbers, cfg: SuspiciousSection) -> Finding:
    now, median = n.now("running"), _median(n, "running")
    fall = median - now
    noise = spread(n, "running", "upper")
    violated = (median >= cfg.drop_min_baseline and fall >= cfg.drop_absolute
                and fall >= cfg.drop_relative * median and fall >= cfg.drop_spread * noise)
    critical = violated and fall >= cfg.drop_critical * median
    share = fall / median if median else 0.0
    sharp = violated and share > SHARP and fall >= 2 * cfg.drop_spread * noise
    return Finding(key, "drop", violated, "critical" if critical else "warning" if violated
                   else "none", now, median, round(fall / noise, 2),
                   f"running {now:.0f} vs {median:.0f} ({_expected(n, 'running')}), "
                   f"{share:.0%} lower", "running jobs", sharp)


def starving(key: QueueKey, n: QueueNumbers, cfg: SuspiciousSection) -> Finding:
    """Jobs waiting for pilots that do not come. Current and baseline are running jobs (now,
    and the median of the baseline window, 0 without one); critical once hundreds wait for
    (almost) nothing running: "200 activated, 1 running" is not a warning."""
    activated, running = n.now("activated"), n.now("running")
    violated = (activated >= cfg.starving_min_activated
                and running < cfg.starving_running_ratio * activated)
    critical = violated and activated >= 4 * cfg.starving_min_activated and \
        running <= max(1.0, 0.01 * activated)
    return Finding(key, "starving", violated, "critical" if critical else "warning" if violated
                   else "none", running, _median(n, "running"),
                   round(activated / max(running, 1.0), 2),
                   f"{activated:.0f} activated jobs waiting, {running:.0f} running "
                   f"(pilots not arriving?)", "running jobs")


def _failed_share(failed: float, finished: float) -> float:
    ended = failed + finished
    return failed / ended if ended else 0.0


def failing(key: QueueKey, n: QueueNumbers, cfg: SuspiciousSection,
            time_window_min: int) -> Finding:
    """Current and baseline are the failed share of ended jobs in %, now and over the
    baseline window (its mean failed and finished counts; 0 without one)."""
    failed, finished = n.now("failed"), n.now("finished")
    ended = failed + finished
    ratio = _failed_share(failed, finished)
    violated = ended >= cfg.failing_min_ended and ratio > cfg.failing_ratio
    critical = violated and ratio > cfg.failing_critical
    failed_before, finished_before = n.baseline.get("failed"), n.baseline.get("finished")
    usual = _failed_share(failed_before.mean, finished_before.mean) \
        if failed_before and finished_before else 0.0
    return Finding(key, "failing", violated, "critical" if critical else "warning" if violated
                   else "none", round(100 * ratio, 1), round(100 * usual, 1), round(ratio, 3),
                   f"{failed:.0f} of {ended:.0f} ended jobs failed ({ratio:.0%}) in the last "
                   f"{time_window_min} min", "failed % of ended jobs")


def backlog(key: QueueKey, n: QueueNumbers, cfg: SuspiciousSection) -> Finding:
    worst: Finding | None = None
    for status in ("assigned", "transferring"):
        now, median = n.now(status), _median(n, status)
        excess = now - median
        noise = spread(n, status, "lower")
        violated = (excess >= cfg.backlog_absolute
                    and now > cfg.backlog_factor * median
                    and excess >= cfg.drop_spread * noise)
        critical = violated and now > 2 * cfg.backlog_factor * max(median, 1.0)
        sharp = violated and excess > SHARP * now and excess >= 2 * cfg.drop_spread * noise
        finding = Finding(key, "backlog", violated, "critical" if critical else
                          "warning" if violated else "none", now, median,
                          round(excess / noise, 2),
                          f"{status} {now:.0f} vs {median:.0f} ({_expected(n, status)})",
                          f"{status} jobs", sharp)
        if worst is None or (finding.violated, finding.score) > (worst.violated, worst.score):
            worst = finding
    assert worst is not None
    return worst


def evaluate(numbers: Mapping[QueueKey, QueueNumbers], queue_status: Mapping[str, str | None],
             cfg: SuspiciousSection, coverage_min: float,
             time_window_min: int) -> list[Finding]:
    """Every finding for this slot; a stale (silent) queue is reported once, not as drops."""
    findings: list[Finding] = []
    by_queue: dict[str, list[QueueKey]] = defaultdict(list)
    for key in numbers:
        by_queue[key[0]].append(key)
    for queue, keys in sorted(by_queue.items()):
        meant_to_run = queue_status.get(queue) not in NOT_RUNNING_STATES
        splits = [k for k in keys if not numbers[k].parts]
        stale = _stale_queue(queue, [numbers[k] for k in splits], cfg, coverage_min)
        if meant_to_run and stale:
            findings.append(stale)
        # a unified queue is judged on its total (numbers._totals), not per resource
        totalled = {(k[1], r) for k in keys for r in numbers[k].parts}
        for key in sorted(k for k in keys if k[1:] not in totalled):
            n = numbers[key]
            has_now = bool(n.current)
            has_baseline = n.baseline_coverage >= coverage_min
            if meant_to_run and not (stale and stale.violated):
                if has_baseline and has_now:
                    findings.append(drop(key, n, cfg))
                if has_now:
                    findings.append(starving(key, n, cfg))
            if has_now:
                findings.append(failing(key, n, cfg, time_window_min))
                if has_baseline:
                    findings.append(backlog(key, n, cfg))
    return findings


def _stale_queue(queue: str, all_numbers: list[QueueNumbers], cfg: SuspiciousSection,
                 coverage_min: float) -> Finding | None:
    """A queue PanDA stopped listing: every count zero (zero-fill) though it used to have jobs."""
    if not any(n.baseline_coverage >= coverage_min for n in all_numbers):
        return None
    now = sum(sum(n.current.values()) for n in all_numbers)
    before = sum(s.mean for n in all_numbers for s in n.baseline.values())
    violated = now == 0 and before >= cfg.stale_min_jobs
    critical = violated and before >= cfg.stale_critical_jobs  # a big queue went silent
    return Finding((queue, ALL, ALL), "stale", violated, "critical" if critical else
                   "warning" if violated else "none", now, before, 1.0 if violated else 0.0,
                   f"no jobs reported at all, {before:.0f} on average in the baseline window "
                   f"(queue stopped reporting)", "jobs reported (all states)")
