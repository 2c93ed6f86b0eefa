"""A small batch history by hand, for `qmonit jobs` and the Batch Clusters dashboard: jobs
that started before a time and ended after it, ended exactly at it, still running, an
HTCondor slot, a Slurm node list; and how it reaches the tables (through sync_jobs)."""

from datetime import UTC, datetime, timedelta

from qmonit.core.batchjobs import BatchJob
from qmonit.stores.state.batch import sync_jobs

KEEP = timedelta(days=90)


def at(hour, minute=0, day=1, month=12):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def job(job_id, owner, state, worker, start, end=None, cpus=1.0, gpus=0.0):
    return BatchJob(job_id=job_id, owner=owner, group="atlas", partition="grid",
                    native_state=state.upper(), worker=worker, submit_time=at(0),
                    start_time=start, end_time=end, cpus=cpus, gpus=gpus, memory_mb=2000.0,
                    state=state)


CURRENT = {
    "htc": [job("sched#1.0", "alice", "running", "slot1_3@wn01.in2p3.fr", at(10)),
            job("sched#2.0", "alice", "pending", "", None, cpus=8.0)],
    "slurm": [job("700", "bob", "running", "wn[0012-0014]", at(11), cpus=64.0, gpus=4.0),
              job("701", "bob", "running", "wn0013", at(11, 30), cpus=2.0)],
}
ENDED = {  # listed once, then gone: moved to batch_jobs_ended with their end
    "htc": [job("sched#0.0", "alice", "completed", "slot2@wn01.in2p3.fr", at(1), at(4))],
    "slurm": [job("650", "carol", "failed", "wn0013", at(3), at(3)),
              job("600", "carol", "completed", "wn0099", at(5, day=20, month=11),
                  at(6, day=20, month=11))],
}




def fill(engine) -> None:
    """Every job listed at 12:00; at 12:10 the ENDED ones have left the queue."""
    for cluster, scheduler in (("htc", "htcondor"), ("slurm", "slurm")):
        sync_jobs(engine, cluster, scheduler, CURRENT[cluster] + ENDED[cluster], at(12), KEEP)
        sync_jobs(engine, cluster, scheduler, CURRENT[cluster], at(12, 10), KEEP)
