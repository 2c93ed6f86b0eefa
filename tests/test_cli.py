import io
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from qmonit.app.demo import run_demo
from qmonit.simulation.grid import SimulatedGrid
from qmonit.sources.panda import PATHS
from qmonit.stores.state import metadata
from qmonit.support import redact
from qmonit.support.logs import RedactingFormatter
from tests.conftest import DATA
from tests.servers import Reply, environ_without_qmonit

ROOT = Path(__file__).resolve().parents[1]
V1 = (DATA / "panda_job_stats_v1.json").read_text()
SECRETS = {"QMONIT_INFLUXDB_PASSWORD": "influx-pw-5e3",
           "QMONIT_PANDA_TOKEN": "panda-token-9f1",
           "QMONIT_CRIC_TOKEN": "cric-token-77a",
           "QMONIT_SQL_PASSWORD": "sql-pw-c0d"}


def qmonit(*args, env=None, cwd=None):
    environment = {**environ_without_qmonit(), **(env or {})}
    return subprocess.run([sys.executable, "-m", "qmonit", *args], capture_output=True,
                          text=True, env=environment, cwd=cwd)


def test_no_secret_in_any_log_line_or_output(write_config, http, mariadb, tmp_path):
    http.route("/write", Reply(401, '{"error":"authorization failed"}'))
    http.route("/ping", Reply(204, headers={"X-Influxdb-Version": "1.8.10"}))
    http.route("/query", Reply(401, '{"error":"authorization failed"}'))
    http.route(PATHS["v1"], Reply(500, "boom"))
    http.route("/api/atlas/pandaqueue/query/", Reply(500, "down"))
    log_file = tmp_path / "qmonit.log"
    port = http.url.rsplit(":", 1)[1]
    cfg = write_config({
        "influxdb": {"url": http.url, "username": "qmonit", "retry_deadline_s": "0.2",
                     "retry_initial_s": "0.01"},
        "sql": {"url": mariadb},
        "panda": {"url": http.url},
        "cric": {"url": f"http://alice:url-pw-31@127.0.0.1:{port}"},
        "logging": {"file": str(log_file), "level": "DEBUG"},
    })
    run = qmonit("-c", str(cfg), "run", "collect", env=SECRETS)
    check = qmonit("-c", str(cfg), "check", env=SECRETS)
    assert (run.returncode, check.returncode) == (1, 1)
    logged = log_file.read_text()
    assert "HTTP 401 authentication failed" in logged
    assert "source panda failed, nothing written for it: PanDA http://127.0.0.1:" in logged
    assert "Access denied for user 'root'" in check.stdout
    assert "FAILED: InfluxDB" in check.stdout and "FAILED: PanDA" in check.stdout
    assert f"CRIC http://127.0.0.1:{port}/api/atlas/pandaqueue/query/: HTTP 500" in logged
    everything = logged + run.stdout + run.stderr + check.stdout + check.stderr
    for secret in [*SECRETS.values(), "url-pw-31"]:
        assert secret not in everything
    sent = [r for r in http.requests if r.path == PATHS["v1"]]
    assert sent[0].headers["Authorization"] == "Bearer panda-token-9f1"


def test_redacting_formatter_masks_secrets_in_formatted_messages():
    redact.register(["hunter2"])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connect %s failed: %s",
                               ("db", "with hunter2 rejected"), None)
    record.created = 0.0
    assert RedactingFormatter().format(record) == \
        "1970-01-01T00:00:00Z ERROR x: connect db failed: with *** rejected"


def test_check_says_what_answers(write_config, http, influxd, mariadb):
    http.route(PATHS["v1"], Reply(200, V1))
    http.route("/api/atlas/pandaqueue/query/", Reply(200, (DATA / "cric_pandaqueue.json")
                                                      .read_text()))
    cfg = write_config({"influxdb": {"url": influxd.url, "database": "check_db"},
                        "sql": {"url": mariadb}, "panda": {"url": http.url},
                        "cric": {"url": http.url}})
    done = qmonit("-c", str(cfg), "check")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == (f"influxdb  InfluxDB {influxd.url} database check_db  answers "
                        f"(InfluxDB 1.6.7~rc0), no credentials configured; database check_db "
                        f"missing: run `qmonit init`")
    assert lines[2] == (f"panda     PanDA {http.url}{PATHS['v1']}  answers, 3 queues, "
                        f"26 counts")
    assert lines[3] == (f"cric      CRIC {http.url}/api/atlas/pandaqueue/query/  answers, "
                        f"2 PanDA queues (1 empty records)")
    assert lines[0].startswith("sql       mysql+mysqlconnector://root@127.0.0.1:")


