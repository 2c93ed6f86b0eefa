"""The derive job through the real stores: InfluxDB (or the embedded store) and MariaDB."""

import email
import email.policy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.core.sample import make_sample
from qmonit.derive.job import derive
from qmonit.stores.state import alerts, schema
from qmonit.stores.state import history as state_history
from qmonit.stores.state import queues as state_queues
from qmonit.stores.state.status import record_run_samples
from tests.servers import Reply, free_port

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
DAY = timedelta(days=1)
STEADY = {"assigned": 7, "activated": 3, "failed": 1, "finished": 30}


def jobs(slot, queue, counts, label="managed", resource="SCORE", rp_points=None):
    return [make_sample("jobs", {"panda_queue": queue, "prod_source": label,
                                 "resource": resource, "job_status": status, "cloud": "US",
                                 "queue_status": "online"}, {"jobs": n}, slot)
            for status, n in counts.items()]


def collected(slot, status="ok"):
    return make_sample("qmonit_run", {"job": "collect", "source": "panda", "status": status},
                       {"points": 1, "duration_s": 0.1}, slot)


def queue_row(name, queue_status="online"):
    return {"panda_queue": name, "panda_resource": name, "atlas_site": f"{name}-SITE",
            "cloud": "US", "queue_status": queue_status, "site_state": "ACTIVE", "updated_at": T,
            "tier": "T2", "pilot_manager": "Harvester",
            "harvester": "CERN_central_A" if name == "D" else None}


@pytest.fixture(params=["influxdb", "embedded"])
def parts_with(request, make_config, mariadb_url):
    """Components on MariaDB, with InfluxDB or the embedded store (also on MariaDB)."""
    def make(**sections):
        influx = request.getfixturevalue("influx_db") if request.param == "influxdb" else {}
        cfg = make_config({"influxdb": influx, "sql": {"url": mariadb_url},
                           "sources": {"enabled": "simulated"}, **sections})
        parts = build(cfg)
        schema.create_tables(parts.engine)
        parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
        return parts
    return make


def record(parts, when, samples):
    """What collect leaves behind: the points, and the SQL history the derive job reads."""
    parts.store.write(samples)
    record_run_samples(parts.engine, [s for s in samples if s.measurement == "qmonit_run"],
                       when, when)
    jobs_only = [s for s in samples if s.measurement == "jobs"]
    state_history.record_history(parts.engine, state_queues.counts_per_queue(jobs_only), when,
                         timedelta(hours=25))


def history(parts, slot, queues, hours=24, skip=()):
    """Steady history for `queues` {name: running}, every 10 minutes before `slot`."""
    for n in range(hours * 6, 0, -1):
        when = slot - n * SLOT
        if when in skip:
            continue
        samples = [collected(when)]
        for name, running in queues.items():
            samples += jobs(when, name, {**STEADY, "running": running(n) if callable(running)
                                         else running})
        record(parts, when, samples)
    state_queues.upsert_queues(parts.engine, [queue_row(q) for q in queues])


def cycle(parts, slot, counts_by_queue, ok=True):
    """What one collect leaves behind, then derive for that slot."""
    samples = [collected(slot, "ok" if ok else "failed")]
    if ok:
        for name, counts in counts_by_queue.items():
            samples += jobs(slot, name, counts)
    record(parts, slot, samples)
    return derive(parts, slot)


def stats_row(parts, queue):
    with parts.engine.connect() as conn:
        return conn.execute(select(state_queues.queue_stats).where(
            state_queues.queue_stats.c.panda_queue == queue)).one()


def alert_rows(parts):
    with parts.engine.connect() as conn:
        return conn.execute(select(alerts.alerts).order_by(alerts.alerts.c.id)).all()


def test_moving_averages_equal_hand_computed_values(parts_with):
    parts = parts_with()
    missing = T - 3 * SLOT  # a failed cycle inside the last hour: absent, not zero
    history(parts, T, {"Q": lambda n: 100 + (144 - n)}, skip={missing})
    state_queues.upsert_queues(parts.engine, [queue_row("Q")])
    daily = [make_sample("jobs", {"panda_queue": "Q", "prod_source": "managed",
                                  "resource": "SCORE", "job_status": "running"},
                         {"jobs": 10 * d}, T.replace(hour=0) - d * DAY) for d in range(1, 8)]
    parts.store.write(daily, "1d")
    report = cycle(parts, T, {"Q": {**STEADY, "running": 500}})
    assert report.error is None
    row = stats_row(parts, "Q")
    # running at the n-th slot before T is 100 + (144 - n); T - 3 slots is missing
    assert row.running_avg_1h == (238 + 239 + 240 + 242 + 243) / 5
    assert row.coverage_1h == 5 / 6
    assert row.running_avg_6h == pytest.approx((sum(100 + i for i in range(108, 144)) - 241) / 35)
    assert row.running_avg_12h == pytest.approx((sum(100 + i for i in range(72, 144)) - 241) / 71)
    assert row.running_avg_24h == pytest.approx((sum(100 + i for i in range(144)) - 241) / 143)
    assert (row.assigned_avg_24h, row.activated_avg_1h, row.failed_avg_12h) == (7, 3, 1)
    assert row.running_avg_7d == 40.0  # 10, 20, ..., 70 from the "1d" data
    assert row.coverage_7d == 1.0
    assert row.running_avg_30d is None  # 7 of 30 days: insufficient
    assert row.coverage_30d == pytest.approx(7 / 30)
    assert (row.running, row.drop_flag) == (None, None)  # counts are collect's, not derive's
    assert report.queries == 4  # the SQL history and the days' shapes, then 7d and 30d
    assert cycle(parts, T + SLOT, {"Q": {**STEADY, "running": 500}}).queries == 2  # once a day


