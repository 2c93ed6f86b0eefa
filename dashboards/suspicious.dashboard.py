"""Suspicious Sites: queue_stats (current vs moving averages, flags), suspicious series, alerts."""

from qmonit.core.model import RULES
from qmonit.derive.incidents import OPEN_INCIDENTS_SQL
from qmonit.grafana.helpers import (
    SEVERITY_COLOURS,
    colour_column,
    dashboard_url,
    influx,
    link_column,
    qmonit_dashboard,
    row,
    rp_variable,
    sql,
    sql_variable,
    stat,
    table,
    tag_filter,
    timeseries,
)

SQL_FILTERS = ("cloud IN (${cloud:sqlstring}) AND atlas_site IN (${site:sqlstring}) "
               "AND prod_source IN (${prod_source:sqlstring})")
FLAGGED = " OR ".join(f"{rule}_flag IS NOT NULL" for rule in RULES)
QUEUE_LINK = dashboard_url("qmonit-jobs", queue="${__data.fields.panda_queue}")
SEVERITY = colour_column("severity", SEVERITY_COLOURS)
# the findings that raised a flag (a level written with `suspicious`), not all ~15,000 judged
FLAGS = 'FROM "$rp"."suspicious_flagged"'
FLAG_FILTERS = tag_filter(("cloud", "cloud"), ("site", "atlas_site"))
FLAG_COLOURS = [colour_column(f"{rule}_flag", SEVERITY_COLOURS) for rule in RULES]

dashboard = qmonit_dashboard(
    uid="qmonit-suspicious", title="Suspicious Sites",
    description="Queues whose counts left their moving averages: the derive job's flags, "
                "with hysteresis, and the alerts sent to the shift.",
    variables=[
        rp_variable(),
        sql_variable("cloud", "Cloud", "SELECT DISTINCT cloud FROM queue_stats ORDER BY 1"),
        sql_variable("site", "Site", "SELECT DISTINCT atlas_site FROM queue_stats WHERE "
                     "cloud IN (${cloud:sqlstring}) ORDER BY 1"),
        sql_variable("prod_source", "Prod source",
                     "SELECT DISTINCT prod_source FROM queue_stats ORDER BY 1"),
    ],
    panels=[
        row("Now"),
        stat("Open incidents", "Queues (or sources) with an open flag now: one incident "
             "each, however many of its rules and splits are flagged.",
             [sql("SELECT COUNT(DISTINCT panda_queue) AS open_incidents FROM alerts WHERE "
                  "closed_at IS NULL")], steps=((None, "green"), (1, "orange")), width=6),
        stat("Critical", "Open incidents of critical severity (one of its flags is).",
             [sql("SELECT COUNT(DISTINCT panda_queue) AS critical FROM alerts WHERE closed_at "
                  "IS NULL AND severity = 'critical'")], steps=((None, "green"), (1, "red")),
             width=6),
        stat("Queues flagged", "Queue × prod_source × resource rows with at least one flag.",
             [sql(f"SELECT COUNT(*) AS flagged FROM queue_stats WHERE ({FLAGGED}) AND "
                  f"{SQL_FILTERS}")], steps=((None, "green"), (1, "orange")), width=6),
        stat("Last derive", "Minutes since the derive job last judged the queues.",
             [sql("SELECT TIMESTAMPDIFF(MINUTE, MAX(derived_at), UTC_TIMESTAMP()) AS minutes "
                  "FROM queue_stats")], unit="m",
             steps=((None, "green"), (30, "red")), width=6),
        table("Open incidents", "One row per queue with open flags, as `qmonit suspicious` "
              "shows them: CRIC's site, tier, status and pilot manager (with the Harvester "
              "instance); the principal rule (nearest the cause: a starving queue drops too) "
              "and its split; the incident's severity (the highest of its flags) and state "
              "(open: violated at its as-of slot; recovering: clean since, closing; unjudged: "
              "its source is stale, the numbers are of the as-of slot); since when and for "
              "how long; the layer likely at fault with its evidence; the value that tripped "
              "it and its baseline, both in the unit the metric names; and the queue's other "
              "open flags as `also`. The queue links to its jobs.",
              [sql(OPEN_INCIDENTS_SQL)],
              overrides=[SEVERITY, link_column("panda_queue", "Jobs of this queue",
                                               QUEUE_LINK)]),
        table("Queue statistics", "queue_stats: current counts of the last slot against the "
              "moving averages over 1 h, 24 h and 7 days; a flag column is coloured by "
              "severity. Flagged rows first.",
              [sql(f"SELECT panda_queue, prod_source, resource, atlas_site, cloud, site_state, "
                   f"running, running_avg_1h, running_avg_24h, running_avg_7d, activated, "
                   f"activated_avg_24h, failed, failed_avg_24h, "
                   f"{', '.join(f'{rule}_flag' for rule in RULES)}, flag_reason, slot_time "
                   f"FROM queue_stats WHERE {SQL_FILTERS} ORDER BY ({FLAGGED}) DESC, "
                   f"panda_queue, prod_source, resource")],
              overrides=[*FLAG_COLOURS, link_column("panda_queue", "Jobs of this queue",
                                                    QUEUE_LINK)], height=12),
        row("History"),
        timeseries("Flags raised", "Flagged findings per rule and slot (the suspicious "
                   "series).",
                   [influx(f'SELECT sum("flagged") {FLAGS} WHERE $timeFilter{FLAG_FILTERS}'
                           + ' GROUP BY time($rp), "rule" fill(none)', alias="$tag_rule")],
                   stacked=True),
        timeseries("Score of flagged queues", "How far (in spreads) the current value is from "
                   "its baseline, per flagged queue and rule.",
                   [influx(f'SELECT max("score") {FLAGS} WHERE $timeFilter AND "flagged" > 0'
                           f'{FLAG_FILTERS} GROUP BY time($rp), "panda_queue", "rule" fill(none)',
                           alias="$tag_panda_queue $tag_rule")]),
        table("Flags in the time range", "Every flag opened in the time range, closed or not, "
              "one row per rule and split (an incident's flags each).",
              [sql("SELECT panda_queue, prod_source, resource, rule, severity, opened_at, "
                   "closed_at, reason, notified_open, notified_close FROM alerts WHERE "
                   "$__timeFilter(opened_at) ORDER BY opened_at DESC")],
              overrides=[SEVERITY, link_column("panda_queue", "Jobs of this queue",
                                               QUEUE_LINK)]),
    ],
)
