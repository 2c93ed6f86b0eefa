"""Names no column can hold and names with control characters: reported and skipped, the
rest of the cycle goes through."""

import json
import logging
from datetime import UTC, datetime

from sqlalchemy import String, select

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.core.model import TAG_LIMIT, TAG_LIMITS
from qmonit.sources.panda import PATHS
from qmonit.stores.state import queues as state_queues
from qmonit.stores.state import schema
from qmonit.stores.state.metadata import metadata
from tests.conftest import DATA
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
V1 = json.loads((DATA / "panda_job_stats_v1.json").read_text())
CRIC = (DATA / "cric_pandaqueue.json").read_text()
LONG = "Q" * 10_000
HOSTILE = [LONG, "CR\rQUEUE", "LF\nQUEUE", "TAB\tQUEUE"]


def test_every_name_column_is_as_wide_as_the_tag_limit():
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, String) and column.name in (*TAG_LIMITS, "panda_queue",
                                                                   "atlas_site", "owner"):
                limit = TAG_LIMITS.get(column.name, TAG_LIMIT)
                assert column.type.length >= limit, (table.name, column.name)


def test_hostile_queue_names_are_skipped_and_every_other_queue_updates(
        make_config, http, mariadb_url, influx_db, caplog):
    answer = json.loads(json.dumps(V1))
    for name in HOSTILE:
        answer["data"][name] = {"managed": {"SCORE": {"running": 7}}}
    http.route(PATHS["v1"], Reply(200, json.dumps(answer)))
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC))
    parts = build(make_config({"influxdb": influx_db, "sql": {"url": mariadb_url},
                               "panda": {"url": http.url}, "cric": {"url": http.url}}))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    with caplog.at_level(logging.WARNING):
        report = collect(parts, T)
    [panda] = [s for s in report.sources if s.source == "panda"]
    assert (panda.status, panda.errors) == ("ok", 4)
    assert report.state_errors == []
    assert "jobs: tag panda_queue is 10000 characters long (at most 128): " \
           f"{LONG[:40]!r}...; skipped" in caplog.text
    for name in HOSTILE[1:]:
        control = next(c for c in name if not c.isprintable())
        assert (f"jobs: tag panda_queue = {name!r} holds the control character {control!r} "
                "(names must be printable); skipped") in caplog.text
    assert f"{LONG[:60]!r}.../managed/SCORE/running: jobs" in caplog.text  # quoted, cut
    assert "\nQUEUE" not in caplog.text  # no forged log line
    with parts.engine.connect() as conn:
        queues = {row[0] for row in conn.execute(select(state_queues.queue_stats.c.panda_queue))}
    assert queues == set(V1["data"])  # every recorded queue, none of the hostile ones
    stored = {r["panda_queue"] for r in parts.store.rows(
        'SELECT "jobs", panda_queue FROM "10m"."jobs"')}
    assert stored == set(V1["data"])