def test_init_is_idempotent_on_influxdb_and_mariadb(write_config, influxd, mariadb_url):
    cfg = write_config({"influxdb": {"url": influxd.url, "database": "init_db",
                                     "retention_10m": "14d"},
                        "sql": {"url": mariadb_url}, "sources": {"enabled": "simulated"}})
    first, second = qmonit("-c", str(cfg), "init"), qmonit("-c", str(cfg), "init")
    assert (first.returncode, second.returncode) == (0, 0)
    assert f'InfluxDB {influxd.url} database init_db: retention policy "10m" created (14d)' \
        in first.stdout
    assert f'InfluxDB {influxd.url} database init_db: retention policy "10m" set to 14d' \
        in second.stdout
    sql = make_url(mariadb_url).render_as_string(hide_password=True)
    assert f"state store {sql}: {len(metadata.metadata.tables)} tables created (" \
        in first.stdout
    assert f"state store {sql}: tables present, nothing to change\n" in second.stdout
    assert "tables created" not in second.stdout
    from qmonit.core.levels import CHOICES

    rows = sum(len(list(choice.rows())) for choice in CHOICES)
    assert f"InfluxDB {influxd.url} database init_db: levels for Grafana: {rows} choices of " \
           f"{len(CHOICES)} variables" in second.stdout
    done = qmonit("-c", str(cfg), "check")
    assert "database init_db present\n" in done.stdout  # meta.rp_config and meta.levels too


def test_spool_status_and_replay_into_the_embedded_store(write_config, tmp_path):
    data_dir = tmp_path / "data"
    down = write_config({"influxdb": {"url": "http://127.0.0.1:9", "retry_deadline_s": "0"},
                         "sources": {"enabled": "simulated"}}, name="down.cfg")
    up = write_config({"sources": {"enabled": "simulated"}}, name="up.cfg")
    qmonit("-c", str(up), "init")
    collect = qmonit("-c", str(down), "run", "collect", "--at", "2026-11-21T09:07")
    assert collect.returncode == 1
    status = qmonit("-c", str(down), "spool", "status")
    assert status.returncode == 0
    assert re.search(rf"spool {data_dir}/spool: 2 file\(s\), \d+ points", status.stdout)
    failed = qmonit("-c", str(down), "spool", "replay")
    assert failed.returncode == 1
    assert "replay stopped: InfluxDB http://127.0.0.1:9 database qmonit: connection refused" \
        in failed.stdout
    replay = qmonit("-c", str(up), "spool", "replay")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert re.match(r"replayed 2 file\(s\), \d+ points to embedded SQL store sqlite:///.*; "
                    r"0 file\(s\) pending", replay.stdout)
    assert qmonit("-c", str(up), "spool", "status").stdout == f"spool {data_dir}/spool: empty\n"


