"""Pilot Factories (the AutoPyFactory monitor): factories, their labels, pilots over time."""

from qmonit.core.levels import WORKER_FILTERS
from qmonit.grafana.helpers import (
    colour_column,
    dashboard_url,
    influx,
    level_variable,
    link_column,
    per_slot,
    qmonit_dashboard,
    row,
    rp_variable,
    sql,
    sql_match,
    stat,
    table,
    tag_filter,
    tag_variable,
    threshold_column,
    timeseries,
)
from qmonit.stores.state.status import APF_COUNTS

COUNTS = APF_COUNTS
# The variables are InfluxDB tag values with All as ".*" (helpers.sql_match).
LABEL_FILTER = f"{sql_match('factory', 'factory')} AND {sql_match('label', 'queue')}"
FILTERS = tag_filter(*WORKER_FILTERS)
WORKERS = "$workers_m"  # workers_by_cloud until a queue is chosen (qmonit/core/levels.py)
TO_FACTORY = dashboard_url("qmonit-factories", factory="${__data.fields.factory}")
TO_QUEUE = dashboard_url("qmonit-factories", factory="${__data.fields.factory}",
                         queue="${__data.fields.label}")
TO_JOBS = dashboard_url("qmonit-jobs", queue="${__data.fields.label}")
TROUBLE = colour_column("in_trouble", {"1": "red", "0": "green"})

dashboard = qmonit_dashboard(
    uid="qmonit-factories", title="Pilot Factories",
    description="Pilots of every factory and label (PanDA queue): created, running, exiting, "
                "and done and fault over the last hour; queues in trouble first.",
    variables=[
        rp_variable(),
        tag_variable("factory", "workers_by_cloud", "factory", "Factory"),
        tag_variable("cloud", "workers_by_cloud", "cloud", "Cloud", [("factory", "factory")]),
        tag_variable("queue", "workers", "panda_queue", "Queue",
                     [("factory", "factory"), ("cloud", "cloud")]),
        level_variable("workers_m"),  # after the filters it depends on
    ],
    panels=[
        row("Now"),
        stat("Queues in trouble", "Labels whose pilots fault more than they finish, or whose "
             "activated jobs get no pilot (see the label table's message).",
             [sql(f"SELECT COALESCE(SUM(in_trouble), 0) AS in_trouble FROM factory_labels "
                  f"WHERE {LABEL_FILTER}")], steps=((None, "green"), (1, "red")), width=6),
        stat("Pilots running", "Pilots running now, all factories and labels selected.",
             [sql(f"SELECT COALESCE(SUM(running), 0) AS running FROM factory_labels WHERE "
                  f"{LABEL_FILTER}")], width=6),
        stat("Fault, last hour", "Pilots that faulted or were held in the last hour.",
             [sql(f"SELECT COALESCE(SUM(fault), 0) AS fault FROM factory_labels WHERE "
                  f"{LABEL_FILTER}")], steps=((None, "green"), (1, "orange")), width=6),
        stat("Oldest label update", "Minutes since the oldest label shown was updated; past "
             "30 the factory's schedd has stopped answering.",
             [sql(f"SELECT TIMESTAMPDIFF(MINUTE, MIN(updated_at), UTC_TIMESTAMP()) AS minutes "
                  f"FROM factory_labels WHERE {LABEL_FILTER}")], unit="m",
             steps=((None, "green"), (30, "red")), width=6),
        table("Factories", "Every factory: its labels, pilots created (queued), running, "
              "exiting, and done and fault over the last hour. The factory links to its "
              "labels.",
              [sql(f"SELECT factory, COUNT(*) AS labels, SUM(in_trouble) AS in_trouble, "
                   f"{', '.join(f'SUM({c}) AS {c}' for c in COUNTS)}, MAX(updated_at) AS "
                   f"updated_at FROM factory_labels WHERE {sql_match('factory', 'factory')} "
                   f"GROUP BY factory ORDER BY factory")],
              overrides=[link_column("factory", "Labels of this factory", TO_FACTORY),
                         threshold_column("in_trouble", ((None, "green"), (1, "red")))],
              height=7),
        table("Labels", "Per factory (AutoPyFactory and Harvester) and label (PanDA queue) "
              "the latest message: activated jobs, pilots and what the factory does next. "
              "Queues in trouble first and red.",
              [sql(f"SELECT factory, label, atlas_site, cloud, in_trouble, "
                   f"{', '.join(COUNTS)}, activated, message, updated_at, factory_type "
                   "FROM factory_labels "
                   f"WHERE {LABEL_FILTER} ORDER BY in_trouble DESC, factory, label")],
              overrides=[TROUBLE, link_column("factory", "Labels of this factory", TO_FACTORY),
                         link_column("label", "This queue's pilots", TO_QUEUE),
                         link_column("activated", "This queue's jobs", TO_JOBS)],
              height=12),
        row("Over time"),
        timeseries("APF pilots by state", "Pilots per APF state, summed per slot; done and "
                   "fault count the last hour.",
                   [influx(per_slot(WORKERS, "workers", FILTERS + " AND \"factory_type\" = "
                                    "'apf'", ["worker_status"]), alias="$tag_worker_status")],
                   stacked=True),
        timeseries("Harvester workers by status", "Harvester workers per status (PanDA's "
                   "worker statistics, updated in the last 4 hours).",
                   [influx(per_slot(WORKERS, "workers", FILTERS + " AND \"factory_type\" = "
                                    "'harvester'", ["worker_status"]),
                           alias="$tag_worker_status")], stacked=True),
        timeseries("Running pilots per factory", "Pilots and workers running, per factory.",
                   [influx(per_slot(WORKERS, "workers", FILTERS + " AND \"state\" = "
                                    "'running'", ["factory"]), alias="$tag_factory")],
                   stacked=True, width=24),
    ],
)
