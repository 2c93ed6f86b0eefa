"""The Batch Clusters dashboard's filters on MariaDB: the rows they select, and that the
database reads them through the owner, worker and job id indexes (issue 35: a typed job id
walked 90 days of ended jobs)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, text

from qmonit.grafana.helpers import LISTED, sql_match
from qmonit.stores.state import schema
from qmonit.stores.state.batch import batch_jobs_ended
from tests.grafana_macros import ALL, View, expand_sql

END = datetime(2026, 12, 1, 12, 0)
OWNERS = [f"user{n:02d}" for n in range(30)]
OWNER = {"name": "owner", "multi": True, "includeAll": True, "allValue": ".*"}


def _job(n: int) -> dict:
    return {"cluster": "slurm1", "job_id": str(1000 + n), "scheduler": "slurm",
            "owner": OWNERS[n % len(OWNERS)], "group_name": "g", "state": "completed",
            "native_state": "COMPLETED", "cause": "", "reason": "", "partition": "htc",
            "worker": f"node{n % 7}", "submit_time": None, "start_time": None,
            "end_time": END - timedelta(minutes=n), "cpus": 1.0, "gpus": 0.0,
            "memory_mb": 1.0, "last_seen": END}


@pytest.fixture
def engine(mariadb_url):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    with engine.begin() as conn:  # 30 owners with 20 jobs each, plus user3 (a prefix)
        conn.execute(insert(batch_jobs_ended), [_job(n) for n in range(600)])
        conn.execute(insert(batch_jobs_ended), [{**_job(700), "owner": "user3"}])
        conn.execute(text("ANALYZE TABLE batch_jobs_ended"))
    yield engine
    engine.dispose()


def owners_selected(engine, selected) -> tuple[dict[str, int], str]:
    """Jobs per owner the filter keeps, and how MariaDB reads them ("ref INDEX": one value
    looked up; "range INDEX": several)."""
    view = View(END - timedelta(days=1), END, variables={"owner": OWNER},
                selected={"owner": selected})
    where = expand_sql(sql_match("owner", "owner"), view)
    query = f"SELECT owner, COUNT(*) FROM batch_jobs_ended WHERE {where} GROUP BY owner"
    with engine.connect() as conn:
        counts = {owner: n for owner, n in conn.execute(text(query))}
        plan = conn.execute(text("EXPLAIN " + query)).mappings().one()
    # never a walk over the whole index (type "index") or the table ("ALL")
    return counts, f'{plan["type"]} {plan["key"]}'



def test_all_keeps_every_owner_and_drops_out_of_the_plan(engine):
    counts, _ = owners_selected(engine, ALL)
    assert counts == {**{owner: 20 for owner in OWNERS}, "user3": 1}


def test_one_owner_is_read_through_the_owner_index(engine):
    assert owners_selected(engine, ["user03"]) == ({"user03": 20},
                                                   "ref ix_batch_jobs_ended_owner_end")
    assert owners_selected(engine, ["user3"]) == ({"user3": 1},
                                                  "ref ix_batch_jobs_ended_owner_end")


def test_several_owners_too_and_beyond_the_listed_ones_none_is_lost(engine):
    assert owners_selected(engine, ["user01", "user02", "user29"]) == (
        {"user01": 20, "user02": 20, "user29": 20}, "range ix_batch_jobs_ended_owner_end")
    chosen = OWNERS[:LISTED + 5]  # 25: the last five are found by the LOCATE
    counts, _ = owners_selected(engine, chosen)
    assert counts == {owner: 20 for owner in chosen}


def test_a_value_with_a_quote_matches_nothing(engine):
    assert owners_selected(engine, ["user01' OR '1'='1"])[0] == {}


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_an_older_store_gets_the_indexes_and_loses_the_one_replaced(backend, tmp_path,
                                                                    mariadb_url):
    url = f"sqlite:///{tmp_path}/state.db" if backend == "sqlite" else mariadb_url
    engine = create_engine(url)
    schema.create_tables(engine)
    on = "" if backend == "sqlite" else " ON batch_jobs_ended"
    with engine.begin() as conn:  # as the qmonit before these indexes left it
        for index in ("ix_batch_jobs_ended_owner_end", "ix_batch_jobs_ended_worker_end",
                      "ix_batch_jobs_ended_job"):
            conn.execute(text(f"DROP INDEX {index}{on}"))
        conn.execute(text("CREATE INDEX ix_batch_jobs_ended_owner ON batch_jobs_ended (owner)"))
    assert schema.missing_columns(engine) == [
        "batch_jobs_ended: index ix_batch_jobs_ended_job",
        "batch_jobs_ended: index ix_batch_jobs_ended_owner_end",
        "batch_jobs_ended: index ix_batch_jobs_ended_worker_end"]
    assert schema.create_tables(engine) == [
        "batch_jobs_ended: unused index ix_batch_jobs_ended_owner dropped",
        "batch_jobs_ended: index ix_batch_jobs_ended_job",
        "batch_jobs_ended: index ix_batch_jobs_ended_owner_end",
        "batch_jobs_ended: index ix_batch_jobs_ended_worker_end"]
    assert schema.missing_columns(engine) == []
    assert schema.create_tables(engine) == []
    engine.dispose()


def test_the_batch_dashboard_filters_jobs_by_state(mariadb_url):
    """Issue 35: a state filter on the look-ups (Jobs now, Ended jobs, ...)."""
    from qmonit.core import config
    from qmonit.grafana.build import build_all
    from qmonit.stores.state.batch import batch_jobs_current

    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    with engine.begin() as conn:
        conn.execute(insert(batch_jobs_current), [
            {**_job(n), "state": state, "end_time": None}
            for n, state in enumerate(["running", "pending", "running", "held"])])
    board = next(b for b in build_all(config.defaults({"sources": {"enabled": ""}}))
                 if b.model["uid"] == "qmonit-batch")
    variables = {v["name"]: v for v in board.model["templating"]["list"]}
    [jobs_now] = [t["rawSql"] for p in board.model["panels"] if p["title"] == "Jobs now"
                  for t in p["targets"]]
    base = {"cluster": ALL, "partition": ALL, "owner": ALL, "job_id": "", "worker": ""}

    def states(chosen) -> list[str]:
        view = View(END - timedelta(days=1), END, variables=variables,
                    selected={**base, "job_state": chosen})
        with engine.connect() as conn:
            return sorted(row.state for row in conn.execute(text(expand_sql(jobs_now, view))))

    assert states(ALL) == ["held", "pending", "running", "running"]
    assert states(["running"]) == ["running", "running"]
    assert states(["pending", "held"]) == ["held", "pending"]
    engine.dispose()