def test_draining_site_flagged_within_three_cycles_and_closed_after_recovery(parts_with):
    """A 90 % fall (beyond twice the noise guard) opens on its first cycle: a sharp
    change; see the next test for one that waits for the second."""
    parts = parts_with()
    history(parts, T, {"D": lambda n: 395 + n % 11, "OK": 300})
    open_after = []
    for n in range(3):
        cycle(parts, T + n * SLOT, {"D": {**STEADY, "running": 40}, "OK": {**STEADY,
                                                                           "running": 300}})
        open_after.append([a.key for a in alerts.open_alerts(parts.engine)])
    assert open_after == [[("D", "managed", "SCORE", "drop")]] * 3
    [alert] = alert_rows(parts)
    assert (alert.severity, alert.current, alert.baseline) == ("critical", 40.0, 400.0)
    assert alert.reason == "running 40 vs 400 (median of the baseline window), 90% lower"
    assert alerts.utc(alert.opened_at) == T
    assert stats_row(parts, "D").drop_flag == "critical"
    assert stats_row(parts, "OK").drop_flag is None
    flagged = parts.store.rows if hasattr(parts.store, "rows") else None
    if flagged:
        points = flagged('SELECT "flagged", "current" FROM "10m"."suspicious" WHERE '
                         "panda_queue = 'D' AND rule = 'drop'")
        assert [(p["flagged"], p["current"]) for p in points] == [(1, 40), (1, 40), (1, 40)]
    for n in range(3, 6):  # recovered: closes after three clean cycles
        cycle(parts, T + n * SLOT, {"D": {**STEADY, "running": 400}, "OK": {**STEADY,
                                                                            "running": 300}})
    [alert] = alert_rows(parts)
    assert alerts.utc(alert.closed_at) == T + 5 * SLOT
    assert alerts.open_alerts(parts.engine) == []
    assert stats_row(parts, "D").drop_flag is None
    # closed, it is still one of the alerts opened in the hour (the detection replay's read)
    assert [(a.key, a.opened_at, a.closed_at) for a in alerts.opened_between(
        parts.engine, T, T + 6 * SLOT)] == [(("D", "managed", "SCORE", "drop"), T,
                                             T + 5 * SLOT)]
    assert alerts.opened_between(parts.engine, T + SLOT, T + 6 * SLOT) == []


def test_a_fall_short_of_sharp_waits_for_its_second_cycle(parts_with):
    """60 % lower is a drop but not a sharp one (> 80 %): it opens on the second cycle, as
    [suspicious] open_cycles says; 85 % lower opens on the first."""
    parts = parts_with()
    history(parts, T, {"D": 400, "S": 400})
    cycle(parts, T, {"D": {**STEADY, "running": 160}, "S": {**STEADY, "running": 60}})
    assert [a.key[0] for a in alerts.open_alerts(parts.engine)] == ["S"]
    cycle(parts, T + SLOT, {"D": {**STEADY, "running": 160}, "S": {**STEADY, "running": 60}})
    assert sorted((a.key[0], alerts.utc(a.opened_at)) for a in alerts.open_alerts(
        parts.engine)) == [("D", T + SLOT), ("S", T)]