def test_run_sh_logs_passes_exit_code_and_locks(write_config, tmp_path):
    cfg = write_config({"sources": {"enabled": "simulated"}})
    env = {**environ_without_qmonit(), "QMONIT_CONFIG": str(cfg),
           "QMONIT_LOG_DIR": str(tmp_path / "log"), "QMONIT_PYTHON": sys.executable}
    qmonit("-c", str(cfg), "init")
    ok = subprocess.run([str(ROOT / "run.sh"), "collect", "--at", "2026-11-21T10:00"],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    logged = (tmp_path / "log/collect.log").read_text()
    match = re.search(r"INFO qmonit: collect 2026-11-21 10:00 UTC: cric ok \((\d+) points\), "
                      r"panda ok \((\d+) points\); levels (\d+) points; written (\d+), "
                      r"spooled 0, rejected 0, lost 0, replayed 0", logged)
    assert match, logged
    queues, jobs, levels, written = map(int, match.groups())
    assert (queues, written) == (len(SimulatedGrid(seed=1).queues), jobs + levels + 3)
    assert 0 < levels < jobs
    bad = subprocess.run([str(ROOT / "run.sh"), "collect", "--at", "yesterday"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "run.sh: collect exited with 2" in bad.stderr
    holder = subprocess.Popen(["flock", str(tmp_path / "log/collect.lock"), "sleep", "30"])
    try:
        import time
        time.sleep(0.3)
        locked = subprocess.run([str(ROOT / "run.sh"), "collect"], env=env,
                                capture_output=True, text=True)
    finally:
        holder.kill()
    assert locked.returncode == 1
    assert "collect is still running from an earlier start; this run is skipped" in locked.stderr
    assert subprocess.run([str(ROOT / "run.sh"), "nojob"], env=env,
                          capture_output=True, text=True).returncode == 2


def test_demo_totals_match_the_simulated_grid(tmp_path):
    now = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)
    out = io.StringIO()
    assert run_demo(tmp_path / "demo", hours=2, seed=3, now=now, out=out) == 0
    text = out.getvalue()
    grid = SimulatedGrid(seed=3)
    from qmonit.simulation.grid import SimulatedDaod

    badly = SimulatedDaod(grid).badly_placed
    assert re.search(r"DAOD placement at 2026-11-21 12:00 UTC \(the datadisk job, \"1h\"\): "
                     rf"\d+ datadisks; share of analysis / share of DAOD, most under-supplied: "
                     rf"{badly} \d+\.\d\d, ", text), text
    assert text.startswith(f"qmonit demo: simulated grid (small, seed 3), {len(grid.queues)} "
                           f"PanDA queues, 12 ten-minute cycles from 2026-11-21 10:10 to "
                           f"2026-11-21 12:00 UTC in ")
    # 12:00 and 12:10 fall in the daily simulated PanDA outage: the report uses 11:50
    last = datetime(2026, 11, 21, 11, 50, tzinfo=UTC)
    stats = grid.job_stats(last)

    def total(status):
        return sum(c.get(status, 0) for by_label in stats.values()
                   for by_res in by_label.values() for c in by_res.values())

    all_row = next(line for line in text.splitlines() if line.startswith("ALL"))
    assert all_row.split()[1:] == [f"{total(s):,}" for s in (
        "assigned", "activated", "starting", "running", "transferring", "finished", "failed")]
    assert "Cycle 12:00 UTC: simulated PanDA: HTTP 503: service unavailable (simulated outage)" \
        in text
    assert f"Stored in: sqlite:///{tmp_path}/demo/qmonit.sqlite" in text


def test_version_and_usage_errors():
    assert qmonit("--version").stdout.startswith("qmonit ")
    bad = qmonit("run", "everything")
    assert bad.returncode == 2
    assert "invalid choice: 'everything'" in bad.stderr
    at = qmonit("-c", os.devnull, "run", "collect", "--at", "noon")
    assert at.returncode == 2
    assert "'noon' is not an ISO 8601 time" in at.stderr


def test_init_creates_every_table_a_job_needs(write_config, tmp_path):
    import sqlite3

    cfg = write_config({"sources": {"enabled": "simulated"}})
    done = qmonit("-c", str(cfg), "init")
    assert done.returncode == 0, done.stderr
    tables = {name for (name,) in sqlite3.connect(tmp_path / "data" / "qmonit.sqlite").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"queues", "queue_stats", "queue_history", "queue_hourly", "queue_days",
                      "series_seen", "series_shapes", "watermarks", "flag_state", "alerts",
                      "ts_series", "ts_tags", "ts_points",
                      "batch_jobs_current", "batch_jobs_ended", "batch_job_hosts",
                      "batch_clusters", "batch_node_reasons", "batch_reservations",
                      "batch_scheduler_state", "source_status",
                      "factory_labels", "leases"}
    database = sqlite3.connect(tmp_path / "data" / "qmonit.sqlite")
    for job, at in (("collect", "2026-11-21T23:30"), ("derive", "2026-11-21T23:30"),
                    ("hourly", "2026-11-22T00:30"), ("daily", "2026-11-22T00:30")):
        run = qmonit("-c", str(cfg), "run", job, "--at", at)
        assert run.returncode == 0, (job, run.stderr)
        # each job leaves its own qmonit_run record: the right job ran
        sources = {json.loads(key)[1][1][1] for (key,) in database.execute(
            "SELECT series_key FROM ts_series WHERE measurement = 'qmonit_run'")}
        assert {"collect": "panda", "derive": "derive"}.get(job, "client") in sources, job
    assert database.execute("SELECT resolution, done_until FROM watermarks WHERE "
                            "measurement = 'jobs' ORDER BY resolution").fetchall() == [
        ("daily", 1795305600), ("hourly", 1795305600)]  # 2026-11-22 00:00


def test_init_and_derive_say_clearly_when_influxdb_is_down(write_config, tmp_path):
    cfg = write_config({"influxdb": {"url": "http://127.0.0.1:9", "retry_deadline_s": "0"},
                        "sources": {"enabled": "simulated"},
                        "logging": {"file": str(tmp_path / "q.log")}})
    init = qmonit("-c", str(cfg), "init")
    assert init.returncode == 1
    assert init.stderr == ("qmonit init failed: InfluxDB http://127.0.0.1:9 database qmonit: "
                           "connection refused: nothing listens there (server down, or wrong "
                           "port)\n")
    derive = qmonit("-c", str(cfg), "run", "derive", "--at", "2026-11-21T10:00")
    assert derive.returncode == 1
    logged = (tmp_path / "q.log").read_text()  # judged on SQL; its points wait in the spool
    assert ("ERROR qmonit.stores.timeseries.durable: InfluxDB http://127.0.0.1:9 database qmonit: "
            "connection refused: nothing listens there (server down, or wrong port)") in logged
    assert "derive 2026-11-21 10:00 UTC: 1 findings from 0 queries" in logged
    # status showed derive `ok` after this run (issue 34): its points went to the spool
    status = qmonit("-c", str(cfg), "status")
    assert status.returncode == 1
    [row] = [line for line in status.stdout.splitlines() if line.startswith("derive ")]
    assert row.split()[-4] == "failed"
    assert ("WARNING: derive's last run failed: sinks: InfluxDB http://127.0.0.1:9 database "
            "qmonit: connection refused: nothing listens there (server down, or wrong port) "
            "(gave up after 1 attempt within 0 s); 2 points spooled\n") in status.stdout


def test_states_test_panda_on_a_working_panda(write_config, http):
    http.route(PATHS["v1"], Reply(200, V1))
    cfg = write_config({"panda": {"url": http.url}})
    done = qmonit("-c", str(cfg), "states", "test", "panda")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "panda state rules from panda.rules (built in) on the live jobs of panda:"
    counts = {}  # the recorded answer's jobs per status, summed here, not by qmonit
    for by_label in json.loads(V1)["data"].values():
        for by_resource in by_label.values():
            for by_status in by_resource.values():
                for status, n in by_status.items():
                    counts[status] = counts.get(status, 0) + n
    rows = {line.split()[0]: (line.split("->")[1].split()[0], int(line.split()[-1]))
            for line in lines[2:] if line}
    assert rows == {"activated": ("pending", counts["activated"]),
                    "assigned": ("pending", counts["assigned"]),
                    "failed": ("failed", counts["failed"]),
                    "finished": ("completed", counts["finished"]),
                    "running": ("running", counts["running"]),
                    "starting": ("running", counts["starting"])}


def test_collect_runs_before_init_adds_the_daemons_tables(write_config, tmp_path):
    cfg = write_config({"sources": {"enabled": "simulated"}})
    qmonit("-c", str(cfg), "init")
    import sqlite3

    sqlite3.connect(tmp_path / "data" / "qmonit.sqlite").execute("DROP TABLE leases")
    done = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:00")
    assert done.returncode == 0, done.stderr


def test_a_run_upgrades_a_store_an_older_qmonit_initialised(write_config, tmp_path):
    """A store from before queue_days and series_shapes (series_seen held every series'
    measurement, tags and fields): a run under cron creates the table, moves the shapes,
    and zero-fills a series seen before the upgrade from them."""
    import sqlite3

    cfg = write_config({"sources": {"enabled": "simulated"}, "logging": {"level": "INFO"}})
    qmonit("-c", str(cfg), "init")
    assert qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:00").returncode == 0
    database = sqlite3.connect(tmp_path / "data" / "qmonit.sqlite")
    before = dict(database.execute("SELECT series_id, tags FROM series_shapes").fetchall())
    database.executescript("""
        CREATE TABLE old_seen (series_id BIGINT NOT NULL, source VARCHAR(64) NOT NULL,
            measurement VARCHAR(64) NOT NULL, tags TEXT NOT NULL, fields TEXT NOT NULL,
            first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, PRIMARY KEY (series_id));
        INSERT INTO old_seen SELECT s.series_id, s.source, h.measurement, h.tags, h.fields,
            s.first_seen, s.last_seen FROM series_seen s JOIN series_shapes h USING (series_id);
        DROP TABLE series_seen; DROP TABLE series_shapes; DROP TABLE queue_days;
        ALTER TABLE old_seen RENAME TO series_seen;
        CREATE INDEX ix_series_seen_source ON series_seen (source);
        INSERT INTO series_seen VALUES (42, 'panda', 'jobs',
            '[["job_status","sent"],["panda_queue","GONE"],["prod_source","managed"],'
            || '["resource","SCORE"]]', '["jobs"]', 1795254600,
            1795254600);""")
    database.commit()
    done = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:10")
    assert done.returncode == 0, done.stderr
    assert "added queue_days, series_shapes, series_seen's shapes (moved to series_shapes) " \
           "(this qmonit reads them; `qmonit init` does the same)" in done.stderr
    columns = {row[1] for row in database.execute("PRAGMA table_info(series_seen)")}
    assert columns == {"series_id", "source", "first_seen", "last_seen"}
    after = dict(database.execute("SELECT series_id, tags FROM series_shapes").fetchall())
    assert {k: after[k] for k in before} == before and 42 in after
    zero = database.execute(
        "SELECT p.value FROM ts_points p JOIN ts_tags t ON t.series_id = p.series_id AND "
        "t.tag = 'panda_queue' AND t.value = 'GONE' WHERE p.measurement = 'jobs' AND "
        "p.field = 'jobs' AND "
        "p.time = 1795255800").fetchall()
    assert zero == [(0.0,)]  # GONE vanished: its zero written from the moved shape
    again = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:20")
    assert again.returncode == 0 and "added" not in again.stderr  # once


def test_a_run_adds_the_columns_a_newer_qmonit_reads(write_config, tmp_path):
    import sqlite3

    cfg = write_config({"sources": {"enabled": "simulated"}, "logging": {"level": "INFO"}})
    qmonit("-c", str(cfg), "init")
    database = sqlite3.connect(tmp_path / "data" / "qmonit.sqlite")
    database.execute("ALTER TABLE queues DROP COLUMN queue_status")  # as before the column
    database.execute("ALTER TABLE queue_stats DROP COLUMN queue_status")
    database.commit()
    first = qmonit("-c", str(cfg), "run", "collect", "--at", "2026-11-21T10:00")
    assert first.returncode == 0, first.stderr
    assert "added queue_stats.queue_status, queues.queue_status (this qmonit reads them; " \
           "`qmonit init` does the same)" in first.stderr
    derived = qmonit("-c", str(cfg), "run", "derive", "--at", "2026-11-21T10:00")
    assert derived.returncode == 0, derived.stderr
    assert "added" not in derived.stderr  # once


def test_demo_with_the_sources_asked_ahead_reports_what_the_serial_demo_reports(tmp_path):
    now = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)

    def report(name, serial):
        out = io.StringIO()
        assert run_demo(tmp_path / name, hours=2, seed=5, now=now, out=out,
                        serial=serial) == 0
        text = out.getvalue().replace(str(tmp_path / name), "<dir>")
        return re.sub(r"\d+\.\d s", "<s> s", text)

    pipelined = report("pipelined", serial=False)
    assert pipelined == report("serial", serial=True)
    assert "12 ten-minute cycles from 2026-11-21 10:10 to 2026-11-21 12:00 UTC in <s> s" \
        in pipelined
    assert "derive ran after each of the last 12 cycles, <s> s in all" in pipelined


def test_every_command_and_option_has_help():
    """`qmonit X --help` says what X and each of its options do (issue 34: `run --help` did
    not describe the jobs, `demo --hours/--scale/--seed` had no help)."""
    import argparse

    from qmonit.app.cli import JOBS, parser

    top = parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"qmonit {a.dest}" for a in top._actions
               if not a.help and a.dest not in ("command",)]
    described = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, sub in commands.choices.items():
        if not described.get(name) or not sub.description:
            missing.append(f"qmonit {name}")
        missing += [f"qmonit {name} {'/'.join(a.option_strings) or a.dest}"
                    for a in sub._actions if not a.help]
    assert missing == []
    assert sorted(commands.choices) == sorted([
        "init", "check", "run", "demo", "suspicious", "states", "daemon", "status", "spool",
        "dashboards", "deploy", "config", "jobs", "top"])
    run_help = commands.choices["run"].format_help()
    for job in JOBS:
        assert f"\n  {job:<10}" in run_help


