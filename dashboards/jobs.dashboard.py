"""Jobs Monitoring (QMonit): PanDA jobs, cores and HS06 by state, per cloud, site and queue."""

from qmonit.core.levels import JOB_FILTERS, JOB_SPLITS
from qmonit.grafana.helpers import (
    custom_variable,
    dashboard_url,
    influx,
    level_variable,
    per_slot,
    qmonit_dashboard,
    row,
    rp_variable,
    stat,
    tag_filter,
    tag_variable,
    timeseries,
)

FILTERS = tag_filter(*JOB_FILTERS)
# The measurement each panel reads: a level of write-time aggregates while the filters it
# would need are on All, the per-queue "jobs" once narrowed (qmonit/core/levels.py).
TOTALS, SPLIT, STATUS = "$jobs_m", "$jobs_split_m", "$jobs_status_m"
NOW_FILTERS = FILTERS.replace(' AND "state" =~ /^$state$/', "")


def current(state: str) -> str:
    return per_slot(TOTALS, "$metric", f"{NOW_FILTERS} AND \"state\" = '{state}'")


def failure_ratio() -> str:
    """failed / (failed + completed) per slot, over the PanDA time window of each slot."""
    source = f'FROM "$rp"."{TOTALS}" WHERE $timeFilter{NOW_FILTERS}'
    failed = (f'SELECT sum("jobs") AS "failed" {source} AND "state" = \'failed\' '
              "GROUP BY time($rp)")
    ended = (f'SELECT sum("jobs") AS "ended" {source} AND "state" =~ /^(failed|completed)$/ '
             "GROUP BY time($rp)")
    return (f'SELECT sum("failed") / sum("ended") AS "failure_ratio" FROM ({failed}), ({ended}) '
            "WHERE $timeFilter GROUP BY time($rp) fill(none)")


dashboard = qmonit_dashboard(
    uid="qmonit-jobs", title="Jobs Monitoring",
    description="PanDA jobs per queue every 10 minutes, with CRIC's topology (QMonit).",
    variables=[
        rp_variable(),
        custom_variable("metric", "Count", ["jobs", "cores", "hs06"]),
        custom_variable("group_by", "Split by", list(JOB_SPLITS)),
        # each read from the smallest level that has the tag and the filters above it
        tag_variable("cloud", "jobs_by_state", "cloud", "Cloud"),
        tag_variable("tier", "jobs_by_state", "tier", "Tier", [("cloud", "cloud")]),
        tag_variable("site", "jobs_by_queue", "atlas_site", "Site",
                     [("cloud", "cloud"), ("tier", "tier")]),
        tag_variable("queue", "jobs_by_queue", "panda_queue", "Queue",
                     [("cloud", "cloud"), ("tier", "tier"), ("site", "atlas_site")]),
        tag_variable("prod_source", "jobs_by_state", "prod_source", "Prod source"),
        tag_variable("resource_type", "jobs_by_state", "resource_type", "Resource type"),
        tag_variable("state", "jobs_by_state", "state", "State"),
        # after the filters they depend on: Grafana refreshes them when those change
        level_variable("jobs_m"), level_variable("jobs_split_m"), level_variable("jobs_status_m"),
    ],
    panels=[
        row("Now"),
        stat("Running", "Jobs (or cores, HS06: the Count variable) in state running in the "
             "last slot of the range, for the queues selected.",
             [influx(current("running"))], steps=((None, "green"),)),
        stat("Pending", "Jobs waiting for a pilot or for input (defined, assigned, activated, "
             "...) in the last slot.", [influx(current("pending"))], steps=((None, "blue"),)),
        stat("Failed (time window)", "Jobs that failed within PanDA's time window (by default "
             "the last hour) before the last slot.", [influx(current("failed"))],
             steps=((None, "green"), (1, "orange"))),
        stat("Completed (time window)", "Jobs that finished within PanDA's time window before "
             "the last slot.", [influx(current("completed"))], steps=((None, "green"),)),
        stat("Failure ratio", "failed / (failed + completed) in the last slot; above 20 % "
             "orange, above 50 % red.", [influx(failure_ratio())], unit="percentunit",
             steps=((None, "green"), (0.2, "orange"), (0.5, "red")), width=8),
        row("Over time"),
        timeseries("By state", "The Count per mapped state (qmonit's state rules over PanDA's "
                   "job_status), summed per 10-minute slot, then averaged over the interval.",
                   [influx(per_slot(TOTALS, "$metric", FILTERS, ["state"]), alias="$tag_state")],
                   stacked=True),
        timeseries("Running, split", "Running jobs (or cores, HS06) split by the 'Split by' "
                   "variable: cloud, site, queue, ...",
                   [influx(per_slot(SPLIT, "$metric", f"{NOW_FILTERS} AND \"state\" = "
                                    "'running'", ["$group_by"]), alias="$tag_$group_by")],
                   stacked=True,
                   links=[{"title": "DAOD distribution: is the analysis data where these "
                                    "jobs run?",
                           "url": dashboard_url("qmonit-daod", cloud="$cloud")}]),
        timeseries("Pending, split", "Pending jobs split by the 'Split by' variable.",
                   [influx(per_slot(SPLIT, "$metric", f"{NOW_FILTERS} AND \"state\" = "
                                    "'pending'", ["$group_by"]), alias="$tag_$group_by")],
                   stacked=True),
        timeseries("Failure ratio", "failed / (failed + completed) per slot, each over PanDA's "
                   "time window.", [influx(failure_ratio(), alias="failure ratio")],
                   unit="percentunit"),
        timeseries("By PanDA job status", "The raw PanDA job_status, before the state rules.",
                   [influx(per_slot(STATUS, "$metric", FILTERS, ["job_status"]),
                           alias="$tag_job_status")], width=24),
    ],
)
