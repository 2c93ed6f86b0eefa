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
from qmonit.stores.state.batch import LONGEST_RUN_S

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
# boxes are percent-encoded by helpers.sql, so a value with a quote matches nothing. Every
# term is a constant MariaDB folds or a column an index serves: an empty box drops out.


def job_filter(alias: str = "", worker: bool = True) -> str:
    """The Batch filters on a job table (`alias`: its name in a join). The worker box is a
    host (batch_job_hosts: an HTCondor slot's host, any node of a Slurm node list); CPUs
    at least: an empty box is 0; GPU jobs: only those that declared GPUs. `worker=False`:
    without the worker box (on_worker's branches say it)."""
    t = f"{alias}." if alias else ""
    on_host = (f"AND ('$worker' = '' OR ({t}cluster, {t}job_id) IN {LISTED_ON_HOST}) "
               if worker else "")
    return (f"{sql_match(t + 'cluster', 'cluster')} "
            f"AND {sql_match(t + '`partition`', 'partition')} "
            f"AND {sql_match(t + 'owner', 'owner')} AND {sql_match(t + 'state', 'job_state')} "
            f"AND ('$job_id' = '' OR {t}job_id = '$job_id') {on_host}"
            f"AND {t}cpus >= CAST('$min_cpus' AS DECIMAL(12, 3)) "
            f"AND ('$gpu_jobs' <> 'only' OR {t}gpus > 0)")


def on_worker(select: str, where: str, order: str) -> str:
    """`select WHERE where` and the filters over the ended jobs, the worker box included as
    two branches of which MariaDB drops one as impossible: an empty box reads the time
    range; a host is a semi-join read from its index (within an OR, the database would walk
    the whole time range probing each row)."""
    filters = job_filter(worker=False)
    return (f"({select} WHERE '$worker' = '' AND {where} AND {filters} {order}) UNION ALL "
            f"({select} WHERE (cluster, job_id) IN {HOST_JOBS} AND {where} AND {filters} "
            f"{order})")


# the jobs on the host typed in the worker box
HOST_JOBS = "(SELECT h.cluster, h.job_id FROM batch_job_hosts AS h WHERE h.host = '$worker')"
# the listed jobs on that host (end_time NULL): a few rows of the host's index, never its
# 90 days of history, probed for each listed job
LISTED_ON_HOST = ("(SELECT h.cluster, h.job_id FROM batch_job_hosts AS h WHERE h.host = "
                  "'$worker' AND h.end_time IS NULL)")
JOB_FILTER = job_filter()
JOB_COLUMNS = ("cluster, job_id, owner, group_name, state, native_state, reason, cause, "
               "`partition`, worker, cpus, gpus, memory_mb, submit_time, start_time")
# A job running within the time range started before its end and ended after its start;
# an ended one ended at most the longest run any cluster has had after the range's end
# (batch_clusters), so the ended jobs are read on one index range of end_time.
LONGEST_RUN = f"(SELECT COALESCE(MAX(longest_run_s), {LONGEST_RUN_S:.0f}) FROM batch_clusters)"
RUNNING_IN_RANGE = (
    f"SELECT * FROM ((SELECT {JOB_COLUMNS}, NULL AS end_time FROM batch_jobs_current WHERE "
    f"start_time <= $__timeTo() AND {JOB_FILTER} ORDER BY start_time DESC LIMIT 500) "
    f"UNION ALL " + on_worker(
        f"SELECT {JOB_COLUMNS}, end_time FROM batch_jobs_ended",
        f"end_time >= $__timeFrom() AND end_time <= $__timeTo() + INTERVAL {LONGEST_RUN} "
        f"SECOND AND start_time <= $__timeTo()", "ORDER BY end_time DESC LIMIT 500")
    + ") AS ran ORDER BY start_time DESC LIMIT 500")
ENDED_JOBS = ("SELECT * FROM (" + on_worker(f"SELECT {JOB_COLUMNS}, end_time FROM "
                                             f"batch_jobs_ended", "$__timeFilter(end_time)",
                                             "ORDER BY end_time DESC LIMIT 500")
              + ") AS ended ORDER BY end_time DESC LIMIT 500")
# the InfluxDB node panels: the worker box as the start of a node name (empty: every node)
WORKER = ' AND "node" =~ /^${worker:regex}.*/'


def top_owners(state: str) -> str:
    return (f"SELECT owner, COUNT(*) AS jobs, SUM(cpus) AS cpus, SUM(gpus) AS gpus FROM "
            f"batch_jobs_current WHERE state = '{state}' AND {JOB_FILTER} GROUP BY owner "
            f"ORDER BY jobs DESC LIMIT 20")


def use(kind: str) -> str:
    """Allocated / total CPUs (or GPUs) over the nodes of each cluster, per slot."""
    return (f'SELECT sum("{kind}_alloc") / sum("{kind}") AS "use" FROM "$rp"."batch_nodes" '
            f'WHERE $timeFilter{NODES} AND "{kind}" > 0 GROUP BY time($rp), "cluster" fill(none)')