def test_demo_piped_says_its_progress_as_log_lines(tmp_path):
    """Piped, `demo --scale atlas --hours 2` was silent for 63 s (issue 34): not on a
    terminal, a log line every PROGRESS_EVERY_S seconds and after the last cycle."""
    done = subprocess.run([sys.executable, "-m", "qmonit", "demo", "--hours", "1", "--dir",
                           str(tmp_path / "demo")], capture_output=True, text=True)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert len(lines) >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO qmonit demo: collected 6 of 6 "
                        r"cycles \(slot \d{4}-\d\d-\d\d \d\d:\d0 UTC\) in \d+ s", lines[-1])
    assert all(" INFO qmonit demo: collected " in line for line in lines)


def test_a_wrong_sql_password_is_said_once_and_the_run_closes_as_failed(write_config,
                                                                       mariadb):
    """It logged the same `1045 Access denied` nine times and closed with an INFO line
    saying every source was ok (issue 34)."""
    url = mariadb.replace("mysql+mysqlconnector://root@", "mysql+mysqlconnector://root:Pw-9x7@")
    cfg = write_config({"sources": {"enabled": "simulated"}, "sql": {"url": url}})
    done = qmonit("-c", str(cfg), "run", "collect")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    denied = [line for line in lines if "Access denied for user 'root'" in line]
    assert len(denied) == 1 and denied[0].endswith("(using password: YES); zero-fill of panda "
                                                   "skipped")
    assert [line.split(": ", 2)[-1].split(";")[0] for line in lines
            if "the same error" in line] == [
        "the same error", "the same error", "the same error",
        "the same error (not tried again in this run)", "the same error"]
    assert re.search(r" ERROR qmonit: collect \S+ \S+ UTC: cric ok \(196 points\), panda ok "
                     r"\(\d+ points\); levels \d+ points; written 0, spooled (\d+), rejected 0, "
                     r"lost 0, replayed 0 in [\d.]+ s; state store failed \(3 step\(s\)\), "
                     r"writes failed \(\1 points spooled\)$", lines[-1])
    assert "Pw-9x7" not in done.stderr


