from datetime import UTC, datetime, timedelta

import pytest

from qmonit.core import config
from qmonit.core.flags import Hysteresis, advance
from qmonit.derive.numbers import QueueNumbers
from qmonit.derive.rules import backlog, drop, evaluate, failing, starving
from qmonit.stores.timeseries.aggregate import Stats

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
RULE = Hysteresis(open_cycles=2, window_cycles=3, close_cycles=3)
CFG = config.defaults({"sources": {"enabled": "simulated"}}).settings.suspicious
KEY = ("Q", "managed", "SCORE")


def run(pattern):
    """Step a flag through a violation pattern like '1101'; return the open state after each."""
    state, out = None, []
    for n, char in enumerate(pattern):
        _, state = advance(state, char == "1", T + n * SLOT, RULE)
        out.append(bool(state and state.is_open))
    return out


@pytest.mark.parametrize("pattern, expected", [
    ("1", [False]),
    ("11", [False, True]),  # M=2 of N=3: opens at the second violation
    ("101", [False, False, True]),
    ("1001", [False, False, False, False]),  # never 2 in 3
    ("110001", [False, True, True, True, False, False]),  # closes after K=3 clean cycles
    ("1101011", [False, True, True, True, True, True, True]),  # one clean cycle does not close
])
def test_hysteresis(pattern, expected):
    assert run(pattern) == expected


def test_rerunning_a_slot_replaces_its_step():
    _, first = advance(None, True, T, RULE)
    _, second = advance(first, True, T + SLOT, RULE)
    assert second.is_open
    _, again = advance(second, False, T + SLOT, RULE)  # the same slot, now clean
    assert (again.history, again.is_open) == ("10", False)
    _, same = advance(again, False, T + SLOT, RULE)
    assert same == again


def test_an_older_slot_leaves_the_state_alone():
    _, state = advance(None, True, T, RULE)
    was_open, after = advance(state, False, T - SLOT, RULE)
    assert after is state and was_open is False


def test_nothing_kept_for_a_clean_flag():
    assert advance(None, False, T, RULE) == (False, None)


def numbers(now, median=None, p25=None, p75=None, status="running", coverage=1.0):
    n = QueueNumbers(current=now, baseline_coverage=coverage)
    if median is not None:
        n.baseline[status] = Stats(median, 144, p25, median, p75)
    return n


@pytest.mark.parametrize("now, median, p25, p75, violated, severity", [
    (40, 400, 380, 420, True, "critical"),  # 90 % lower
    (150, 400, 380, 420, True, "warning"),  # 62 % lower
    (250, 400, 380, 420, False, "none"),  # only 37 % lower
    (10, 45, 40, 50, False, "none"),  # below drop_min_baseline: noise
    (100, 400, 100, 700, False, "none"),  # a volatile queue: within 2 of its spreads
    (0, 60, 55, 65, True, "critical"),
])
def test_drop(now, median, p25, p75, violated, severity):
    finding = drop(KEY, numbers({"running": now}, median, p25, p75), CFG)
    assert (finding.violated, finding.severity) == (violated, severity)


def test_drop_reason_is_readable():
    finding = drop(KEY, numbers({"running": 40}, 400, 380, 420), CFG)
    assert finding.reason == "running 40 vs 400 (median of the baseline window), 90% lower"
    assert (finding.current, finding.baseline) == (40, 400)


@pytest.mark.parametrize("activated, running, violated, severity", [
    (120, 2, True, "warning"),
    (300, 0, True, "critical"),
    (200, 1, True, "critical"),  # hundreds waiting for one running: not a warning
    (200, 3, True, "warning"),
    (199, 0, True, "warning"),
    (120, 30, False, "none"),
    (30, 0, False, "none"),  # too few waiting
])
def test_starving(activated, running, violated, severity):
    finding = starving(KEY, numbers({"activated": activated, "running": running}, 400), CFG)
    assert (finding.violated, finding.severity) == (violated, severity)
    # current and baseline in one unit: running now, and the median of the baseline window
    assert (finding.metric, finding.current, finding.baseline) == ("running jobs", running, 400)


@pytest.mark.parametrize("failed, finished, violated, severity", [
    (60, 40, True, "warning"),
    (90, 10, True, "critical"),
    (10, 90, False, "none"),
    (9, 1, False, "none"),  # 90 % but only 10 ended jobs
])
def test_failing(failed, finished, violated, severity):
    n = numbers({"failed": failed, "finished": finished}, 3, status="failed")
    n.baseline["finished"] = Stats(57, 144, 50, 57, 60)
    finding = failing(KEY, n, CFG, 60)
    assert (finding.violated, finding.severity) == (violated, severity)
    # the failed share of ended jobs in %, now and over the baseline window (3 of 60: 5 %)
    assert (finding.metric, finding.current, finding.baseline) == \
        ("failed % of ended jobs", round(100 * failed / (failed + finished), 1), 5.0)
    if violated:
        assert finding.reason == (f"{failed} of {failed + finished} ended jobs failed "
                                  f"({failed / (failed + finished):.0%}) in the last 60 min")


def test_backlog_takes_the_worse_of_assigned_and_transferring():
    n = numbers({"assigned": 20, "transferring": 900}, 25, 20, 30, status="assigned")
    n.baseline["transferring"] = Stats(100, 144, 90, 100, 110)
    finding = backlog(KEY, n, CFG)
    assert (finding.violated, finding.current, finding.baseline) == (True, 900, 100)
    assert finding.reason == "transferring 900 vs 100 (median of the baseline window)"