def scheduler(field: str) -> str:
    """One field of each cluster's scheduler daemon (batch_scheduler, sdiag), per slot."""
    return (f'SELECT max("{field}") FROM "$rp"."batch_scheduler" WHERE $timeFilter{NODES} '
            f'GROUP BY time($rp), "cluster" fill(none)')


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
        text_variable("min_cpus", "CPUs at least"),
        custom_variable("gpu_jobs", "GPU jobs", ["any", "only"]),
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
        timeseries("Node states", "Workers per state (idle, mixed, allocated, drained, down); "
                   "the worker box narrows it to the workers whose name starts with it.",
                   [influx('SELECT count("cpus") FROM "$rp"."batch_nodes" WHERE $timeFilter'
                           + NODES + WORKER + ' GROUP BY time($rp), "node_state" fill(none)',
                           alias="$tag_node_state")], stacked=True),
        table("Jobs per worker", "Running jobs on each worker host, most loaded first: an "
              "HTCondor slot counts on its host, a job on several Slurm nodes on each of them "
              "(its CPUs and GPUs split evenly).",
              [sql(f"SELECT h.host AS worker, COUNT(*) AS jobs, SUM(j.cpus * h.share) AS cpus, "
                   f"SUM(j.gpus * h.share) AS gpus, COUNT(DISTINCT j.owner) AS owners FROM "
                   f"batch_jobs_current AS j JOIN batch_job_hosts AS h ON h.cluster = "
                   f"j.cluster AND h.job_id = j.job_id AND h.end_time IS NULL WHERE j.state = "
                   f"'running' AND {job_filter('j')} AND ('$worker' = '' OR h.host = "
                   f"'$worker') GROUP BY h.host ORDER BY jobs DESC "
                   f"LIMIT 100")], width=12),
        timeseries("Jobs per worker over time", "Jobs on each worker (top of the legend: the "
                   "busiest); the worker box narrows it.",
                   [influx('SELECT mean("jobs") FROM "$rp"."batch_nodes" WHERE $timeFilter'
                           + NODES + WORKER + ' GROUP BY time($__interval), "node" fill(none)',
                           alias="$tag_node")], width=12),
        table("Workers", "Each worker's last state in the time range, its CPUs, those "
              "allocated and its jobs (the worker box: the workers whose name starts with it).",
              [influx('SELECT last("cpus") AS "cpus", last("cpus_alloc") AS "cpus_alloc", '
                      'last("gpus") AS "gpus", last("jobs") AS "jobs" FROM "$rp"."batch_nodes" '
                      'WHERE $timeFilter' + NODES + WORKER + ' GROUP BY "cluster", "node", '
                      '"node_state"', fmt="table")], height=8),
        row("Scheduler health"),
        timeseries("slurmctld queues", "Messages waiting in slurmctld's agent queue (to the "
                   "nodes) and its queue to slurmdbd, and its server threads: a deep agent "
                   "queue is a controller that cannot reach its nodes (sdiag).",
                   [influx(scheduler("agent_queue_size"), alias="agent queue $tag_cluster"),
                    influx(scheduler("dbd_agent_queue_size"), ref="B",
                           alias="DBD queue $tag_cluster"),
                    influx(scheduler("server_thread_count"), ref="C",
                           alias="threads $tag_cluster")], width=8),
        timeseries("Scheduling cycles", "How long slurmctld's last main and backfill "
                   "scheduling cycles took: minutes-long cycles start jobs late.",
                   [influx(scheduler("schedule_cycle_last_s"), alias="main $tag_cluster"),
                    influx(scheduler("bf_cycle_last_s"), ref="B",
                           alias="backfill $tag_cluster")], unit="s", width=8),
        timeseries("Jobs started and failed", "Per second over each slot, from sdiag's "
                   "counters (counted from Slurm's midnight reset, never below zero).",
                   [influx(scheduler("jobs_started_per_s"), alias="started $tag_cluster"),
                    influx(scheduler("jobs_failed_per_s"), ref="B",
                           alias="failed $tag_cluster"),
                    influx(scheduler("jobs_submitted_per_s"), ref="C",
                           alias="submitted $tag_cluster")], width=8),
        table("Why nodes are out", "Drained, draining, down and failing nodes by their reason "
              "(its first words: \"NHC: memory\", \"Kill task failed\"), as the last collect "
              "saw them.",
              [sql(f"SELECT reason_class AS reason, COUNT(*) AS nodes, GROUP_CONCAT(DISTINCT "
                   f"node_state) AS states FROM batch_node_reasons WHERE "
                   f"{sql_match('cluster', 'cluster')} AND ('$worker' = '' OR node = "
                   f"'$worker') GROUP BY reason_class ORDER BY nodes DESC LIMIT 50")], width=8),
        table("Node reasons", "Each node that is out: its state, the reason in full, who set it "
              "and when (sinfo -R).",
              [sql(f"SELECT cluster, node, node_state, native_state, reason, reason_by AS "
                   f"set_by, reason_at AS since FROM batch_node_reasons WHERE "
                   f"{sql_match('cluster', 'cluster')} AND ('$worker' = '' OR node = "
                   f"'$worker') ORDER BY reason_at DESC LIMIT 500")], width=16),
        table("Reservations", "Slurm's reservations as last collected: ACTIVE ones hold their "
              "nodes (maintenance, a user's or an account's slot), INACTIVE ones will.",
              [sql(f"SELECT cluster, name, state, nodes, node_count, start_time, end_time, "
                   f"flags, users, accounts, `partition` FROM batch_reservations WHERE "
                   f"{sql_match('cluster', 'cluster')} ORDER BY state, start_time LIMIT 200")],
              height=6),
        row("Look-up"),
        table("Jobs now", "The jobs of the owner, job id and worker chosen above (empty boxes "
              "mean any), as the scheduler listed them last.",
              [sql(f"SELECT {JOB_COLUMNS}, last_seen FROM batch_jobs_current WHERE {JOB_FILTER} "
                   f"ORDER BY submit_time LIMIT 500")], height=10),
        table("Jobs running in the time range", "BBQ's \"running at\" and \"running "
              "between\": current and ended jobs that started before the range's end and "
              "ended after its start (a narrow range: the jobs running at that time), with "
              "the filters above.", [sql(RUNNING_IN_RANGE)], height=10),
        table("Ended jobs", "Jobs that left the queue within the time range (kept "
              "[collect] ended_jobs_days).",
              [sql(ENDED_JOBS)],
              height=10),
    ],
)
