"""Batch Clusters (BBQ): owners, partitions, pending reasons, workers, CPU and GPU use, look-ups."""

from qmonit.core.levels import BATCH_FILTERS
from qmonit.core.states.rules import COMMON_STATES
from qmonit.grafana.helpers import (
    custom_variable,
    influx,
    level_variable,
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
    text_variable,
    timeseries,
)

FILTERS = tag_filter(*BATCH_FILTERS)
BATCH_JOBS = "$batch_jobs_m"  # batch_jobs_by_partition until an owner is chosen
NODES = tag_filter(("cluster", "cluster"))
PARTITIONS = tag_filter(("cluster", "cluster"), ("partition", "partition"))
# the Partitions table: column -> its InfluxQL over each partition's latest point
PARTITION_COLUMNS = {
    "nodes": '"nodes"', "idle": '"nodes_idle"', "in_use": '"nodes_mixed" + "nodes_allocated"',
    "draining_drained": '"nodes_draining" + "nodes_drained"', "down": '"nodes_down"',
    "other": '"nodes_powered_down" + "nodes_reserved" + "nodes_maintenance" + "nodes_unknown"',
    "cpus_alloc": '"cpus_alloc"', "cpus": '"cpus"', "cpu_use": '"cpus_alloc" / "cpus"'}
PARTITION_FIELDS = ("nodes", "cpus", "cpus_alloc", "nodes_idle", "nodes_mixed",
                    "nodes_allocated", "nodes_draining", "nodes_drained", "nodes_down",
                    "nodes_powered_down", "nodes_reserved", "nodes_maintenance", "nodes_unknown")
# The variables are InfluxDB tag values with All as ".*" (helpers.sql_match); the text
# boxes are percent-encoded by helpers.sql, so a value with a quote matches nothing.
JOB_FILTER = (f"{sql_match('cluster', 'cluster')} AND {sql_match('`partition`', 'partition')} "
              f"AND {sql_match('owner', 'owner')} AND {sql_match('state', 'job_state')} "
              f"AND ('$job_id' = '' OR job_id = '$job_id') "
              f"AND ('$worker' = '' OR worker = '$worker')")
JOB_COLUMNS = ("cluster, job_id, owner, group_name, state, native_state, reason, cause, "
               "`partition`, worker, cpus, gpus, memory_mb, submit_time, start_time")


def top_owners(state: str) -> str:
    return (f"SELECT owner, COUNT(*) AS jobs, SUM(cpus) AS cpus, SUM(gpus) AS gpus FROM "
            f"batch_jobs_current WHERE state = '{state}' AND {JOB_FILTER} GROUP BY owner "
            f"ORDER BY jobs DESC LIMIT 20")


def use(kind: str) -> str:
    """Allocated / total CPUs (or GPUs) over the nodes of each cluster, per slot."""
    return (f'SELECT sum("{kind}_alloc") / sum("{kind}") AS "use" FROM "$rp"."batch_nodes" '
            f'WHERE $timeFilter{NODES} AND "{kind}" > 0 GROUP BY time($rp), "cluster" fill(none)')


def partitions() -> str:
    """Each partition's latest point; a series with no node left (the state the partition
    had before, zero-filled after it changed) is not a row."""
    latest = ", ".join(f'last("{field}") AS "{field}"' for field in PARTITION_FIELDS)
    columns = ", ".join(f'{expression} AS "{name}"'
                        for name, expression in PARTITION_COLUMNS.items())
    by = 'GROUP BY "cluster", "partition", "partition_state"'
    return (f'SELECT {columns} FROM (SELECT {latest} FROM "$rp"."batch_partitions" WHERE '
            f'$timeFilter{PARTITIONS} {by}) WHERE "nodes" > 0 {by}')


