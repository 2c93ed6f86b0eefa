"""factory_labels (label message, trouble) and source_status (the stale indicator) on MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from qmonit.collect.factory_labels import label_rows
from qmonit.core.sample import make_sample
from qmonit.grafana.provision import STALE_SQL
from qmonit.stores.state import schema, series
from qmonit.stores.state.status import (
    factory_labels,
    read_table,
    record_runs,
    replace_factory_labels,
    source_status,
)

NOW = datetime(2026, 11, 21, 12, 3, 17, tzinfo=UTC)
SLOT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def pilots(factory: str, queue: str, **counts: float) -> list:
    return [make_sample("workers", {"factory": factory, "factory_type": "apf",
                                    "panda_queue": queue, "atlas_site": "SITE", "cloud": "DE",
                                    "worker_status": status}, {"workers": n}, SLOT)
            for status, n in counts.items()]


def activated(queue: str, n: float) -> list:
    return [make_sample("jobs", {"panda_queue": queue, "job_status": "activated",
                                 "prod_source": source}, {"jobs": n / 2}, SLOT)
            for source in ("managed", "user")]


def test_each_label_gets_its_counts_a_message_and_trouble():
    workers = (pilots("apf-1", "GOOD", created=20, running=35, exiting=2, done=48, fault=3)
               + pilots("apf-1", "FAULTY", created=5, running=1, exiting=0, done=2, fault=9)
               + pilots("apf-2", "NOPILOTS", created=0, running=0, exiting=0, done=0, fault=0)
               + [make_sample("workers", {"factory": "harvester-1", "factory_type": "harvester",
                                          "panda_queue": "GOOD", "worker_status": status,
                                          "state": state}, {"workers": n}, SLOT)
                  for status, state, n in (("running", "running", 7.0),
                                           ("submitted", "pending", 3.0),
                                           ("idle", "pending", 1.0),
                                           ("missed", "failed", 2.0),
                                           ("failed", "failed", 4.0),
                                           ("finished", "completed", 5.0))])
    rows = label_rows(workers, activated("GOOD", 703) + activated("NOPILOTS", 12), NOW)
    assert [(r["factory"], r["label"], r["in_trouble"], r["message"]) for r in rows] == [
        ("apf-1", "FAULTY", True, "0 activated jobs, 5 pilots queued, 1 running, 0 exiting; "
         "last hour 2 done, 9 fault. In trouble: 9 pilots faulted and 2 finished in the last "
         "hour."),
        ("apf-1", "GOOD", False, "703 activated jobs, 20 pilots queued, 35 running, 2 exiting; "
         "last hour 48 done, 3 fault. Will submit more pilots."),
        ("apf-2", "NOPILOTS", True, "12 activated jobs, 0 pilots queued, 0 running, 0 exiting; "
         "last hour 0 done, 0 fault. In trouble: 12 activated jobs but no pilot queued or "
         "running."),
        # Harvester's workers by their common state, as the APF status they correspond to
        ("harvester-1", "GOOD", True, "703 activated jobs, 4 workers queued, 7 running; ended "
         "recently 5 finished, 6 failed or missed. In trouble: 6 workers failed or missed and "
         "5 finished recently."),
    ]
    good = rows[1]
    assert {k: good[k] for k in ("created", "running", "exiting", "done", "fault", "activated",
                                 "atlas_site", "cloud")} == {
        "created": 20.0, "running": 35.0, "exiting": 2.0, "done": 48.0, "fault": 3.0,
        "activated": 703.0, "atlas_site": "SITE", "cloud": "DE"}
    assert good["updated_at"] == NOW.replace(tzinfo=None)


def test_a_label_gone_from_its_factory_is_removed_and_other_factories_stay(mariadb_url):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    first = label_rows(pilots("apf-1", "A", running=1) + pilots("apf-1", "B", running=2)
                       + pilots("apf-2", "C", running=3), [], NOW)
    replace_factory_labels(engine, first)
    replace_factory_labels(engine, label_rows(pilots("apf-1", "B", running=5), [], NOW))
    assert [(r["factory"], r["label"], r["running"])
            for r in read_table(engine, factory_labels)] == [("apf-1", "B", 5.0),
                                                            ("apf-2", "C", 3.0)]


def test_source_status_keeps_the_newest_good_slot_and_the_stale_query_sees_it(mariadb_url):
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    fresh, old = now - timedelta(minutes=10), now - timedelta(minutes=45)

    def run(source: str, status: str, message: str = "") -> dict:
        return {"source": source, "status": status, "message": message, "points": 10.0,
                "duration_s": 1.5}

    record_runs(engine, "collect", [run("panda", "ok"), run("slurm", "ok")], old, now)
    record_runs(engine, "collect", [run("panda", "ok"), run("slurm", "failed", "squeue: "
                                                            "timed out")], fresh, now)
    record_runs(engine, "collect", [run("panda", "ok")], old, now)  # a backfill of an old slot
    rows = {r["source"]: r for r in read_table(engine, source_status)}
    assert rows["panda"]["last_ok_slot"] == fresh.replace(tzinfo=None)
    assert rows["panda"]["last_slot"] == old.replace(tzinfo=None)
    assert (rows["slurm"]["status"], rows["slurm"]["message"]) == ("failed", "squeue: timed out")
    assert rows["slurm"]["last_ok_slot"] == old.replace(tzinfo=None)
    with engine.connect() as conn:
        assert conn.exec_driver_sql(STALE_SQL).scalar() == 1  # slurm: 45 minutes


def test_init_drops_the_series_seen_index_no_query_uses(mariadb_url):
    from sqlalchemy import create_engine, inspect, text

    from qmonit.stores.state import schema
    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    with engine.begin() as conn:  # as versions before made it
        conn.execute(text("CREATE INDEX ix_series_seen_last_seen ON series_seen (last_seen)"))
    assert schema.create_tables(engine) == ["series_seen: unused index ix_series_seen_last_seen "
                                           "dropped"]
    assert "ix_series_seen_last_seen" not in {
        i["name"] for i in inspect(engine).get_indexes("series_seen")}
    assert schema.create_tables(engine) == []


def test_init_moves_the_series_shapes_out_of_series_seen_on_mariadb(mariadb_url):
    """series_seen of versions before held each series' measurement, tags and fields: init
    moves them into series_shapes once (DROP COLUMN in place), and the zero-fill reads them."""
    from sqlalchemy import inspect, text

    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    with engine.begin() as conn:  # as versions before made it
        conn.execute(text("DROP TABLE series_seen"))
        conn.execute(text("DROP TABLE series_shapes"))
        conn.execute(text(
            "CREATE TABLE series_seen (series_id BIGINT NOT NULL PRIMARY KEY, source "
            "VARCHAR(64) NOT NULL, measurement VARCHAR(64) NOT NULL, tags TEXT NOT NULL, "
            "fields TEXT NOT NULL, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL)"))
        conn.execute(text(
            "INSERT INTO series_seen VALUES (7, 'slurm', 'batch_jobs', "
            "'[[\"cluster\",\"c\"],[\"state\",\"running\"]]', '[\"cores\",\"jobs\"]', "
            "1795254600, 1795254600)"))
    assert schema.missing_columns(engine) == ["series_seen's shapes (moved to series_shapes)",
                                              "series_seen: index ix_series_seen_source"]
    assert schema.create_tables(engine) == ["1 table created (series_shapes)",
                                           "series_seen: the shapes of 1 series moved to "
                                           "series_shapes",
                                           "series_seen: index ix_series_seen_source"]
    assert {c["name"] for c in inspect(engine).get_columns("series_seen")} == {
        "series_id", "source", "first_seen", "last_seen"}
    assert schema.create_tables(engine) == [] and schema.missing_columns(engine) == []
    fresh = create_engine(mariadb_url)  # another process: nothing of it remembered
    slot = datetime(2026, 11, 21, 10, 10, tzinfo=UTC)
    [gone] = series.seen_and_vanished(fresh, "slurm", {}, slot, timedelta(hours=48))
    assert gone == series.SeenSeries("batch_jobs", (("cluster", "c"), ("state", "running")),
                                    ("cores", "jobs"))
