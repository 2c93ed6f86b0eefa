"""Harvester worker statistics through the collect job: `workers` with state and topology."""

import json
import logging

from qmonit.collect.cycle import collect
from qmonit.sources.harvester import PATH
from qmonit.sources.panda import PATHS
from tests.conftest import DATA
from tests.servers import Reply
from tests.test_collect import GOOD, T, parts_for, run_points  # noqa: F401 - fixture

WORKERS = (DATA / "harvester_worker_stats.json").read_text()


def workers_at(store):
    rows = store.rows(f'SELECT * FROM "10m"."workers" WHERE time = {int(T.timestamp())}s')
    return {(r["panda_queue"], r["factory"], r["job_type"], r["resource_type"],
             r["worker_status"], r["state"], r["atlas_site"], r["cloud"]): r["workers"]
            for r in rows}


def test_worker_statistics_with_state_and_topology(parts_for, http, influx_db, caplog):  # noqa: F811
    http.route(PATHS["v1"], GOOD)
    http.route(PATH, Reply(200, json.dumps({"success": True, "message": "", "data":
                                            json.loads(WORKERS)})))
    parts = parts_for(influx_db, sources={"enabled": "panda, harvester"})
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    with caplog.at_level(logging.WARNING):
        report = collect(parts, T)
    assert report.exit_code == 0
    assert workers_at(parts.store) == {
        ("AGLT2_UCORE", "CERN_central_A", "managed", "SCORE", "running", "running", "AGLT2",
         "US"): 120.0,
        ("AGLT2_UCORE", "CERN_central_A", "managed", "SCORE", "submitted", "pending", "AGLT2",
         "US"): 15.0,
        ("AGLT2_UCORE", "CERN_central_A", "managed", "SCORE", "finished", "completed", "AGLT2",
         "US"): 40.0,
        ("AGLT2_UCORE", "CERN_central_A", "managed", "SCORE", "failed", "failed", "AGLT2",
         "US"): 2.0,
        ("AGLT2_UCORE", "CERN_central_A", "managed", "MCORE", "running", "running", "AGLT2",
         "US"): 30.0,
        ("AGLT2_UCORE", "CERN_central_A", "managed", "MCORE", "missed", "failed", "AGLT2",
         "US"): 1.0,
        ("AGLT2_UCORE", "CERN_central_A", "user", "SCORE", "running", "running", "AGLT2",
         "US"): 5.0,
        ("AGLT2_UCORE", "CERN_central_B", "managed", "SCORE", "idle", "pending", "AGLT2",
         "US"): 3.0,
        ("NOT_IN_CRIC", "CERN_central_A", "managed", "SCORE", "running", "running", "unknown",
         "unknown"): 7.0,
    }
    origin = f"PanDA {http.url}{PATH}"
    warnings = [r.getMessage() for r in caplog.records]
    assert f"{origin}: NOT_IN_CRIC/CERN_central_A/managed/SCORE/pending: count -1 is " \
           f"negative; skipped" in warnings
    assert f"{origin}: BROKEN/CERN_central_A: expected an object of job types, got list; " \
           f"skipped" in warnings
    runs = run_points(parts.store, T)
    assert (runs["harvester"]["status"], runs["harvester"]["points"],
            runs["harvester"]["errors"]) == ("ok", 9.0, 2.0)
    # PanDA jobs carry the mapped state next to the native job_status
    rows = parts.store.rows(f'SELECT "jobs", job_status, state FROM "10m"."jobs" '
                            f"WHERE time = {int(T.timestamp())}s")
    assert {(r["job_status"], r["state"]) for r in rows} >= {
        ("activated", "pending"), ("running", "running"), ("finished", "completed")}
    assert all(r["state"] for r in rows)


def test_harvester_failure_writes_no_workers_but_jobs_go_through(parts_for, http,  # noqa: F811
                                                                  influx_db):
    http.route(PATHS["v1"], GOOD)
    http.route(PATH, Reply(200, "{}"))
    parts = parts_for(influx_db, sources={"enabled": "panda, harvester"})
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    report = collect(parts, T)
    assert report.exit_code == 1
    assert workers_at(parts.store) == {}
    runs = run_points(parts.store, T)
    assert runs["harvester"]["status"] == "failed"
    assert runs["harvester"]["message"] == (
        f"PanDA {http.url}{PATH}: no worker statistics at all (the server failed or no "
        f"Harvester reported in 4 hours); nothing written")
    assert runs["panda"]["status"] == "ok"
