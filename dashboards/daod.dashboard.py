"""DAOD distribution: are analysis data placed where the analysis jobs run?

The hourly `datadisk` points (qmonit run datadisk): per datadisk its share of all DAOD
bytes against its share of the analysis jobs running at the queues that read it, and
their ratio (1: placed as used; above 1: too little data for the analysis that runs
there; below 1: data nobody analyses). The points are hourly: every panel reads the
"1h" policy whatever the time range.
"""

from qmonit.grafana.helpers import (
    influx,
    qmonit_dashboard,
    row,
    stat,
    table,
    tag_filter,
    tag_variable,
    threshold_column,
    timeseries,
)

FILTERS = (("cloud", "cloud"), ("tier", "tier"), ("rse", "rse"))
WHERE = f'WHERE $timeFilter{tag_filter(*FILTERS)}'
FROM = f'FROM "1h"."datadisk" {WHERE}'
RATIO_STEPS = ((None, "blue"), (0.5, "green"), (2, "orange"), (5, "red"))


def latest(field: str) -> str:
    """The newest value of `field` per datadisk, as a subquery to rank."""
    return f'(SELECT last("{field}") AS "{field}" {FROM} GROUP BY "rse")'


dashboard = qmonit_dashboard(
    uid="qmonit-daod", title="DAOD distribution",
    description="Per datadisk: its share of the DAOD data against its share of the analysis "
                "jobs running where it is read; the most over- and under-supplied datadisks.",
    time_from="now-7d",
    variables=[
        tag_variable("cloud", "datadisk", "cloud", "Cloud"),
        tag_variable("tier", "datadisk", "tier", "Tier", parents=[("cloud", "cloud")]),
        tag_variable("rse", "datadisk", "rse", "Datadisk",
                     parents=[("cloud", "cloud"), ("tier", "tier")]),
    ],
    panels=[
        row("Now"),
        stat("Datadisks", "Datadisks with DAOD data or analysis jobs in the last hourly run.",
             [influx(f'SELECT count("share_of_daod") FROM {latest("share_of_daod")}')],
             width=6),
        stat("DAOD bytes", "DAOD bytes on the selected datadisks (the last hourly run).",
             [influx(f'SELECT sum("daod_bytes") FROM {latest("daod_bytes")}')],
             unit="bytes", width=6),
        stat("Analysis jobs running", "Running analysis jobs at the queues that read the "
             "selected datadisks (a queue reading several counts on each).",
             [influx(f'SELECT sum("analysis_running") FROM {latest("analysis_running")}')],
             width=6),
        stat("Worst placement ratio", "The highest share of analysis / share of DAOD among "
             "the selected datadisks: analysis running against too little data.",
             [influx(f'SELECT max("placement_ratio") FROM {latest("placement_ratio")}')],
             steps=RATIO_STEPS, width=6),
        table("Most under-supplied datadisks", "The ten highest placement ratios (share of "
              "analysis / share of DAOD): more analysis runs here than its DAOD would draw.",
              [influx(f'SELECT top("placement_ratio", "rse", 10) AS "placement_ratio" FROM '
                      f'{latest("placement_ratio")}', fmt="table")],
              overrides=[threshold_column("placement_ratio", RATIO_STEPS)], width=12),
        table("Most over-supplied datadisks", "The ten lowest placement ratios: DAOD data "
              "that few analysis jobs read (0: no queue runs analysis against it).",
              [influx(f'SELECT bottom("placement_ratio", "rse", 10) AS "placement_ratio" FROM '
                      f'{latest("placement_ratio")}', fmt="table")],
              overrides=[threshold_column("placement_ratio", RATIO_STEPS)], width=12),
        table("Every datadisk", "The last hourly run per datadisk: DAOD bytes and files, "
              "analysis running now and on average, both shares and their ratio.",
              [influx('SELECT last("daod_bytes") AS "daod_bytes", last("daod_files") AS '
                      '"daod_files", last("analysis_running") AS "analysis_running", '
                      'last("analysis_running_avg24h") AS "analysis_running_avg24h", '
                      'last("share_of_daod") AS "share_of_daod", last("share_of_analysis") '
                      'AS "share_of_analysis", last("placement_ratio") AS "placement_ratio" '
                      f'{FROM} GROUP BY "rse", "atlas_site", "cloud", "tier"', fmt="table")],
              overrides=[threshold_column("placement_ratio", RATIO_STEPS)], height=10),
        row("Over time"),
        timeseries("Share of DAOD and share of analysis", "Per datadisk, hour by hour: the "
                   "two shares a good placement keeps together.",
                   [influx(f'SELECT mean("share_of_daod") AS "DAOD" {FROM} GROUP BY '
                           f'time(1h), "rse" fill(none)', alias="$tag_rse $col"),
                    influx(f'SELECT mean("share_of_analysis") AS "analysis" {FROM} GROUP BY '
                           f'time(1h), "rse" fill(none)', ref="B", alias="$tag_rse $col")],
                   unit="percentunit"),
        timeseries("Placement ratio", "Share of analysis / share of DAOD per datadisk, hour "
                   "by hour (1: placed as used).",
                   [influx(f'SELECT mean("placement_ratio") {FROM} GROUP BY time(1h), "rse" '
                           f'fill(none)', alias="$tag_rse")]),
    ],
)
