"""BBQ's questions in the Batch Clusters dashboard, on MariaDB, through the dashboard's own
SQL as Grafana expands it: jobs running in a time range (current and ended together, the
edges included), by worker host, declared CPUs and GPUs; and Jobs per worker by host."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from qmonit.core import config
from qmonit.grafana.build import build_all
from qmonit.stores.state import schema
from tests.batch_history import at, fill
from tests.grafana_macros import ALL, View, expand_sql

BASE = {"cluster": ALL, "partition": ALL, "owner": ALL, "job_state": ALL, "job_id": "",
        "worker": "", "min_cpus": "", "gpu_jobs": "any"}


@pytest.fixture(scope="module")
def board():
    return next(b for b in build_all(config.defaults({"sources": {"enabled": ""}}))
                if b.model["uid"] == "qmonit-batch").model


@pytest.fixture
def engine(mariadb_url):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    fill(engine)
    yield engine
    engine.dispose()


def panel_sql(board, title):
    [query] = [t["rawSql"] for p in board["panels"] if p["title"] == title
               for t in p["targets"]]
    return query


def ask(engine, board, title, start, end, **selected):
    view = View(start, end, variables={v["name"]: v for v in board["templating"]["list"]},
                selected={**BASE, **selected})
    with engine.connect() as conn:
        conn.execute(text("SET time_zone = '+00:00'"))
        return [dict(row._mapping) for row in conn.execute(
            text(expand_sql(panel_sql(board, title), view)))]


def running(engine, board, start, end, **selected):
    return [row["job_id"] for row in ask(engine, board, "Jobs running in the time range",
                                         start, end, **selected)]


def test_jobs_running_at_a_time_take_the_edges_and_what_started_before(engine, board):
    # 03:00-03:01: 650 ran 03:00-03:00 (ended exactly at the start), sched#0.0 01:00-04:00
    assert running(engine, board, at(3), at(3, 1)) == ["650", "sched#0.0"]
    # 04:00-10:30: sched#0.0 ended exactly at 04:00; sched#1.0 runs since 10:00 (current)
    assert running(engine, board, at(4), at(10, 30)) == ["sched#1.0", "sched#0.0"]
    # the whole day: every job that started, latest first; never the pending one
    assert running(engine, board, at(0), at(12, 30)) == [
        "701", "700", "sched#1.0", "650", "sched#0.0"]
    assert running(engine, board, at(13), at(14)) == ["701", "700", "sched#1.0"]


def test_jobs_running_by_worker_host_owner_and_declared_resources(engine, board):
    day = (at(0), at(12, 30))
    assert running(engine, board, *day, worker="wn0013") == ["701", "700", "650"]
    assert running(engine, board, *day, worker="wn01.in2p3.fr") == ["sched#1.0", "sched#0.0"]
    assert running(engine, board, *day, owner=["carol"]) == ["650"]
    assert running(engine, board, *day, min_cpus="8") == ["700"]
    assert running(engine, board, *day, min_cpus="2") == ["701", "700"]
    assert running(engine, board, *day, gpu_jobs="only") == ["700"]
    assert running(engine, board, *day, job_state=["failed"]) == ["650"]
    assert running(engine, board, *day, min_cpus="8' OR '1'='1") == ["700"]  # as 8


def test_ended_jobs_and_jobs_now_find_a_worker_by_host(engine, board):
    ended = ask(engine, board, "Ended jobs", at(0) - timedelta(days=30), at(12, 30),
                worker="wn0013")
    assert [row["job_id"] for row in ended] == ["650"]
    now = ask(engine, board, "Jobs now", at(0), at(12, 30), worker="wn01.in2p3.fr")
    assert [row["job_id"] for row in now] == ["sched#1.0"]


def test_jobs_per_worker_counts_hosts_of_both_schedulers(engine, board):
    rows = ask(engine, board, "Jobs per worker", at(0), at(12, 30))
    assert [(r["worker"], r["jobs"], round(float(r["cpus"]), 3), round(float(r["gpus"]), 3),
             r["owners"]) for r in sorted(rows, key=lambda r: (-r["jobs"], r["worker"]))] == [
        ("wn0013", 2, 23.333, 1.333, 1), ("wn0012", 1, 21.333, 1.333, 1),
        ("wn0014", 1, 21.333, 1.333, 1), ("wn01.in2p3.fr", 1, 1.0, 0.0, 1)]
    one = ask(engine, board, "Jobs per worker", at(0), at(12, 30), worker="wn0012")
    assert [(r["worker"], r["jobs"]) for r in one] == [("wn0012", 1)]
