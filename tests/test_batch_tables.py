"""batch_jobs_current / batch_jobs_ended on SQLite and MariaDB: only what changed is written,
the jobs that left move with every column, an unknown end taken as the last time seen."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from qmonit.core.batchjobs import BatchJob
from qmonit.stores.state.batch import (
    MARGIN_S,
    MAX_HOSTS,
    batch_job_hosts,
    current_jobs,
    ended_jobs,
    job_hosts,
    longest_run,
    sync_jobs,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
KEEP = timedelta(days=90)
STARTED = datetime(2026, 11, 21, 9, 12, 30, tzinfo=UTC)


def jobs() -> list[BatchJob]:
    return [
        BatchJob("101", "alice", "atlas", "long", "RUNNING", worker="node01",
                 submit_time=STARTED - timedelta(hours=1), start_time=STARTED, cpus=8,
                 memory_mb=16000, state="running"),
        BatchJob("102", "bob", "cms", "short", "PENDING", reason="Priority", cpus=1,
                 state="pending", cause="waiting for priority"),
        BatchJob("103_7", "alice", "atlas", "long", "PENDING", reason="Resources", cpus=4,
                 state="pending"),
    ]


def test_only_new_and_changed_jobs_are_written_and_the_left_ones_move(state_engine):
    engine = state_engine
    assert sync_jobs(engine, "c1", "slurm", jobs(), NOW, KEEP) == \
        {"written": 3, "ended": 0, "expired": 0, "hosts": 1}
    # the same queue ten minutes on: nothing to write (times compared as stored, no parse)
    later = NOW + timedelta(minutes=10)
    assert sync_jobs(engine, "c1", "slurm", jobs(), later, KEEP) == \
        {"written": 0, "ended": 0, "expired": 0, "hosts": 0}
    # 102 starts (state, worker and start time change); 103_7 leaves the queue
    started = [replace(jobs()[0]), replace(jobs()[1], native_state="RUNNING", state="running",
                                            reason="", worker="node02", start_time=later)]
    assert sync_jobs(engine, "c1", "slurm", started, later, KEEP) == \
        {"written": 1, "ended": 1, "expired": 0, "hosts": 1}
    current = {r["job_id"]: r for r in current_jobs(engine, "c1")}
    assert sorted(current) == ["101", "102"]
    assert (current["102"]["state"], current["102"]["worker"], current["102"]["start_time"],
            current["102"]["last_seen"]) == \
        ("running", "node02", later.replace(tzinfo=None), later.replace(tzinfo=None))
    assert current["101"]["last_seen"] == NOW.replace(tzinfo=None)  # written once, at NOW
    [ended] = ended_jobs(engine, "c1")
    assert (ended["job_id"], ended["owner"], ended["group_name"], ended["partition"],
            ended["state"], ended["reason"], ended["cpus"], ended["scheduler"]) == \
        ("103_7", "alice", "atlas", "long", "pending", "Resources", 4.0, "slurm")
    assert ended["end_time"] == ended["last_seen"] == NOW.replace(tzinfo=None)
    # a job that ends again (same id, a requeue) replaces its ended row; then it expires
    assert sync_jobs(engine, "c1", "slurm", started[:1], later, KEEP)["ended"] == 1
    assert sorted(r["job_id"] for r in ended_jobs(engine, "c1")) == ["102", "103_7"]
    again = [started[0], replace(jobs()[2], reason="Priority")]
    sync_jobs(engine, "c1", "slurm", again, later, KEEP)
    assert sync_jobs(engine, "c1", "slurm", started[:1], later + timedelta(minutes=10),
                     KEEP)["ended"] == 1
    rows = {r["job_id"]: r for r in ended_jobs(engine, "c1")}
    assert (rows["103_7"]["reason"], rows["103_7"]["end_time"]) == \
        ("Priority", later.replace(tzinfo=None))
    assert sync_jobs(engine, "c1", "slurm", started[:1], NOW + KEEP + timedelta(days=1),
                     KEEP)["expired"] == 2
    # another cluster's rows are its own
    assert sync_jobs(engine, "c2", "htcondor", jobs(), NOW, KEEP)["written"] == 3
    assert [r["job_id"] for r in current_jobs(engine, "c1")] == ["101"]


def hosts_of(engine, cluster):
    with engine.connect() as conn:
        return sorted((r.job_id, r.host, round(r.share, 6), r.start_time, r.end_time)
                      for r in conn.execute(select(batch_job_hosts)
                                            .where(batch_job_hosts.c.cluster == cluster)))


def test_a_job_s_hosts_follow_it_from_its_start_to_its_expiry(state_engine):
    """An HTCondor slot's host, every node of a Slurm list, closed with the job's end,
    rewritten when the worker changes, restored when missing, expired with the job."""
    engine = state_engine
    started = STARTED.replace(tzinfo=None)
    listed = [BatchJob("s#1.0", "alice", "atlas", "grid", "Running",
                       worker="slot1_12@wn042.example.org", start_time=STARTED,
                       state="running"),
              BatchJob("900", "bob", "cms", "hpc", "RUNNING", worker="wn[0012-0014]",
                       start_time=STARTED, cpus=96, state="running")]
    assert sync_jobs(engine, "c1", "slurm", listed, NOW, KEEP)["hosts"] == 4
    assert hosts_of(engine, "c1") == [
        ("900", "wn0012", 0.333333, started, None), ("900", "wn0013", 0.333333, started, None),
        ("900", "wn0014", 0.333333, started, None),
        ("s#1.0", "wn042.example.org", 1.0, started, None)]
    later = NOW + timedelta(minutes=10)
    moved = [listed[0], replace(listed[1], worker="wn0020")]  # a requeue elsewhere
    with engine.begin() as conn:  # a store upgraded with its jobs listed: no hosts yet
        conn.execute(delete(batch_job_hosts).where(batch_job_hosts.c.job_id == "s#1.0"))
    assert sync_jobs(engine, "c1", "slurm", moved, later, KEEP)["hosts"] == 2
    assert hosts_of(engine, "c1") == [("900", "wn0020", 1.0, started, None),
                                      ("s#1.0", "wn042.example.org", 1.0, started, None)]
    assert sync_jobs(engine, "c1", "slurm", moved[1:], later, KEEP)["ended"] == 1
    assert hosts_of(engine, "c1") == [
        ("900", "wn0020", 1.0, started, None),
        ("s#1.0", "wn042.example.org", 1.0, started, NOW.replace(tzinfo=None))]  # its end row
    sync_jobs(engine, "c1", "slurm", moved[1:], later + KEEP + timedelta(days=1), KEEP)
    assert hosts_of(engine, "c1") == [("900", "wn0020", 1.0, started, None)]
    with engine.connect() as conn:  # 900 ran from STARTED to the last sync, plus the margin
        assert longest_run(conn) == later + KEEP + timedelta(days=1) - STARTED + \
            timedelta(seconds=MARGIN_S)


def test_hosts_of_a_worker_name():
    assert job_hosts("") == []
    assert job_hosts("slot1_3@wn01.in2p3.fr") == ["wn01.in2p3.fr"]
    assert job_hosts("node7") == ["node7"]
    assert job_hosts("gpu1,wn[08-10]") == ["gpu1", "wn08", "wn09", "wn10"]
    assert len(job_hosts("n[0-2000000]")) == MAX_HOSTS == 4096  # never the whole range