def test_offline_test_brokeroff_queues_get_no_drop_or_starving():
    drained = numbers({"running": 0, "activated": 500}, 400, 380, 420)
    for state in ("offline", "test", "brokeroff"):
        findings = evaluate({KEY: drained}, {"Q": state}, CFG, 0.7, 60)
        assert {f.rule for f in findings} == {"failing", "backlog"}
    findings = evaluate({KEY: drained}, {"Q": "online"}, CFG, 0.7, 60)
    assert {f.rule for f in findings if f.violated} == {"drop", "starving"}


def test_insufficient_coverage_feeds_no_drop():
    drained = numbers({"running": 0}, 400, 380, 420, coverage=0.5)
    assert "drop" not in {f.rule for f in evaluate({KEY: drained}, {}, CFG, 0.7, 60)}


def test_a_queue_that_stopped_reporting_is_one_stale_finding_not_drops():
    silent = {(("Q", "managed", r)): numbers({"running": 0, "activated": 0}, 400, 380, 420)
              for r in ("SCORE", "MCORE")}
    for n in silent.values():
        n.baseline["activated"] = Stats(50, 144, 45, 50, 55)
    findings = evaluate(silent, {"Q": "online"}, CFG, 0.7, 60)
    violated = [f for f in findings if f.violated]
    assert [(f.key, f.rule) for f in violated] == [(("Q", "all", "all"), "stale")]
    assert violated[0].reason == ("no jobs reported at all, 900 on average in the baseline "
                                  "window (queue stopped reporting)")
    assert (violated[0].metric, violated[0].current, violated[0].baseline,
            violated[0].severity) == ("jobs reported (all states)", 0, 900, "critical")
    # a small queue gone silent is a warning (below [suspicious] stale_critical_jobs, 500)
    small = {key: numbers({"running": 0}, 100, 95, 105) for key in silent}
    [finding] = [f for f in evaluate(small, {"Q": "online"}, CFG, 0.7, 60) if f.violated]
    assert (finding.rule, finding.severity, finding.baseline) == ("stale", "warning", 200)


def test_open_durations_read_in_minutes_hours_and_days():
    from qmonit.app.suspicious import duration

    assert [duration(m) for m in (0, 59, 60, 190, 1439, 1440, 3125)] == [
        "0m", "59m", "1h00m", "3h10m", "23h59m", "1d0h", "2d4h"]


def test_time_of_day_spread_is_the_wider_half_of_unequal_day_ratios():
    """The slot's clock hour ran 1.2, 1.1, 1.5, 1.3 and 1.4 times its day's mean on five days:
    median 1.3; nearest-rank quartiles 1.1 and 1.4, so the spread is the wider half, 0.2, on
    both sides. A day with too few hours, or too few slots at that hour, is no evidence. A
    unified total's ratio is of its resources' summed means (60+40 -> 66+54 is 1.2, not the
    median of 1.1 and 1.35), and a day one of its resources did not cover has no total."""
    from qmonit.derive.numbers import ALL, seasonal

    def shape(key, day, hours, slots, running_day, running_hour):
        return (*key, day, hours, slots, 0.0, running_day, 0.0, 0.0, running_hour, 0.0)

    numbers_of = {key: QueueNumbers(baseline={"running": Stats(200.0, 144, 150.0, 190.0, 250.0)})
                  for key in (KEY, ("U", "managed", "SCORE"), ("U", "managed", "MCORE"),
                              ("U", "managed", ALL))}
    numbers_of[("U", "managed", ALL)].parts = ("MCORE", "SCORE")
    rows = [shape(KEY, day, 24, 6, 100.0, hour) for day, hour in
            enumerate((120.0, 110.0, 150.0, 130.0, 140.0))]
    rows += [shape(KEY, 5, 16, 6, 100.0, 300.0),  # 16 of 24 hours: below 0.7 coverage
             shape(KEY, 6, 24, 4, 100.0, 300.0)]  # 4 of 6 slots at the hour
    score, mcore = ("U", "managed", "SCORE"), ("U", "managed", "MCORE")
    rows += [shape(score, 0, 24, 6, 60.0, 66.0), shape(mcore, 0, 24, 6, 40.0, 54.0),
             shape(score, 1, 24, 6, 50.0, 50.0), shape(mcore, 1, 24, 6, 50.0, 80.0),
             shape(score, 2, 24, 6, 100.0, 150.0), shape(mcore, 2, 24, 6, 1.0, 0.0),
             shape(score, 3, 24, 6, 100.0, 100.0), shape(mcore, 3, 10, 6, 1.0, 9.0)]
    seasonal(numbers_of, rows, 0.7, 3)

    q = numbers_of[KEY]
    assert q.seasonal == {"running": 5}  # assigned and transferring: day means 0, no ratio
    assert (q.baseline["running"].mean, q.baseline["running"].count) == (200.0, 144)
    assert [q.baseline["running"].p25, q.baseline["running"].median,
            q.baseline["running"].p75] == pytest.approx([200 * 1.1, 200 * 1.3, 200 * 1.5])
    total = numbers_of[("U", "managed", ALL)]
    # ratios 1.2, 1.3, 150/101: median 1.3, p25 1.2, p75 (rank 2 of 3) 1.3: half 0.1
    assert total.seasonal == {"running": 3}
    assert [total.baseline["running"].p25, total.baseline["running"].median,
            total.baseline["running"].p75] == pytest.approx([200 * 1.2, 200 * 1.3, 200 * 1.4])
    assert numbers_of[mcore].seasonal == {"running": 3}  # its day 3 uncovered; 0/1 counts
    assert [numbers_of[mcore].baseline["running"].median] == pytest.approx([200 * 1.35])
