"""Grafana's reading accounts: created by init, refused when they are the writer, read-only,
and every dashboard query run with hostile variable values as them reads nothing else."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from qmonit.app import cli
from qmonit.core import config
from qmonit.core.levels import CHOICES
from qmonit.grafana import readers
from qmonit.stores.timeseries.influx import reader_statements
from tests.grafana_macros import ALL, View, expand_influx, expand_sql
from tests.servers import InfluxServer
from tests.test_dashboards import NO_SOURCES, VIEW_END, VIEW_START, boards, filled, panels

assert filled  # the module fixture of tests/test_dashboards.py, used here too

RUN = os.getpid()
SQL_READER = f"qmonit_grafana_{RUN}"
INFLUX_READER = f"grafana_{RUN}"
PASSWORD = "r3ader'\\pw%"
CANARY = "CANARY-31337"
HOSTILE = [
    "x'", "x\\", "\\", "x\\' OR 1=1 -- ", "' OR '1'='1", "x'; DROP TABLE alerts; --",
    "x' UNION SELECT secret FROM canary_secret -- ", "x' # ", "x' /* ", "--", "#", "/*",
    'autogen" ; SHOW MEASUREMENTS ON otherdb --', '10m"."canary" WHERE 1=1 --', '" ;',
    "x/ OR 1=1 /", "a.*b|c(", "[", ")|(.*", "/", "x'\"`", "%7B%2C%7D",
]
LEVEL_BASES = {choice.name: choice.base for choice in CHOICES}
TABLES = ["alerts", "batch_clusters", "batch_job_hosts", "batch_jobs_current",
          "batch_jobs_ended", "batch_node_reasons", "batch_reservations", "factory_labels",
          "queue_stats", "queues", "source_status"]


def test_the_reader_gets_select_on_exactly_the_tables_the_dashboards_read():
    assert readers.grafana_tables(config.defaults(NO_SOURCES)) == TABLES
    assert readers.tables_read(["SELECT a FROM (SELECT b FROM `x` JOIN y ON 1) AS z"]) == [
        "x", "y"]


def test_the_statements_for_a_dba():
    assert readers.sql_statements("qmonit_grafana", "p'w", "qmonit", ["alerts", "queues"]) == [
        "CREATE USER IF NOT EXISTS 'qmonit_grafana'@'%' IDENTIFIED BY 'p''w'",
        "GRANT SELECT ON `qmonit`.`alerts` TO 'qmonit_grafana'@'%'",
        "GRANT SELECT ON `qmonit`.`queues` TO 'qmonit_grafana'@'%'",
        "SET GLOBAL init_connect = 'SET SESSION sql_mode = IF(SUBSTRING_INDEX(CURRENT_USER(), "
        "''@'', 1) = ''qmonit_grafana'', CONCAT(@@SESSION.sql_mode, '',NO_BACKSLASH_ESCAPES''), "
        "@@SESSION.sql_mode)'"]
    assert reader_statements("grafana", "p'w", "qmonit") == [
        "CREATE USER \"grafana\" WITH PASSWORD 'p\\'w'", 'GRANT READ ON "qmonit" TO "grafana"']


@pytest.mark.parametrize("grafana, message", [
    ({}, "[grafana] sql_reader_user is empty: Grafana needs its own SQL account with SELECT "
         "only (`qmonit init` creates it), never the [sql] url user; [grafana] "
         "influxdb_reader_user is empty: Grafana needs its own InfluxDB account with READ only "
         "(`qmonit init` creates it), never the [influxdb] username"),
    ({"sql_reader_user": "qmonit", "influxdb_reader_user": "g"},
     "[grafana] sql_reader_user is 'qmonit', the [sql] url user that writes: give Grafana its "
     "own account with SELECT only"),
    ({"sql_reader_user": "r"},
     "[grafana] influxdb_reader_user is empty: Grafana needs its own InfluxDB account with READ "
     "only (`qmonit init` creates it), never the [influxdb] username"),
    ({"sql_reader_user": "r", "influxdb_reader_user": "writer"},
     "[grafana] influxdb_reader_user is 'writer', the [influxdb] username that writes: give "
     "Grafana its own account with READ only"),
])
def test_build_refuses_without_a_reader_or_with_the_writer(write_config, tmp_path, capsys,
                                                          grafana, message):
    cfg = write_config({**NO_SOURCES, "grafana": grafana,
                        "influxdb": {"url": "https://influx.example.org", "username": "writer"},
                        "sql": {"url": "mysql+mysqlconnector://qmonit@db.example.org/qmonit"}})
    assert cli.main(["-c", str(cfg), "dashboards", "build", "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"qmonit dashboards: {message}\n"
    assert not (tmp_path / "o").exists()


def test_reader_passwords_are_secrets(make_config):
    cfg = make_config({**NO_SOURCES, "grafana": {"sql_reader_password": "pw-sql-1",
                                                 "influxdb_reader_password": "pw-influx-2"}})
    assert {"pw-sql-1", "pw-influx-2"} <= set(cfg.secrets())


# -- the servers, as the readers ----------------------------------------------------------

@pytest.fixture(scope="module")
def root_engine(mariadb):
    engine = create_engine(make_url(mariadb).set(database=""))
    with engine.connect() as conn:
        before = conn.execute(text("SELECT @@GLOBAL.init_connect")).scalar()
    yield engine
    with engine.begin() as conn:  # the server is shared: leave it as it was
        conn.exec_driver_sql("SET GLOBAL init_connect = %s", (before,))
        conn.execute(text(f"DROP USER IF EXISTS '{SQL_READER}'@'%'"))
        conn.execute(text(f"DROP DATABASE IF EXISTS canary_{RUN}"))
    engine.dispose()


@pytest.fixture(scope="module")
def sql_reader(filled, root_engine) -> Iterator:
    """The filled database with a canary table beside the dashboards' tables, another
    database with one, and the reader made by readers.create_sql_reader."""
    _, engine, _ = filled
    with root_engine.begin() as conn:
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS canary_{RUN}"))
        conn.execute(text(f"CREATE TABLE canary_{RUN}.secret (secret VARCHAR(40))"))
        conn.execute(text(f"INSERT INTO canary_{RUN}.secret VALUES ('{CANARY}')"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE canary_secret (secret VARCHAR(40))"))
        conn.execute(text(f"INSERT INTO canary_secret VALUES ('{CANARY}')"))
    with root_engine.begin() as conn:
        conn.execute(text("SET GLOBAL init_connect = ''"))
    assert readers.create_sql_reader(engine, SQL_READER, PASSWORD, TABLES) == [
        f"SQL reader '{SQL_READER}': SELECT on {', '.join(TABLES)}; NO_BACKSLASH_ESCAPES "
        f"through init_connect"]
    reader = create_engine(make_url(str(engine.url)).set(username=SQL_READER, password=PASSWORD))
    yield reader
    reader.dispose()


def test_the_readers_sessions_have_literal_backslashes_and_roots_do_not(sql_reader, filled):
    assert readers.backslash_status(sql_reader) == \
        "answers, NO_BACKSLASH_ESCAPES in its sessions"
    _, engine, _ = filled  # root has SUPER: init_connect is not run for it
    assert readers.backslash_status(engine).startswith("FAILED: its sessions lack NO_BACK")
    with sql_reader.connect() as conn:
        assert conn.exec_driver_sql("SELECT 'a\\\\'").scalar() == "a\\\\"


@pytest.mark.parametrize("statement, code", [
    ("DELETE FROM alerts", 1142), ("INSERT INTO queues (panda_queue) VALUES ('x')", 1142),
    ("CREATE TABLE x (a INT)", 1142), ("DROP TABLE alerts", 1142),
    ("SELECT * FROM canary_secret", 1142), ("SELECT * FROM leases", 1142),
    (f"SELECT * FROM canary_{RUN}.secret", 1142), ("SELECT * FROM mysql.user", 1142),
    ("SET GLOBAL init_connect = ''", 1227),
])
def test_the_sql_reader_can_only_read(sql_reader, statement, code):
    with pytest.raises(DBAPIError) as error, sql_reader.begin() as conn:
        conn.exec_driver_sql(statement)
    assert error.value.orig.errno == code


@pytest.fixture(scope="module")
def auth_influxd(tmp_path_factory):
    """A private influxd with auth-enabled, an admin, a canary database and a reader."""
    if not shutil.which("influxd"):
        pytest.skip("influxd not installed")
    server = InfluxServer(tmp_path_factory.mktemp("influxd-auth"))
    server.conf.write_text(server.conf.read_text().replace(
        "  log-enabled = false\n", "  log-enabled = false\n  auth-enabled = true\n"))
    server.start()
    admin = ("admin", "admin-pw")
    query(server.url, None, "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES")
    for statement in ("CREATE DATABASE qmonit", "CREATE DATABASE otherdb",
                      'CREATE RETENTION POLICY "10m" ON qmonit DURATION 0s REPLICATION 1 '
                      "DEFAULT"):
        query(server.url, admin, statement)
    at = int((VIEW_START.timestamp() + 12 * 3600) * 1e9)
    lines = (f"jobs,cloud=CA,state=running,job_status=running jobs=5,cores=8,hs06=80 {at}\n"
             f"workers,factory=f1,cloud=CA,worker_status=running workers=3 {at}\n"
             f"batch_jobs,cluster=c1,partition=p,owner=o,state=pending,reason=Priority "
             f"jobs=2,cpus=2,gpus=0 {at}\n"
             f"batch_nodes,cluster=c1,node=n1,node_state=idle cpus=8,cpus_alloc=2,gpus=1,"
             f"gpus_alloc=0,jobs=1 {at}\n"
             f"qmonit_run,job=collect,source=panda,status=ok duration_s=1,points=5,errors=0,"
             f"spool_bytes=0,sent=1 {at}\n"
             f"datadisk,rse=R1,cloud=CA,tier=1 daod_bytes=1,analysis_running=1 {at}\n"
             f"suspicious_flagged,cloud=CA,atlas_site=S,panda_queue=Q,rule=r flagged=1,"
             f"score=2 {at}\n"
             f"canary,who=x secret=\"{CANARY}\" {at}\n")
    write(server.url, admin, "qmonit", lines)
    write(server.url, admin, "otherdb", f"secret,who=x secret=\"{CANARY}\"\n")
    from qmonit.stores.timeseries.influx import InfluxStore
    settings = config.defaults({**NO_SOURCES, "influxdb": {
        "url": server.url, "database": "qmonit", "username": "admin",
        "password": "admin-pw"}}).settings.influxdb
    assert InfluxStore(settings).create_reader(INFLUX_READER, PASSWORD) == [
        f"InfluxDB reader '{INFLUX_READER}': READ on 'qmonit'"]
    yield server
    server.stop()


def query(url: str, auth, statement: str, db: str = "", method: str = "POST") -> list[dict]:
    params = {"q": statement, **({"db": db} if db else {})}
    response = requests.request(method, f"{url}/query", params=params, auth=auth, timeout=10)
    body = response.json()
    assert "error" not in body or response.status_code >= 400, body
    return body.get("results", [{"error": body.get("error")}])


def write(url: str, auth, db: str, lines: str) -> int:
    return requests.post(f"{url}/write", params={"db": db}, auth=auth, data=lines,
                         timeout=10).status_code


def test_the_influx_reader_can_only_read(auth_influxd):
    reader = (INFLUX_READER, PASSWORD)
    assert query(auth_influxd.url, reader, 'SELECT "jobs" FROM "jobs"', "qmonit", "GET") == [
        {"statement_id": 0, "series": [{"name": "jobs", "columns": ["time", "jobs"],
                                        "values": [query(auth_influxd.url, reader,
                                                         'SELECT "jobs" FROM "jobs"', "qmonit"
                                                         )[0]["series"][0]["values"][0]]}]}]
    for method in ("GET", "POST"):
        for statement in ("DROP DATABASE qmonit", "DROP MEASUREMENT jobs",
                          f"GRANT ALL TO {INFLUX_READER}", "CREATE DATABASE x"):
            result = query(auth_influxd.url, reader, statement, "qmonit", method)
            assert "not authorized" in str(result), (method, statement, result)
    assert write(auth_influxd.url, reader, "qmonit", "jobs,cloud=X jobs=1\n") == 403
    result = query(auth_influxd.url, reader, 'SELECT * FROM "secret"', "otherdb")
    assert "not authorized" in str(result)


# -- every query of every dashboard, every variable hostile ------------------------------

def hostile_views(model: dict, used: set[str]) -> Iterator[tuple[str, object, View, View]]:
    """(variable, value, the view with it, the view with a plain unknown value instead)."""
    variables = {v["name"]: v for v in model["templating"]["list"]}
    plain = {name: ("10m" if name == "rp" else ALL if v.get("includeAll") else
                    LEVEL_BASES.get(name) or (v["query"].split(",")[0] if v["type"] == "custom"
                                              else "nomatch"))
             for name, v in variables.items()}
    for name in sorted(used & set(variables)):
        multi = variables[name].get("multi")
        for value in HOSTILE:
            chosen = [value, "x"] if multi else value
            yield name, value, \
                View(VIEW_START, VIEW_END, variables=variables, values={},
                     selected={**plain, name: chosen}), \
                View(VIEW_START, VIEW_END, variables=variables, values={},
                     selected={**plain, name: ["nomatch", "x"] if multi else "nomatch"})


def queries_of(model: dict, kind: str) -> list[str]:
    found = [t.get("query" if kind == "influxdb" else "rawSql") for p in panels(model)
             for t in p["targets"] if t["datasource"]["type"] == kind]
    found += [v["query"] for v in model["templating"]["list"]
              if v["type"] == "query" and v["datasource"]["type"] == kind]
    return found


def used_variables(query_text: str) -> set[str]:
    import re
    return {m.group(1) or m.group(2) for m in re.finditer(r"\$\{(\w+)|\$(\w+)", query_text)}


def sql_outcome(engine, statement: str):
    try:
        with engine.connect() as conn:
            conn.execute(text("SET time_zone = '+00:00'"))
            return sorted(tuple(map(str, row)) for row in conn.exec_driver_sql(statement))
    except DBAPIError as exc:
        return ("error", exc.orig.errno)


def test_no_hostile_value_reads_another_table_as_the_sql_reader(sql_reader):
    cases = with_rows = 0
    for board in boards():
        for sql_text in queries_of(board.model, "mysql"):
            for name, value, view, plain in hostile_views(board.model, used_variables(sql_text)):
                got = sql_outcome(sql_reader, expand_sql(sql_text, view))
                want = sql_outcome(sql_reader, expand_sql(sql_text, plain))
                assert CANARY not in str(got)
                assert got == want, (board.name, name, value, expand_sql(sql_text, view))
                cases += 1
                with_rows += bool(want and want[0] != "error")
    # 8 Batch job queries (running in the time range added) x 8 variables (CPUs at least and
    # GPU jobs added) x 22 values, the 2 node-reason queries x 2 (cluster, worker) x 22, and
    # 396 of the other dashboards
    assert (cases, with_rows) == (1914, 528)  # + Reservations x cluster x 22


def influx_outcome(url: str, statement: str):
    results = query(url, (INFLUX_READER, PASSWORD), statement, "qmonit", "GET")
    # an error is an error (an unknown retention policy or `time(nomatch)` fails either way)
    # and a GROUP BY an unknown tag names that tag: compare the tags' values, not their keys
    return [("error", None) if "error" in r else
            ("ok", [(one["name"], one["columns"], one["values"],
                     sorted((one.get("tags") or {}).values())) for one in r.get("series", [])])
            for r in results]


def test_no_hostile_value_reads_another_measurement_or_database_as_the_influx_reader(
        auth_influxd):
    cases = with_rows = 0
    for board in boards():
        for influxql in queries_of(board.model, "influxdb"):
            for name, value, view, plain in hostile_views(board.model, used_variables(influxql)):
                got = influx_outcome(auth_influxd.url, expand_influx(influxql, view))
                want = influx_outcome(auth_influxd.url, expand_influx(influxql, plain))
                assert CANARY not in str(got)
                assert len(got) == 1, (board.name, name, value)  # one statement, never two
                assert got == want, (board.name, name, value, expand_influx(influxql, view))
                cases += 1
                with_rows += any(series for _, series in want)
    # +110: the worker box on Node states and Jobs per worker over time, and the Workers
    # table (rp, cluster, worker), 22 values each; +352: the scheduler-health row's 8
    # queries (rp, cluster)
    assert (cases, with_rows) == (5434, 22)


# -- init and check -----------------------------------------------------------------------

@pytest.fixture
def reader_config(write_config, mariadb, root_engine, auth_influxd):
    name = f"qmonit_readers_{RUN}"
    with root_engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(mariadb).set(database=name).render_as_string(False)
    yield write_config({**NO_SOURCES, "sql": {"url": url},
                        "influxdb": {"url": auth_influxd.url, "database": "qmonit",
                                     "username": "admin", "password": "admin-pw"},
                        "grafana": {"sql_reader_user": SQL_READER,
                                    "sql_reader_password": PASSWORD,
                                    "influxdb_reader_user": INFLUX_READER,
                                    "influxdb_reader_password": PASSWORD}}), name
    with root_engine.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))


def test_init_creates_the_readers_and_check_sees_literal_backslashes(reader_config, root_engine,
                                                                     capsys):
    path, name = reader_config
    with root_engine.begin() as conn:
        conn.execute(text("SET GLOBAL init_connect = ''"))
    assert cli.main(["-c", str(path), "init"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [f"SQL reader '{SQL_READER}': SELECT on {', '.join(TABLES)}; "
                        f"NO_BACKSLASH_ESCAPES through init_connect",
                        f"InfluxDB reader '{INFLUX_READER}': READ on 'qmonit'"]
    with root_engine.connect() as conn:
        grants = [row[0] for row in conn.execute(text(f"SHOW GRANTS FOR '{SQL_READER}'@'%'"))]
    assert sorted(g for g in grants if f"`{name}`" in g) == sorted(
        f"GRANT SELECT ON `{name}`.`{table}` TO `{SQL_READER}`@`%`" for table in TABLES)
    assert cli.main(["-c", str(path), "check"]) in (0, 1)  # spool/sources aside
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sql reader"))
    assert line.endswith("answers, NO_BACKSLASH_ESCAPES in its sessions")
    assert f"{SQL_READER}:***@" in line


def test_init_prints_the_statements_when_init_connect_is_someone_elses(reader_config,
                                                                       root_engine, capsys):
    path, name = reader_config
    with root_engine.begin() as conn:
        conn.execute(text("SET GLOBAL init_connect = 'SET @dba = 1'"))
    try:
        assert cli.main(["-c", str(path), "init"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"qmonit init: SQL reader '{SQL_READER}' not created (the server's init_connect is "
            f"already set ('SET @dba = 1'); qmonit will not replace it: add "
            f"NO_BACKSLASH_ESCAPES for '{SQL_READER}' to it); as an administrator run:\n"
            f"  CREATE USER IF NOT EXISTS '{SQL_READER}'@'%' IDENTIFIED BY 'PASSWORD';\n"
            f"  GRANT SELECT ON `{name}`.`alerts` TO '{SQL_READER}'@'%';\n")
        assert PASSWORD not in err
        with root_engine.connect() as conn:
            assert conn.execute(text("SELECT @@GLOBAL.init_connect")).scalar() == "SET @dba = 1"
    finally:
        with root_engine.begin() as conn:
            conn.execute(text("SET GLOBAL init_connect = ''"))


def test_check_says_when_the_readers_backslashes_are_not_literal(reader_config, root_engine,
                                                                 capsys):
    path, _ = reader_config
    with root_engine.begin() as conn:
        conn.execute(text("SET GLOBAL init_connect = ''"))
    assert cli.main(["-c", str(path), "init"]) == 0
    with root_engine.begin() as conn:
        conn.execute(text("SET GLOBAL init_connect = ''"))
    capsys.readouterr()
    assert cli.main(["-c", str(path), "check"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sql reader"))
    assert line.endswith(
        "FAILED: its sessions lack NO_BACKSLASH_ESCAPES: a backslash in a dashboard variable "
        "can end a quoted value (run `qmonit init` or set the server's init_connect, see "
        "README Security)")


# -- the helpers' guard and Grafana's formats ----------------------------------------------

def test_percentencode_is_the_identity_for_legit_values_and_escapes_everything_else():
    from tests.grafana_macros import percent_encode
    for legit in ("10m", "1h", "jobs_by_cloud", "1234.0", "wn01.example.org", "ANALY_BNL-x~"):
        assert percent_encode(legit) == legit
    assert percent_encode("a'b\"c\\ d!()*/;#-") == "a%27b%22c%5C%20d%21%28%29%2A%2F%3B%23-"
    assert percent_encode("é") == "%C3%A9"


def test_the_guard_gives_every_variable_a_safe_format_or_refuses():
    from qmonit.grafana.helpers import UnsafeVariable, guard_influx, guard_sql, sql_match
    assert guard_influx('SELECT sum("$metric") FROM "$rp"."$jobs_m" WHERE $timeFilter AND '
                        '"cloud" =~ /^$cloud$/ GROUP BY time($rp), "$group_by"') == (
        'SELECT sum("${metric:percentencode}") FROM "${rp:percentencode}".'
        '"${jobs_m:percentencode}" WHERE $timeFilter AND "cloud" =~ /^${cloud:regex}$/ '
        'GROUP BY time(${rp:percentencode}), "${group_by:percentencode}"')
    assert guard_sql("job_id = '$job_id' AND cloud IN (${cloud:sqlstring})") == \
        "job_id = '${job_id:percentencode}' AND cloud IN (${cloud:sqlstring})"
    for unsafe in ("owner REGEXP '^${owner:regex}$'", "x = $job_id", "x = '${job_id:raw}'"):
        with pytest.raises(UnsafeVariable):
            guard_sql(unsafe)
    with pytest.raises(UnsafeVariable):
        guard_influx('"cloud" =~ /$cloud/')
    view = View(VIEW_START, VIEW_END, variables={"owner": {
        "name": "owner", "multi": True, "includeAll": True, "allValue": ".*"}},
        selected={"owner": ["a", "b'c"]})
    expanded = expand_sql(sql_match("owner", "owner"), view)
    assert expanded.startswith("('%7Ba%2Cb%27c%7D' = '.%2A' OR owner IN (SUBSTRING_INDEX(")
    # the value is only ever the quoted, percent-encoded literal: the All test, the 20 values
    # of the IN list, the count of values (twice) and the LOCATE beyond them
    assert expanded.count("'%7Ba%2Cb%27c%7D'") == 24
    assert "b'c" not in expanded