dashboard = qmonit_dashboard(
    uid="qmonit-batch", title="Batch Clusters",
    description="HTCondor and Slurm clusters: who runs and waits, where, why pending, how full "
                "the workers are; look up an owner, a job or a worker.",
    variables=[
        rp_variable(),
        tag_variable("cluster", "batch_jobs_by_partition", "cluster", "Cluster"),
        tag_variable("partition", "batch_jobs_by_partition", "partition", "Partition",
                     [("cluster", "cluster")]),
        tag_variable("owner", "batch_jobs", "owner", "Owner", [("cluster", "cluster")]),
        level_variable("batch_jobs_m"),  # after the filters it depends on
        custom_variable("job_state", "State", list(COMMON_STATES), with_all=True),
        text_variable("job_id", "Job id"),
        text_variable("worker", "Worker"),
    ],
    panels=[
        row("Now"),
        stat("Running jobs", "Jobs running in the clusters, partitions and owners selected "
             "(the last collect).",
             [sql(f"SELECT COUNT(*) AS running FROM batch_jobs_current WHERE state = "
                  f"'running' AND {JOB_FILTER}")], width=6),
        stat("Pending jobs", "Jobs waiting to start.",
             [sql(f"SELECT COUNT(*) AS pending FROM batch_jobs_current WHERE state = "
                  f"'pending' AND {JOB_FILTER}")], width=6),
        stat("CPU use", "Allocated / total CPUs of the workers in the last slot.",
             [influx(use("cpus"))], unit="percentunit",
             steps=((None, "blue"), (0.95, "green")), width=6),
        stat("GPU use", "Allocated / total GPUs of the workers that have GPUs, last slot.",
             [influx(use("gpus"))], unit="percentunit",
             steps=((None, "blue"), (0.95, "green")), width=6),
        table("Top owners by running jobs", "The 20 owners with the most running jobs, with "
              "the CPUs and GPUs they hold.", [sql(top_owners("running"))], width=12),
        table("Top owners by pending jobs", "The 20 owners with the most pending jobs.",
              [sql(top_owners("pending"))], width=12),
        table("Partitions", "Each Slurm partition as last collected: its state (UP, DOWN, "
              "DRAIN, INACTIVE; UNKNOWN where sinfo --json before 23.11 does not say), its "
              "nodes by state (in_use: mixed or allocated; other: powered down, reserved, "
              "maintenance, unknown) and its CPUs in use of all. A node in several partitions "
              "counts in each.", [influx(partitions(), fmt="table")],
              overrides=[{"matcher": {"id": "byName", "options": "cpu_use"},
                          "properties": [{"id": "unit", "value": "percentunit"}]}]),
        row("Over time"),
        timeseries("Jobs by partition and state", "Jobs per partition and mapped state, "
                   "summed per slot.",
                   [influx(per_slot(BATCH_JOBS, "jobs", FILTERS, ["partition", "state"]),
                           alias="$tag_partition $tag_state")], stacked=True),
        timeseries("Pending reasons", "Why jobs wait: the scheduler's pending reason (Slurm) "
                   "or hold reason (HTCondor).",
                   [influx(per_slot(BATCH_JOBS, "jobs", FILTERS + " AND \"state\" = "
                                    "'pending'", ["reason"]), alias="$tag_reason")],
                   stacked=True),
        timeseries("CPU and GPU use", "Allocated / total CPUs and GPUs per cluster.",
                   [influx(use("cpus"), alias="CPU $tag_cluster"),
                    influx(use("gpus"), ref="B", alias="GPU $tag_cluster")],
                   unit="percentunit"),
        timeseries("Node states", "Workers per state (idle, mixed, allocated, drained, down).",
                   [influx('SELECT count("cpus") FROM "$rp"."batch_nodes" WHERE $timeFilter'
                           + NODES + ' GROUP BY time($rp), "node_state" fill(none)',
                           alias="$tag_node_state")], stacked=True),
        table("Jobs per worker", "Running jobs and the CPUs they use on each worker, most "
              "loaded first.",
              [sql(f"SELECT worker, COUNT(*) AS jobs, SUM(cpus) AS cpus, SUM(gpus) AS gpus, "
                   f"COUNT(DISTINCT owner) AS owners FROM batch_jobs_current WHERE state = "
                   f"'running' AND {JOB_FILTER} GROUP BY worker ORDER BY jobs DESC LIMIT 100")],
              width=12),
        timeseries("Jobs per worker over time", "Jobs on each worker (top of the legend: the "
                   "busiest).",
                   [influx('SELECT mean("jobs") FROM "$rp"."batch_nodes" WHERE $timeFilter'
                           + NODES + ' GROUP BY time($__interval), "node" fill(none)',
                           alias="$tag_node")], width=12),
        row("Look-up"),
        table("Jobs now", "The jobs of the owner, job id and worker chosen above (empty boxes "
              "mean any), as the scheduler listed them last.",
              [sql(f"SELECT {JOB_COLUMNS}, last_seen FROM batch_jobs_current WHERE {JOB_FILTER} "
                   f"ORDER BY submit_time LIMIT 500")], height=10),
        table("Ended jobs", "Jobs that left the queue within the time range (kept "
              "[collect] ended_jobs_days).",
              [sql(f"SELECT {JOB_COLUMNS}, end_time FROM batch_jobs_ended WHERE "
                   f"$__timeFilter(end_time) AND {JOB_FILTER} ORDER BY end_time DESC LIMIT 500")],
              height=10),
    ],
)