def test_an_alert_says_open_unjudged_recovering_and_closed_with_the_numbers_as_of(parts_with):
    """Its numbers are refreshed on every judged cycle, not only the violating ones; while
    PanDA is stale the flag keeps its state and says it is unjudged since its as-of slot."""
    from qmonit.app.suspicious import open_flags

    parts = parts_with()
    history(parts, T, {"D": 400, "OK": 300})
    drained = {"D": {**STEADY, "running": 160}, "OK": {**STEADY, "running": 300}}  # not sharp
    seen = []

    def look(slot):
        [alert] = alert_rows(parts)
        [flag] = [f for f in open_flags(parts.engine, slot) if f["panda_queue"] == "D"] or [{}]
        seen.append((alert.status, alerts.utc(alert.as_of), alert.current, alert.severity,
                     flag.get("state"), flag.get("open_minutes")))

    for n in range(2):  # opens at the second violating cycle
        cycle(parts, T + n * SLOT, drained)
    look(T + SLOT)
    cycle(parts, T + 2 * SLOT, {}, ok=False)  # PanDA stale: nothing judged
    look(T + 2 * SLOT)
    cycle(parts, T + 3 * SLOT, {**drained, "D": {**STEADY, "running": 390}})  # clean
    look(T + 3 * SLOT)
    cycle(parts, T + 4 * SLOT, {**drained, "D": {**STEADY, "running": 398}})
    look(T + 4 * SLOT)
    cycle(parts, T + 5 * SLOT, {**drained, "D": {**STEADY, "running": 401}})  # 3rd clean
    [alert] = alert_rows(parts)
    assert seen == [
        ("open", T + SLOT, 160.0, "warning", "open", 0),
        ("unjudged", T + SLOT, 160.0, "warning", "unjudged", 10),
        ("recovering", T + 3 * SLOT, 390.0, "warning", "recovering", 20),
        ("recovering", T + 4 * SLOT, 398.0, "warning", "recovering", 30),
    ]
    assert (alert.status, alerts.utc(alert.as_of), alerts.utc(alert.closed_at)) == \
        ("closed", T + 5 * SLOT, T + 5 * SLOT)
    told = alerts.Alert(*[getattr(alert, c) for c in ("id",)], ("D", "managed", "SCORE",
                                                                "drop"), "critical", "why",
                        1.0, 2.0, 3.0, T, None, None, True, False, status="unjudged",
                        as_of=T + SLOT)
    from qmonit.derive.notify import describe
    assert describe(told) == ("[critical] drop D managed/SCORE: why (since 2026-11-21 12:00, "
                              "unjudged since 12:10: its source is stale)")


def test_low_volume_noise_never_flags(parts_with):
    parts = parts_with()
    noisy = [0, 40, 5, 35, 12, 28, 0, 44, 3]
    history(parts, T, {"LOW": lambda n: noisy[n % len(noisy)]})
    for n in range(9):
        report = cycle(parts, T + n * SLOT, {"LOW": {**STEADY, "running": noisy[n],
                                                     "activated": noisy[-n]}})
        assert [f for f in report.findings if f.violated] == []
    assert alert_rows(parts) == []


def test_mid_volume_noise_is_read_at_ten_minutes_and_a_real_drain_still_flags(parts_with):
    """~55 running, 40 and 70 in turn every 10 minutes: every hourly mean is 55, so the
    quartiles of hourly means see no noise at all; each hour's 10-minute counts have a
    sample standard deviation of 16.4. A cycle at 24 (31 below the median) is noise: not
    two of them in a row flag. A fall to 5 (50 below, 3 σ) is a drop."""
    from qmonit.derive.numbers import gather

    parts = parts_with()
    wobble = {"NOISY": lambda n: 40 if n % 2 else 70, "DRAIN": lambda n: 40 if n % 2 else 70}
    history(parts, T, wobble)
    numbers, _ = gather(parts.engine, T, 0.5, 24)
    noisy = numbers[("NOISY", "managed", "SCORE")]
    assert noisy.baseline["running"].median == 55.0
    assert noisy.baseline["running"].p75 == 55.0  # the hourly means: no spread at all
    assert round(noisy.noise["running"], 2) == round((6 * 15 ** 2 / 5) ** 0.5, 2) == 16.43
    for n in range(3):
        report = cycle(parts, T + n * SLOT, {"NOISY": {**STEADY, "running": 24},
                                             "DRAIN": {**STEADY, "running": 5}})
        [drop_noisy] = [f for f in report.findings if f.key[0] == "NOISY" and f.rule == "drop"]
        assert not drop_noisy.violated
        assert drop_noisy.score == round(31 / 16.43, 2)
    assert [a.key for a in alerts.open_alerts(parts.engine)] == [("DRAIN", "managed", "SCORE",
                                                                  "drop")]