def test_check_asks_each_source_as_collect_does(write_config, http, tmp_path):
    """With a Harvester answer served, check said `FAILED: not a PanDA API v1 response`
    under `panda` while collect read it fine (issue 34): check now runs each source's own
    collect, and says what it gives."""
    from qmonit.sources.harvester import PATH

    workers = json.loads((DATA / "harvester_worker_stats.json").read_text())
    http.route(PATHS["v1"], Reply(200, V1))
    http.route(PATH, Reply(200, json.dumps(workers)))  # no v1 envelope, as older servers
    cfg = write_config({"panda": {"url": http.url},
                        "sources": {"enabled": "panda,harvester"}})
    done = qmonit("-c", str(cfg), "check")
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    # the recorded answer: 3 queues, one of them with two malformed records (test_harvester)
    assert lines["harvester"] == (f"harvester  PanDA {http.url}{PATH}  answers, 2 queues, "
                                  "9 counts, 2 record(s) skipped")
    assert lines["panda"].endswith("answers, 3 queues, 26 counts")
    assert done.returncode == 0, done.stdout
    assert qmonit("-c", str(cfg), "init").returncode == 0
    collect = qmonit("-c", str(cfg), "run", "collect")
    assert "harvester ok (9 points)" in collect.stderr


def test_collect_dry_run_prints_the_points_and_writes_nothing(write_config, http, tmp_path):
    """Telegraf's --test (issue 34): every source asked once, the line protocol printed,
    no SQL, no time-series store, no spool, no CRIC snapshot written."""
    http.route(PATHS["v1"], Reply(200, V1))
    http.route("/api/atlas/pandaqueue/query/", Reply(200, (DATA / "cric_pandaqueue.json")
                                                      .read_text()))
    cfg = write_config({"panda": {"url": http.url}, "cric": {"url": http.url}})
    done = qmonit("-c", str(cfg), "run", "collect", "--dry-run", "--at", "2026-11-21T10:05Z")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    jobs = [line for line in lines if line.startswith("jobs,")]
    assert len(jobs) == 26  # the recorded answer's counts, as `check` says
    assert all(line.endswith(" 1795255200") for line in lines)  # 2026-11-21 10:00 UTC
    assert all("cloud=" in line for line in jobs)  # enriched with CRIC's tags
    assert done.stderr.splitlines()[1:] == [  # after CRIC's warning of its empty record
        "# panda: 26 points",
        f"# slot 2026-11-21 10:00 UTC: 26 points and {len(lines) - 26} level points; nothing "
        "written (the zero-fill and qmonit_run are not shown)"]
    assert not (tmp_path / "data").exists()  # [qmonit] data_dir: nothing made there
    other = qmonit("-c", str(cfg), "run", "derive", "--dry-run")
    assert (other.returncode, other.stderr) == (
        2, "qmonit run derive: --dry-run is for collect only\n")


