"""Pipeline Health: qmonit watching itself: stale sources, run times, errors, spool, alerts."""

from qmonit.grafana.helpers import (
    colour_column,
    custom_variable,
    influx,
    qmonit_dashboard,
    row,
    rp_variable,
    sql,
    stat,
    table,
    threshold_column,
    timeseries,
)
from qmonit.grafana.provision import STALE_MINUTES

SINCE_OK = "TIMESTAMPDIFF(MINUTE, last_ok_slot, UTC_TIMESTAMP())"
RUNS = 'FROM "$rp"."qmonit_run" WHERE $timeFilter AND "job" =~ /^$job$/'

dashboard = qmonit_dashboard(
    uid="qmonit-pipeline", title="Pipeline Health",
    description="Is qmonit itself well: every source's last successful write, run times, "
                "errors, the spool, notifications.",
    variables=[
        rp_variable(),
        custom_variable("job", "Job", ["collect", "derive", "hourly", "daily"],
                        with_all=True),
    ],
    panels=[
        row("Now"),
        stat("Stale sources", f"Sources of the collect job with no successful write for more "
             f"than {STALE_MINUTES} minutes: their dashboards show old numbers.",
             [sql(f"SELECT COUNT(*) AS stale FROM source_status WHERE job = 'collect' AND "
                  f"(last_ok_slot IS NULL OR {SINCE_OK} > {STALE_MINUTES})")],
             steps=((None, "green"), (1, "red")), width=6),
        stat("Spool backlog", "Bytes waiting in the spool for InfluxDB (replayed by the next "
             "collect).",
             [influx(f'SELECT last("spool_bytes") {RUNS} AND "source" = \'sinks\'')],
             unit="bytes", steps=((None, "green"), (1, "orange")), width=6),
        stat("Errors", "Errors of all runs in the time range.",
             [influx(f'SELECT sum("errors") {RUNS}')], reduce="sum",
             steps=((None, "green"), (1, "orange")), width=6),
        stat("Notifications sent", "Alert notifications (e-mail, webhook) sent in the time "
             "range.",
             [influx('SELECT sum("sent") FROM "$rp"."qmonit_run" WHERE $timeFilter AND '
                     '"job" = \'derive\'')], reduce="sum", width=6),
        table("Sources", f"Each job's sources: minutes since the last successful write (red "
              f"past {STALE_MINUTES}), the last run's status and message.",
              [sql(f"SELECT job, source, {SINCE_OK} AS minutes_since_ok, IF(last_ok_slot IS "
                   f"NULL OR {SINCE_OK} > {STALE_MINUTES}, 'stale', 'fresh') AS freshness, "
                   f"status, last_slot, last_run_at, points, duration_s, message FROM "
                   f"source_status ORDER BY job, source")],
              overrides=[threshold_column("minutes_since_ok",
                                          ((None, "green"), (STALE_MINUTES, "red"))),
                         colour_column("freshness", {"fresh": "green", "stale": "red"}),
                         colour_column("status", {"ok": "green", "failed": "red"})],
              height=9),
        row("Over time"),
        timeseries("Run durations", "Seconds each source and job took, per run.",
                   [influx(f'SELECT max("duration_s") {RUNS} GROUP BY time($__interval), "job", '
                           f'"source" fill(none)', alias="$tag_job $tag_source")], unit="s"),
        timeseries("Errors", "Errors per job and source: failed sources, rejected points, "
                   "state-store errors.",
                   [influx(f'SELECT sum("errors") {RUNS} GROUP BY time($__interval), "job", '
                           f'"source" fill(none)', alias="$tag_job $tag_source")],
                   stacked=True),
        timeseries("Points written and spooled", "Points the sinks wrote, spooled and "
                   "replayed per run.",
                   [influx(f'SELECT sum("points") AS "written", sum("spooled") AS "spooled", '
                           f'sum("replayed") AS "replayed" {RUNS} AND "source" = \'sinks\' '
                           f'GROUP BY time($__interval) fill(none)')]),
        timeseries("Spool backlog", "Bytes in the spool after each collect.",
                   [influx(f'SELECT max("spool_bytes") {RUNS} AND "source" = \'sinks\' '
                           f'GROUP BY time($__interval) fill(none)', alias="spool")],
                   unit="bytes"),
        timeseries("Notifications", "Notifications sent and failed per channel.",
                   [influx('SELECT sum("sent") AS "sent", sum("errors") AS "failed" FROM '
                           '"$rp"."qmonit_run" WHERE $timeFilter AND "job" = \'derive\' AND '
                           '"source" != \'derive\' GROUP BY time($__interval), "source" '
                           'fill(none)', alias="$tag_source $col")], width=24),
        table("Failed runs", "Every failed run in the time range with its message.",
              [influx(f'SELECT "message", "errors" {RUNS} AND "status" = \'failed\' GROUP BY '
                      f'"job", "source"', fmt="table")]),
    ],
)