def test_a_unified_queue_is_judged_on_its_total_across_resource_types(parts_with):
    """U runs SCORE and MCORE jobs from one pilot stream: 300 + 100, each with its own
    10-minute noise (±10 and ±20 in turn). Jobs moving to MCORE (SCORE 100, MCORE 300) are
    no drop; the total falling to 60 is one drop, on the queue's total."""
    from qmonit.derive.numbers import gather

    parts = parts_with()
    for n in range(144, 0, -1):
        when = T - n * SLOT
        record(parts, when, [collected(when),
                             *jobs(when, "U", {**STEADY, "running": 300 + (10 if n % 2 else -10)}),
                             *jobs(when, "U", {**STEADY, "running": 100 + (20 if n % 2 else -20)},
                                   resource="MCORE")])
    state_queues.upsert_queues(parts.engine, [queue_row("U")])
    numbers, _ = gather(parts.engine, T, 0.5, 24)
    total = numbers[("U", "managed", "all")]
    assert total.parts == ("MCORE", "SCORE")
    assert total.baseline["running"].median == 400.0
    sigma = [round(numbers[("U", "managed", r)].noise["running"], 3) for r in ("SCORE", "MCORE")]
    assert sigma == [round((6 * 10 ** 2 / 5) ** 0.5, 3), round((6 * 20 ** 2 / 5) ** 0.5, 3)]
    assert round(total.noise["running"], 3) == round((6 * (10 ** 2 + 20 ** 2) / 5) ** 0.5, 3)

    def both(score, mcore):
        when = T + len(reports) * SLOT
        samples = [collected(when), *jobs(when, "U", {**STEADY, "running": score}),
                   *jobs(when, "U", {**STEADY, "running": mcore}, resource="MCORE")]
        record(parts, when, samples)
        reports.append(derive(parts, when))

    reports = []
    for _ in range(3):  # SCORE 300 -> 100: a 67 % fall of the SCORE split alone
        both(100, 300)
    assert [(f.key, f.rule) for r in reports for f in r.findings if f.violated] == []
    assert {f.key for r in reports for f in r.findings if f.rule != "stale"} == \
        {("U", "managed", "all")}  # not per resource
    for _ in range(2):
        both(40, 20)
    assert [a.key for a in alerts.open_alerts(parts.engine)] == [("U", "managed", "all",
                                                                  "drop")]
    assert [(a.current, a.baseline) for a in alerts.open_alerts(parts.engine)] == [(60.0, 400.0)]
    assert sorted((row.resource, row.drop_flag) for row in _stats_rows(parts, "U")) == [
        ("MCORE", "warning"), ("SCORE", "warning")]  # 85 % lower: a warning, on both rows


def _stats_rows(parts, queue):
    with parts.engine.connect() as conn:
        return conn.execute(select(state_queues.queue_stats).where(
            state_queues.queue_stats.c.panda_queue == queue)).all()


def test_panda_outage_is_one_stale_alert_and_no_drops(parts_with):
    parts = parts_with()
    queues = {f"Q{i}": 200 + i for i in range(20)}
    history(parts, T, queues)
    steady = {q: {**STEADY, "running": r} for q, r in queues.items()}
    reports = [cycle(parts, T, {}, ok=False), cycle(parts, T + SLOT, {}, ok=False)]
    assert [[(f.key, f.rule, f.violated) for f in r.findings] for r in reports] == \
        [[(("source:panda", "all", "all"), "stale", True)]] * 2
    [alert] = alerts.open_alerts(parts.engine)
    assert alert.key == ("source:panda", "all", "all", "stale")
    assert alert.severity == "critical"
    assert alert.reason == ("source panda: no successful collect since 2026-11-21 11:50 UTC; "
                            "its queues are not judged until it reports again")
    for n in range(2, 5):
        report = cycle(parts, T + n * SLOT, steady)
        assert [f.rule for f in report.findings if f.violated] == []
    assert alerts.open_alerts(parts.engine) == []
    assert [(r.rule, alerts.utc(r.closed_at)) for r in alert_rows(parts)] == \
        [("stale", T + 4 * SLOT)]