def test_states_test_on_a_live_source_honours_json(write_config, http):
    """`states test panda --json` on a live source ignored --json (issue 34)."""
    http.route(PATHS["v1"], Reply(200, V1))
    cfg = write_config({"panda": {"url": http.url}})
    done = qmonit("-c", str(cfg), "states", "test", "panda", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 26 and {row["measurement"] for row in rows} == {"jobs"}
    counts: dict[str, float] = {}  # the recorded answer's jobs per status, summed here
    for by_label in json.loads(V1)["data"].values():
        for by_resource in by_label.values():
            for by_status in by_resource.values():
                for status, n in by_status.items():
                    counts[status] = counts.get(status, 0) + n
    printed: dict[str, float] = {}
    for row in rows:
        status = row["tags"]["job_status"]
        printed[status] = printed.get(status, 0) + row["fields"]["jobs"]
    assert printed == counts


def test_collect_dry_run_says_which_source_failed_and_exits_1(write_config, http, tmp_path):
    http.route(PATHS["v1"], Reply(503, "<html><title>Service Unavailable</title></html>"))
    cfg = write_config({"panda": {"url": http.url}})
    done = qmonit("-c", str(cfg), "run", "collect", "--dry-run", "--at", "2026-11-21T10:05Z")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"# panda: FAILED: PanDA {http.url}{PATHS['v1']}: HTTP 503: Service Unavailable",
        "# slot 2026-11-21 10:00 UTC: 0 points and 0 level points; nothing written (the "
        "zero-fill and qmonit_run are not shown)"]
    assert not (tmp_path / "data").exists()