def test_offline_queue_is_not_flagged(parts_with):
    parts = parts_with()
    history(parts, T, {"OFF": 400, "GONE": 400})
    state_queues.upsert_queues(parts.engine,
                               [queue_row("OFF", "offline"), queue_row("GONE", "test")])
    for n in range(3):
        report = cycle(parts, T + n * SLOT, {"OFF": {**STEADY, "running": 0, "activated": 500},
                                            "GONE": {"running": 0}})
        assert [f for f in report.findings if f.violated] == []
    assert alert_rows(parts) == []


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos,
                              envelope.content.decode().replace("\r\n", "\n")))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def test_digest_reaches_smtp_and_webhook(parts_with, smtp, http):
    controller, inbox = smtp
    http.route("/hooks/s3cr3t", Reply(200, "ok"))
    parts = parts_with(notify={"email_to": "shift@example.org, expert@example.org",
                               "email_from": "qmonit@example.org",
                               "smtp_host": "127.0.0.1", "smtp_port": str(controller.port),
                               "webhook_url": f"{http.url}/hooks/s3cr3t"})
    history(parts, T, {"D": 400, "OK": 300})
    drained = {"D": {**STEADY, "running": 40}, "OK": {**STEADY, "running": 300}}
    reports = [cycle(parts, T + n * SLOT, drained) for n in range(3)]
    # a 90 % fall opens on its first cycle (sharp)
    assert [r.notified for r in reports] == [{"email": None, "webhook": None}, {}, {}]
    assert len(inbox.messages) == 1  # one digest; nothing new in the later cycles
    sender, recipients, content = inbox.messages[0]
    assert (sender, recipients) == ("qmonit@example.org",
                                    ["shift@example.org", "expert@example.org"])
    subject = "qmonit: 1 opened (1 critical) at 2026-11-21 12:00 UTC"
    line = ("  [critical] drop D managed/SCORE: running 40 vs 400 (median of the baseline "
            "window), 90% lower; likely layer unknown: no pilot factory reports this queue "
            "(since 2026-11-21 12:00)")
    message = email.message_from_string(content, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message.get_content() == f"{subject}\n\nOpened:\n{line}\n"
    [hook] = http.hits("/hooks/s3cr3t")
    assert json.loads(hook.body) == {"text": f"{subject}\n\nOpened:\n{line}\n",
                                     "username": "qmonit"}
    for n in range(3, 6):
        cycle(parts, T + n * SLOT, {"D": {**STEADY, "running": 400}, "OK": drained["OK"]})
    assert len(inbox.messages) == 2
    closed = email.message_from_string(inbox.messages[1][2], policy=email.policy.default)
    assert closed["Subject"] == "qmonit: 1 closed at 2026-11-21 12:50 UTC"
    assert "  [critical] drop D managed/SCORE: running 40 vs 400 (median of the baseline " \
           "window), 90% lower; likely layer unknown: no pilot factory reports this queue " \
           "(since 2026-11-21 12:00, closed 12:50)" in closed.get_content()


def test_failing_notifier_leaves_the_derived_data_written(parts_with):
    closed_port = free_port()
    parts = parts_with(notify={"email_to": "shift@example.org", "smtp_host": "127.0.0.1",
                               "smtp_port": str(closed_port), "timeout_s": "2"})
    history(parts, T, {"D": 400})
    reports = [cycle(parts, T + n * SLOT, {"D": {**STEADY, "running": 40}}) for n in range(2)]
    assert [r.exit_code for r in reports] == [1, 1]  # opened at once (sharp), told never
    error = reports[1].notified["email"]
    assert error.startswith(f"SMTP 127.0.0.1:{closed_port}: ConnectionRefusedError")
    assert stats_row(parts, "D").drop_flag == "critical"
    assert stats_row(parts, "D").running_avg_1h == (5 * 400 + 40) / 6  # 12:00 was drained
    [alert] = alert_rows(parts)
    assert (alert.notified_open, alert.rule) == (False, "drop")  # told next time instead
    if hasattr(parts.store, "rows"):
        runs = parts.store.rows('SELECT * FROM "10m"."qmonit_run" WHERE "job" = \'derive\'')
        email = [r for r in runs if r["source"] == "email"]
        assert [(r["status"], r["message"]) for r in email] == [
            ("failed", reports[0].notified["email"]), ("failed", error)]


def test_simulated_grid_incidents_flag_and_its_noise_does_not(make_config, tmp_path):
    from qmonit.collect.cycle import collect
    from qmonit.simulation.grid import SimulatedGrid, SimulatedJobStats, SimulatedTopology

    parts = build(make_config({"sources": {"enabled": "simulated"}}))
    parts.grid = SimulatedGrid(seed=1, sites=30)
    parts.sources = [SimulatedJobStats(parts.grid)]
    parts.topology = SimulatedTopology(parts.grid)
    schema.create_tables(parts.engine)
    parts.store.init({})
    end = datetime(2026, 11, 21, 10, 50, tzinfo=UTC)
    for n in range(24 * 6 + 12, -1, -1):
        slot = end - n * SLOT
        collect(parts, slot)
        if n < 12:
            derive(parts, slot)
    flagged = {(a.key[0], a.key[3]) for a in alerts.open_alerts(parts.engine)}
    expected = {(i.panda_queue, rule) for kind, rule in (("drain", "drop"),
                                                         ("no_pilots", "starving"),
                                                         ("failures", "failing"))
                for i in parts.grid.incidents_at(kind, end)}
    assert expected <= flagged
    # pilots that do not arrive also make running drop; nothing else may be flagged
    no_pilots = {i.panda_queue for i in parts.grid.incidents_at("no_pilots", end)}
    assert flagged - expected <= {(q, "drop") for q in no_pilots}


def test_suspicious_command_table_and_json(parts_with, write_config, mariadb_url, influx_db):
    import subprocess
    import sys

    from tests.servers import environ_without_qmonit

    parts = parts_with()
    history(parts, T, {"D": 400, "F": 300})
    for n in range(2):
        cycle(parts, T + n * SLOT, {"D": {**STEADY, "running": 40},
                                    "F": {**STEADY, "running": 300, "failed": 90,
                                          "finished": 10}})
    cfg = write_config({"sql": {"url": mariadb_url}, "sources": {"enabled": "simulated"}})

    def run(*args):
        return subprocess.run([sys.executable, "-m", "qmonit", "-c", str(cfg), "suspicious",
                               *args], capture_output=True, text=True,
                              env=environ_without_qmonit())

    table = run()
    assert table.returncode == 0, table.stderr
    why = " [unknown: no pilot factory reports this queue]"
    drop_reason = "running 40 vs 400 (median of the baseline window), 90% lower" + why
    assert table.stdout.splitlines() == [
        "panda_queue  prod_source/resource  site    cloud  tier  CRIC status  pilot manager"
        + " " * 15 + "rule     severity  state  "
        "likely layer  metric                  current vs baseline  as of  open since (UTC)  "
        "open for  reason",
        "-----------  --------------------  ------  -----  ----  -----------  " + "-" * 26 +
        "  -------  --------  -----  "
        "------------  ----------------------  -------------------  -----  ----------------  "
        "--------  " + "-" * len(drop_reason),
        "D            managed/SCORE         D-SITE  US     T2    online       "
        "Harvester (CERN_central_A)  drop     critical  open   "
        "unknown       running jobs                      40 vs 400  12:10  2026-11-21 12:00  "
        "10m       " + drop_reason,
        "F            managed/SCORE         F-SITE  US     T2    online       Harvester"
        + " " * 19 + "failing  critical  open   "
        "unknown       failed % of ended jobs            90 vs 5.1  12:10  2026-11-21 12:10  "
        "0m        90 of 100 ended jobs failed (90%) in the last 60 min" + why,
    ]
    flags = json.loads(run("--json").stdout)
    # failing: the failed share of ended jobs in %, now and in the baseline window, which
    # holds the first failing cycle: (143 + 90) / 144 failed of (143 * 31 + 100) / 144 ended
    assert [(f["tier"], f["queue_status"], f["pilot_manager"], f["harvester"])
            for f in flags] == [("T2", "online", "Harvester", "CERN_central_A"),
                                ("T2", "online", "Harvester", "unknown")]
    opened = "2026-11-21T12:10:00+00:00"
    assert [(f["panda_queue"], f["rule"], f["severity"], f["metric"], f["current"],
             f["baseline"], f["open_since"], f["state"], f["as_of"], f["open_minutes"])
            for f in flags] == [
        ("D", "drop", "critical", "running jobs", 40.0, 400.0, "2026-11-21T12:00:00+00:00",
         "open", opened, 10),  # sharp: opened on its first cycle
        ("F", "failing", "critical", "failed % of ended jobs", 90.0, 5.1, opened, "open",
         opened, 0)]


def test_open_critical_alerts_are_repeated_at_most_every_n_hours():
    from qmonit.derive.notify import build_digest
    from qmonit.stores.state.alerts import Alert

    def alert(id, severity, notified_at, closed=None, notified_open=True, notified_close=False):
        return Alert(id, (f"Q{id}", "managed", "SCORE", "drop"), severity, "why", 1.0, 2.0,
                     3.0, T - timedelta(hours=10), closed, notified_at, notified_open,
                     notified_close)

    candidates = [
        alert(1, "critical", T - timedelta(hours=7)),  # told 7 h ago: repeat
        alert(2, "critical", T - timedelta(hours=5)),  # told 5 h ago: not yet
        alert(3, "warning", T - timedelta(hours=9)),  # warnings are not repeated
        alert(4, "critical", None, notified_open=False),  # new: opened
        alert(5, "warning", T - timedelta(hours=1), closed=T),  # closed now
        alert(6, "warning", None, closed=T, notified_open=False),  # never told: no close note
    ]
    digest = build_digest(candidates, T, repeat_hours=6)
    assert ([a.id for a in digest.opened], [a.id for a in digest.closed],
            [a.id for a in digest.repeated]) == ([4], [5], [1])
    assert digest.subject == ("qmonit: 1 opened (1 critical), 1 closed, 1 critical still open "
                              "at 2026-11-21 12:00 UTC")


def test_starving_needs_two_cycles_even_when_flags_open_on_one(parts_with):
    parts = parts_with(suspicious={"open_cycles": "1", "window_cycles": "1"})
    history(parts, T, {"S": 30, "D": 400})  # S: too few running to be judged for drop
    waiting = {"S": {**STEADY, "running": 1, "activated": 400},
               "D": {**STEADY, "running": 40}}
    cycle(parts, T, waiting)
    assert [a.key[3] for a in alerts.open_alerts(parts.engine)] == ["drop"]  # one cycle is enough
    cycle(parts, T + SLOT, waiting)
    assert sorted(a.key[3] for a in alerts.open_alerts(parts.engine)) == ["drop", "starving"]


def test_the_digest_tells_one_incident_per_queue_opened_updated_and_closed():
    """A queue whose pilots stopped: starving and drop on two splits are one incident, its
    principal the cause (starving), the drops its evidence; a later split is an update, a
    split that clears while others stay open too; the incident closes with its last alert."""
    from qmonit.derive.notify import build_digest
    from qmonit.stores.state.alerts import Alert

    def alert(id, rule, resource, severity="warning", reason="why", told=False, closed=None,
              told_close=False):
        return Alert(id, ("Q", "managed", resource, rule), severity, reason, 1.0, 2.0, 3.0,
                     T, closed, T if told else None, told, told_close)

    starving = alert(1, "starving", "SCORE", "critical", "400 activated jobs waiting, 1 running")
    drop = alert(2, "drop", "SCORE", "critical", "running 1 vs 400")
    drop_mcore = alert(3, "drop", "MCORE", reason="running 10 vs 80")
    digest = build_digest([drop, starving, drop_mcore], T, repeat_hours=6)
    assert digest.subject == "qmonit: 1 opened (1 critical) at 2026-11-21 12:00 UTC"
    assert digest.text().splitlines()[2:] == [
        "Opened:",
        "  [critical] starving Q managed/SCORE: 400 activated jobs waiting, 1 running "
        "(since 2026-11-21 12:00); also drop managed/SCORE: running 1 vs 400; "
        "drop managed/MCORE: running 10 vs 80"]
    # told; then a third split opens and the MCORE drop clears: one update line
    told = [replace(a, notified_open=True, last_notified_at=T) for a in (starving, drop)]
    later = T + timedelta(minutes=30)
    cleared = replace(drop_mcore, notified_open=True, closed_at=later)
    himem = alert(4, "drop", "SCORE_HIMEM", reason="running 0 vs 30")
    digest = build_digest([*told, cleared, himem], later, repeat_hours=6)
    assert digest.subject == "qmonit: 1 updated at 2026-11-21 12:30 UTC"
    assert digest.text().splitlines()[2:] == [
        "Updated:",
        "  [critical] Q: now also drop managed/SCORE_HIMEM: running 0 vs 30; "
        "cleared drop managed/MCORE"]
    assert ([a.id for a in digest.opened], [a.id for a in digest.closed]) == ([4], [3])
    # the rest clear together: the incident closes, once
    end = T + timedelta(hours=2)
    done = [replace(a, notified_open=True, closed_at=end) for a in (starving, drop, himem)]
    digest = build_digest(done, end, repeat_hours=6)
    assert digest.subject == "qmonit: 1 closed at 2026-11-21 14:00 UTC"
    assert digest.text().splitlines()[2:] == [
        "Closed:",
        "  [critical] Q: starving managed/SCORE, drop managed/SCORE, drop managed/SCORE_HIMEM "
        "(since 2026-11-21 12:00, closed 14:00)"]


def pilots_waiting(parts):
    """Queue P's Harvester workers this cycle: 30 queued, none running (its pilots wait)."""
    from qmonit.stores.state.status import replace_factory_labels

    replace_factory_labels(parts.engine, [{
        "factory": "CERN_central_A", "label": "P", "factory_type": "harvester",
        "atlas_site": "P-SITE", "cloud": "US", "created": 30.0, "running": 0.0,
        "exiting": 0.0, "done": 0.0, "fault": 0.0, "activated": 400.0, "in_trouble": False,
        "message": "", "updated_at": T.replace(tzinfo=None)}])


def test_qmonit_suspicious_shows_a_starving_queue_as_one_incident(parts_with):
    """Starving and drop on one queue: one incident, starving its principal; its pilots
    wait in the batch system (Harvester's workers queued, none running): batch/site."""
    from qmonit.app.suspicious import open_flags, render
    parts = parts_with()
    history(parts, T, {"P": 400})
    pilots_waiting(parts)
    for n in range(2):
        cycle(parts, T + n * SLOT, {"P": {**STEADY, "running": 1, "activated": 400}})
    assert sorted(a.key[3] for a in alerts.open_alerts(parts.engine)) == ["drop", "starving"]
    [incident] = open_flags(parts.engine, parts.clock.now())
    why = ("pilots wait in the batch system: CERN_central_A (harvester): 30 pilots queued, "
           "0 running, 0 done, 0 failed")
    assert (incident["panda_queue"], incident["rule"], incident["severity"],
            incident["metric"], incident["current"], incident["baseline"], incident["layer"],
            incident["layer_evidence"]) == \
        ("P", "starving", "critical", "running jobs", 1.0, 400.0, "batch/site", why)
    assert [(e["rule"], e["severity"], e["current"], e["baseline"], e["layer"])
            for e in incident["evidence"]] == [("drop", "critical", 1.0, 400.0, "batch/site")]
    [_, _, row] = render(parts.engine, parts.clock.now()).splitlines()
    assert row.endswith(f"400 activated jobs waiting, 1 running (pilots not arriving?) "
                        f"[batch/site: {why}]; also drop managed/SCORE: running 1 vs 400 "
                        "(median of the baseline window), 100% lower")


def test_a_daily_rhythm_is_judged_against_the_same_hour_of_previous_days(parts_with):
    """RHYTHM runs 300 ± 100 over the day (peak at noon) on four days; ITS_TWIN the same. At
    noon RHYTHM falls to 160: 60 % below what noon runs, but only 47 % below the day's median
    and within the rhythm's quartiles, so the 24 h baseline sees noise. Against the same hour
    of the previous days it is a drop; its twin, at its usual noon, is not."""
    import math

    from qmonit.derive.numbers import gather

    def running(when):
        hour = (when.hour + when.minute / 60) - 12
        return round(300 + 100 * math.cos(2 * math.pi * hour / 24))

    parts = parts_with()
    first = T - 4 * DAY - 12 * timedelta(hours=1)  # four whole days before T's, and T's morning
    slots = [first + n * SLOT for n in range((T - first) // SLOT)]
    for when in slots:
        counts = {}
        for name in ("RHYTHM", "ITS_TWIN"):
            counts.update(state_queues.counts_per_queue(jobs(when, name, {**STEADY,
                                                                   "running": running(when)})))
        state_history.record_history(parts.engine, counts, when, timedelta(hours=25), 8 * DAY)
    # re-run
    state_history.record_history(parts.engine, counts, slots[-1], timedelta(hours=25), 8 * DAY)
    with parts.engine.connect() as conn:
        hours = conn.execute(select(state_history.queue_hourly.c.slots).where(
            state_history.queue_hourly.c.panda_queue == "RHYTHM")).scalars().all()
    assert len(hours) == 4 * 24 + 12 and set(hours) == {6}  # the re-run counted once
    state_queues.upsert_queues(parts.engine, [queue_row("RHYTHM"), queue_row("ITS_TWIN")])

    last_day = [running(when) for when in slots[-144:]]
    midnight = T - timedelta(hours=12)
    day_before = [running(when) for when in slots if midnight - DAY <= when < midnight]
    noon = sum(day_before[72:78]) / 6
    expected = sum(last_day) / 144 * noon / (sum(day_before) / 144)
    numbers, queries = gather(parts.engine, T, 0.7, 24, 7, 3)
    rhythm = numbers[("RHYTHM", "managed", "SCORE")]
    assert queries == 2 and rhythm.seasonal["running"] == 4
    assert round(rhythm.baseline["running"].median, 6) == round(expected, 6)
    assert round(expected) == 399
    old, _ = gather(parts.engine, T, 0.7, 24)
    assert old[("RHYTHM", "managed", "SCORE")].seasonal == {}

    from qmonit.derive.rules import drop
    cfg = parts.cfg.settings.suspicious
    old_rhythm = replace(old[("RHYTHM", "managed", "SCORE")], current={"running": 160.0})
    assert not drop(("RHYTHM", "managed", "SCORE"), old_rhythm, cfg).violated

    reports = [cycle(parts, T + n * SLOT, {"RHYTHM": {**STEADY, "running": 160},
                                           "ITS_TWIN": {**STEADY, "running": running(T)}})
               for n in range(2)]
    [finding] = [f for f in reports[0].findings if f.violated]
    assert (finding.key, finding.rule, finding.current, round(finding.baseline)) == (
        ("RHYTHM", "managed", "SCORE"), "drop", 160.0, 399)
    assert finding.reason == ("running 160 vs 399 (expected at this hour from 4 previous "
                              "days), 60% lower")
    assert [f for f in reports[1].findings if f.violated and f.key[0] == "ITS_TWIN"] == []
    assert [a.key for a in alerts.open_alerts(parts.engine)] == [("RHYTHM", "managed", "SCORE",
                                                                  "drop")]


def test_a_starving_queue_s_batch_layer_names_its_stalled_controller(parts_with):
    """Issue 36 item 4: the queue's site runs on cc-slurm ([slurm] atlas_sites), whose
    slurmctld's agent queue is 12,000 deep: the batch/site layer says so."""
    from qmonit.app.suspicious import open_flags
    from qmonit.stores.state import queues as state_queues
    from qmonit.stores.state.batch import keep_scheduler_readings

    parts = parts_with(slurm={"cluster": "cc-slurm", "atlas_sites": "P-SITE"})
    history(parts, T, {"P": 400})
    pilots_waiting(parts)
    for n in range(2):
        keep_scheduler_readings(parts.engine, {("cc-slurm", "slurmctld", ""): (
            T + n * SLOT, {"agent_queue_size": 12000.0})})
        cycle(parts, T + n * SLOT, {"P": {**STEADY, "running": 1, "activated": 400}})
    assert state_queues.queue_topology(parts.engine)["P"]["atlas_site"] == "P-SITE"
    [incident] = open_flags(parts.engine, T + SLOT)
    assert (incident["layer"], incident["layer_evidence"]) == (
        "batch/site", "pilots wait in the batch system: CERN_central_A (harvester): 30 pilots "
                      "queued, 0 running, 0 done, 0 failed; the batch system: slurmctld of "
                      "cc-slurm: agent queue 12,000 (warning from 1,000): it cannot reach its "
                      "nodes fast enough")
