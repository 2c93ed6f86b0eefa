"""The dashboards: they build, hang together, and every panel query runs on real, filled stores."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qmonit.app import cli
from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.core import config
from qmonit.core.levels import CHOICES
from qmonit.core.sample import SLOT, slot_start
from qmonit.datadisk.job import run_datadisk
from qmonit.derive.job import derive
from qmonit.grafana.build import build_all
from qmonit.grafana.provision import OPEN_FLAGS_SQL, STALE_SQL, alert_rules
from qmonit.rollup.downsample import rollup
from tests.grafana_macros import ALL, View, expand_influx, expand_sql, resolve_hidden
from tests.servers import Reply, ScriptedServer

DAY = slot_start(datetime.now(UTC)).replace(hour=0, minute=0) - timedelta(days=1)
# 11:00 to 12:10 UTC: PanDA's simulated outage starts at 12:00, so the stale flag is open.
FILL_SLOTS = [DAY + timedelta(hours=11) + SLOT * n for n in range(8)]
VIEW_START, VIEW_END = DAY, DAY + timedelta(days=1)
RPS = ("10m", "1h", "1d")
NO_SOURCES = {"sources": {"enabled": "simulated"}}


def boards() -> list:
    return build_all(config.defaults(NO_SOURCES))


def board(name: str):
    return next(b for b in boards() if b.name == name)


def panels(model: dict) -> list[dict]:
    return [p for p in model["panels"] if p["type"] != "row"]


@pytest.fixture(scope="module")
def filled(influxd, mariadb, tmp_path_factory):
    """InfluxDB and MariaDB after a simulated run: 8 collect + derive cycles, roll-ups."""
    name = f"qmonit_dash_{os.getpid()}"
    admin = create_engine(make_url(mariadb).set(database=""))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    hook = ScriptedServer()
    hook.routes["/hook"] = [Reply(200, "ok")]
    directory = tmp_path_factory.mktemp("dash")
    path = directory / "config.cfg"
    path.write_text(f"[qmonit]\ndata_dir = {directory / 'data'}\n"
                    f"[influxdb]\nurl = {influxd.url}\ndatabase = {name}\n"
                    f"[sql]\nurl = {make_url(mariadb).set(database=name).render_as_string(False)}\n"
                    f"[sources]\nenabled = simulated, simulated_batch\n"
                    f"[notify]\nwebhook_url = {hook.url}/hook\n"
                    f"[logging]\nlevel = ERROR\n")
    path.chmod(0o600)
    assert cli.main(["-c", str(path), "init"]) == 0
    parts = build(config.load(str(path), environ={}))
    for slot in FILL_SLOTS:
        collect(parts, slot)
        derive(parts, slot)
    assert run_datadisk(parts, DAY + timedelta(hours=12, minutes=12)).exit_code == 0
    for job in ("hourly", "daily"):
        assert rollup(parts, job, DAY + timedelta(days=1, minutes=5), progress=False).errors == []
    engine = create_engine(make_url(mariadb).set(database=name))
    yield parts, engine, hook
    engine.dispose()
    hook.close()
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def run_sql(engine, query: str) -> list[tuple]:
    with engine.connect() as conn:
        conn.execute(text("SET time_zone = '+00:00'"))  # what Grafana's MySQL datasource does
        return [tuple(r) for r in conn.exec_driver_sql(query)]


def make_view(model: dict, parts, engine, rp: str, **selected) -> View:
    """The dashboard's variables with every query variable's options read from the stores."""
    variables = {v["name"]: v for v in model["templating"]["list"]}
    view = View(VIEW_START, VIEW_END, variables=variables,
                selected={"rp": rp, **selected})
    for name, variable in variables.items():
        if variable["type"] == "custom":
            view.values[name] = variable["query"].split(",")
        elif variable["type"] == "query" and variable.get("hide") != 2:
            view.values[name] = variable_options(variable, view, parts, engine)
    resolve_hidden(view, parts.store.rows)
    return view


def variable_options(variable: dict, view: View, parts, engine) -> list[str]:
    if variable["datasource"]["type"] == "influxdb":
        rows = parts.store.rows(expand_influx(variable["query"], view))
        return sorted({str(row["value"]) for row in rows})
    return [str(row[0]) for row in run_sql(engine, expand_sql(variable["query"], view))]


def run_target(target: dict, view: View, parts, engine) -> int:
    """Rows the target's query returns, expanded as Grafana would."""
    if target["datasource"]["type"] == "influxdb":
        return len(parts.store.rows(expand_influx(target["query"], view)))
    return len(run_sql(engine, expand_sql(target["rawSql"], view)))


# -- building and structure --------------------------------------------------------------

def test_every_dashboard_file_builds_with_a_uid_title_and_panels():
    built = boards()
    assert [(b.name, b.uid) for b in built] == [
        ("batch", "qmonit-batch"), ("daod", "qmonit-daod"), ("factories", "qmonit-factories"),
        ("jobs", "qmonit-jobs"), ("pipeline", "qmonit-pipeline"),
        ("suspicious", "qmonit-suspicious")]
    assert [b.title for b in built] == ["Batch Clusters", "DAOD distribution",
                                        "Pilot Factories", "Jobs Monitoring",
                                        "Pipeline Health", "Suspicious Sites"]
    for board in built:
        assert len(panels(board.model)) >= 6, board.name
        assert board.model["timezone"] == "utc"


def test_panel_ids_are_unique_and_grid_positions_do_not_overlap():
    for board in boards():
        ids = [p["id"] for p in board.model["panels"]]
        assert len(ids) == len(set(ids)), board.name
        boxes = [(p["title"], p["gridPos"]) for p in board.model["panels"]]
        for n, (title, a) in enumerate(boxes):
            assert a["x"] >= 0 and a["x"] + a["w"] <= 24, (board.name, title)
            for other, b in boxes[n + 1:]:
                apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                         or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
                assert apart, f"{board.name}: {title} overlaps {other}"


def test_every_panel_says_what_its_number_means_and_uses_a_defined_datasource():
    defined = {"qmonit-influxdb", "qmonit-mysql"}
    for board in boards():
        for panel in panels(board.model):
            assert len(panel["description"]) > 20, (board.name, panel["title"])
            assert panel["datasource"]["uid"] in defined
            assert panel["targets"], (board.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in defined
        for variable in board.model["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] in defined


def test_build_puts_the_configured_datasource_uids_everywhere():
    cfg = config.defaults({**NO_SOURCES, "grafana": {"influxdb_datasource": "influx-prod",
                                       "sql_datasource": "mysql-prod"}})
    text_of_all = json.dumps([b.model for b in build_all(cfg)])
    assert "qmonit-influxdb" not in text_of_all and "qmonit-mysql" not in text_of_all
    assert text_of_all.count('"uid": "influx-prod"') > 20
    assert text_of_all.count('"uid": "mysql-prod"') > 20


def test_every_link_goes_to_a_dashboard_that_exists_with_the_variables_it_sets():
    built = {b.uid: b.model for b in boards()}
    links = 0
    for uid, model in built.items():
        for panel in panels(model):
            found = [link["url"] for link in panel.get("links", [])]
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                for prop in override["properties"]:
                    if prop["id"] == "links":
                        found += [link["url"] for link in prop["value"]]
            for url in found:
                match = re.fullmatch(r"/d/([\w-]+)\?\$\{__url_time_range\}((?:&var-\w+=[^&]+)*)",
                                     url)
                assert match, f"{uid} {panel['title']}: {url}"
                target = built.get(match.group(1))
                assert target is not None, f"{uid} {panel['title']} links to {match.group(1)}"
                names = {v["name"] for v in target["templating"]["list"]}
                for name in re.findall(r"&var-(\w+)=", match.group(2)):
                    assert name in names, f"{url}: {match.group(1)} has no variable {name}"
                links += 1
    assert links == 8  # suspicious -> jobs (3), factory -> labels -> queue -> jobs (4),
    # jobs -> DAOD distribution (1)


def test_long_time_ranges_switch_to_the_rolled_up_retention_policies(filled):
    parts, _, _ = filled
    query = next(v for v in board("jobs").model["templating"]["list"] if v["name"] == "rp")["query"]
    for days, rp in ((0.25, "10m"), (2, "10m"), (3, "1h"), (62, "1h"), (63, "1d"), (3650, "1d")):
        view = View(VIEW_END - timedelta(days=days), VIEW_END)
        assert [row["first"] for row in parts.store.rows(expand_influx(query, view))] == [rp], \
            f"{days} days"


# -- every query against the filled stores ------------------------------------------------

def test_every_variable_query_returns_values(filled):
    parts, engine, _ = filled
    for board in boards():
        view = make_view(board.model, parts, engine, "10m")
        for name, variable in view.variables.items():
            if variable["type"] == "query" and variable.get("hide") != 2:
                assert view.values[name], f"{board.name}: ${name} has no values"


def test_every_panel_query_runs_and_returns_rows_at_every_resolution(filled):
    parts, engine, _ = filled
    empty, ran = [], 0
    for board in boards():
        for rp in RPS:
            view = make_view(board.model, parts, engine, rp)
            for panel in panels(board.model):
                for target in panel["targets"]:
                    query = target.get("query") or target.get("rawSql")
                    if rp != "10m" and "${rp:percentencode}" not in query:
                        continue  # a SQL panel reads the same rows at every resolution
                    ran += 1
                    if run_target(target, view, parts, engine) == 0:
                        empty.append(f"{board.name} / {panel['title']} / {target['refId']} "
                                     f"at {rp}")
    assert empty == [], "\n".join(empty)
    assert ran > 100


def test_a_variable_set_to_one_value_narrows_the_panels(filled):
    parts, engine, _ = filled
    jobs = board("jobs").model
    view = make_view(jobs, parts, engine, "10m")
    panel = next(p for p in panels(jobs) if p["title"] == "By PanDA job status")
    everything = parts.store.rows(expand_influx(panel["targets"][0]["query"], view))
    cloud = view.values["cloud"][0]
    view.selected["cloud"] = [cloud]
    resolve_hidden(view, parts.store.rows)
    narrowed = parts.store.rows(expand_influx(panel["targets"][0]["query"], view))
    assert 0 < sum(r["n"] for r in narrowed) < sum(r["n"] for r in everything)


def test_jobs_panels_agree_with_the_queue_stats_table(filled):
    """The InfluxDB panels and the SQL current state count the same jobs in the last slot."""
    parts, engine, _ = filled
    jobs = board("jobs").model
    view = make_view(jobs, parts, engine, "10m")
    (running, failed, finished), = run_sql(
        engine, "SELECT SUM(running), SUM(failed), SUM(finished) FROM queue_stats")
    by_status = next(p for p in panels(jobs) if p["title"] == "By PanDA job status")
    rows = parts.store.rows(expand_influx(by_status["targets"][0]["query"], view))
    last = max(r["time"] for r in rows)
    assert last == int((DAY + timedelta(hours=11, minutes=50)).timestamp())  # 12:00 failed
    assert sum(r["n"] for r in rows if r["time"] == last and r["job_status"] == "running") \
        == running
    ratio = next(p for p in panels(jobs) if p["title"] == "Failure ratio" and p["type"] == "stat")
    values = parts.store.rows(expand_influx(ratio["targets"][0]["query"], view))
    assert values[-1]["failure_ratio"] == pytest.approx(failed / (failed + finished))


def test_suspicious_sites_show_the_open_stale_flag_and_the_notification(filled):
    parts, engine, hook = filled
    suspicious = board("suspicious").model
    view = make_view(suspicious, parts, engine, "10m")
    table = next(p for p in panels(suspicious) if p["title"] == "Open incidents"
                 and p["type"] == "table")
    rows = run_sql(engine, expand_sql(table["targets"][0]["rawSql"], view))
    stale = [r for r in rows if r[0] == "source:panda"]
    assert [(r[6], r[7], r[8], r[9], r[12]) for r in stale] == [
        ("stale", "all/all", "critical", "open", "monitoring")]
    assert "source panda: no successful collect since" in stale[0][18]
    assert stale[0][11] >= 0  # open minutes, to the database's clock
    assert stale[0][17] == stale[0][10]  # as of: opened now, the numbers of its first slot
    assert any(r.path == "/hook" for r in hook.requests)
    assert run_sql(engine, OPEN_FLAGS_SQL)[0][0] == sum(1 for r in rows if r[8] == "critical")


def test_the_open_incidents_panel_shows_what_qmonit_suspicious_shows(mariadb_url):
    """Grafana cannot call Python: the panel's SQL groups the open alerts as incidents.group
    does. Q starves (warning) and drops on two splits (critical): one critical row, starving
    its principal, the drops as `also`; R's backlog and the PanDA source's stale each one."""
    from sqlalchemy import insert

    from qmonit.app.suspicious import open_flags
    from qmonit.derive.incidents import OPEN_INCIDENTS_SQL
    from qmonit.stores.state import alerts, queues, schema

    engine = create_engine(mariadb_url)
    schema.create_tables(engine)
    t0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(queues.queues), [
            {"panda_queue": "Q", "atlas_site": "Q-SITE", "cloud": "US", "tier": "T2",
             "queue_status": "online", "pilot_manager": "Harvester",
             "harvester": "CERN_central_A", "updated_at": t0},
            {"panda_queue": "R", "atlas_site": "R-SITE", "cloud": "DE", "tier": "T1",
             "queue_status": "online", "pilot_manager": "APF", "harvester": None,
             "updated_at": t0}])

        def alert(queue, label, resource, rule, severity, opened, closed=None, **more):
            return {"panda_queue": queue, "prod_source": label, "resource": resource,
                    "rule": rule, "severity": severity, "reason": f"{rule} of {queue}",
                    "current": 1.0, "baseline": 400.0, "metric": "running jobs",
                    "layer": "batch/site", "layer_evidence": "pilots wait",
                    "as_of": t0 + opened, "opened_at": t0 + opened,
                    "closed_at": None if closed is None else t0 + closed, "status": None,
                    **more}
        conn.execute(insert(alerts.alerts), [
            alert("Q", "managed", "SCORE", "drop", "critical", SLOT),
            alert("Q", "managed", "SCORE", "starving", "warning", 2 * SLOT),
            alert("Q", "managed", "MCORE", "drop", "critical", 0 * SLOT),
            alert("Q", "managed", "SCORE", "failing", "critical", -SLOT, SLOT),  # closed
            alert("R", "managed", "SCORE", "backlog", "warning", 0 * SLOT, status="recovering"),
            alert("source:panda", "all", "all", "stale", "critical", 3 * SLOT,
                  layer="monitoring")])
    rows = run_sql(engine, OPEN_INCIDENTS_SQL)
    expected = open_flags(engine, now=t0 + 3 * SLOT)
    assert [r[0] for r in rows] == [e["panda_queue"] for e in expected] == \
        ["Q", "source:panda", "R"]  # critical first, then by opening
    assert [(r[6], r[7], r[8], r[9], r[10].replace(tzinfo=UTC)) for r in rows] == [
        ("starving", "managed/SCORE", "critical", "open", t0),
        ("stale", "all/all", "critical", "open", t0 + 3 * SLOT),
        ("backlog", "managed/SCORE", "warning", "recovering", t0)]
    assert [(e["rule"], f"{e['prod_source']}/{e['resource']}", e["severity"], e["state"])
            for e in expected] == [r[6:10] for r in rows]
    assert [r[1:6] for r in rows] == [
        ("Q-SITE", "US", "T2", "online", "Harvester (CERN_central_A)"),
        ("unknown", "unknown", "unknown", "unknown", "unknown"),
        ("R-SITE", "DE", "T1", "online", "APF")]
    also = "; ".join(f"{e['rule']} {e['prod_source']}/{e['resource']}: {e['reason']}"
                     for e in expected[0]["evidence"])
    assert rows[0][19] == also == ("drop managed/MCORE: drop of Q; "
                                   "drop managed/SCORE: drop of Q")
    assert (rows[1][19], rows[2][19]) == ("", "")
    assert [(r[12], r[13], r[14], r[15], r[16], r[18]) for r in rows][1] == (
        "monitoring", "pilots wait", "running jobs", 1.0, 400.0, "stale of source:panda")
    engine.dispose()


def test_pilot_factories_show_every_label_with_its_message(filled):
    parts, engine, _ = filled
    factories = board("factories").model
    view = make_view(factories, parts, engine, "10m")
    labels = next(p for p in panels(factories) if p["title"] == "Labels")
    rows = run_sql(engine, expand_sql(labels["targets"][0]["rawSql"], view))
    assert len(rows) == len(run_sql(engine, "SELECT * FROM factory_labels")) > 0
    assert {row[13] for row in rows} == {"apf", "harvester"}  # both factories' labels
    for row in rows:
        created, running, exiting, done, fault, activated, message = row[5:12]
        if row[13] == "harvester":
            assert message.startswith(f"{activated:.0f} activated jobs, {created:.0f} workers "
                                      f"queued, {running:.0f} running; ended recently "
                                      f"{done:.0f} finished, {fault:.0f} failed or missed.")
        else:
            assert message.startswith(f"{activated:.0f} activated jobs, {created:.0f} pilots "
                                      f"queued, {running:.0f} running, {exiting:.0f} exiting; "
                                      f"last hour {done:.0f} done, {fault:.0f} fault.")
        assert ("In trouble:" in message) == bool(row[4])


def test_the_stale_data_alert_counts_sources_without_a_write_for_30_minutes(filled):
    _, engine, _ = filled
    collected = run_sql(engine, "SELECT COUNT(*) FROM source_status WHERE job = 'collect'")[0][0]
    assert collected >= 5  # panda, harvester, slurm, htcondor (factory), sinks, ...
    # The fill is a day old: every source of the collect job is stale now.
    assert run_sql(engine, STALE_SQL)[0][0] == collected
    for group in alert_rules(config.defaults(NO_SOURCES))["groups"]:
        queries = [d["model"]["rawSql"] for rule in group["rules"] for d in rule["data"]
                   if d["datasourceUid"] == "qmonit-mysql"]
        assert queries == [OPEN_FLAGS_SQL, STALE_SQL]


def test_dashboards_build_writes_json_and_provisioning(write_config, tmp_path):
    cfg = write_config({**NO_SOURCES, "influxdb": {"url": "https://influx.example.org:8086",
                                     "database": "monit", "username": "writer",
                                     "password": "influx-Secret-1"},
                        "sql": {"url": "mysql+mysqlconnector://qmonit@db.example.org/qmonit",
                                "password": "sql-Secret-2"},
                        "grafana": {"sql_reader_user": "reader",
                                    "sql_reader_password": "sql-Secret-3",
                                    "influxdb_reader_user": "grafana",
                                    "influxdb_reader_password": "influx-Secret-4"}})
    out = tmp_path / "grafana"
    assert cli.main(["-c", str(cfg), "dashboards", "build", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.json")) == [
        "batch.json", "daod.json", "factories.json", "jobs.json", "pipeline.json",
        "suspicious.json"]
    assert json.loads((out / "jobs.json").read_text())["uid"] == "qmonit-jobs"
    files = {p.relative_to(out / "provisioning").as_posix(): p.read_text()
             for p in (out / "provisioning").rglob("*.yaml")}
    assert sorted(files) == ["alerting/qmonit.yaml", "dashboards/qmonit.yaml",
                             "datasources/qmonit.yaml"]
    everything = "".join(files.values())
    assert "Secret" not in everything
    datasources = files["datasources/qmonit.yaml"]
    for expected in ("url: https://influx.example.org:8086", "dbName: monit", "user: grafana",
                     "password: ${QMONIT_GRAFANA_INFLUXDB_READER_PASSWORD}",
                     "url: db.example.org:3306", "user: reader", "database: qmonit",
                     "password: ${QMONIT_GRAFANA_SQL_READER_PASSWORD}"):
        assert expected in datasources
    assert f"path: {out.resolve()}" in files["dashboards/qmonit.yaml"]
    assert "uid: qmonit-stale-data" in files["alerting/qmonit.yaml"]
    assert "{{ $$values.B.Value }}" in files["alerting/qmonit.yaml"]
    # Grafana's account reads them (no secret in them), whatever qmonit's own umask 077
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777)
             for p in [out, *out.rglob("*")]}
    assert modes == {
        "grafana": "0o755", "grafana/provisioning": "0o755",
        **{f"grafana/{name}.json": "0o644"
           for name in ("batch", "daod", "factories", "jobs", "pipeline", "suspicious")},
        **{f"grafana/provisioning/{kind}": "0o755"
           for kind in ("alerting", "dashboards", "datasources")},
        **{f"grafana/provisioning/{kind}/qmonit.yaml": "0o644"
           for kind in ("alerting", "dashboards", "datasources")}}


def test_grafana_path_is_where_grafanas_host_reads_the_json(write_config, tmp_path, capsys):
    """Built on the qmonit host, read on Grafana's: the provisioning file names the folder the
    JSON is copied to there, not the build folder; a relative path is refused (exit 2)."""
    cfg = write_config({**NO_SOURCES, "grafana": {"sql_reader_user": "reader",
                                                  "influxdb_reader_user": "grafana"}})
    out = tmp_path / "build"
    assert cli.main(["-c", str(cfg), "dashboards", "build", "-o", str(out), "--grafana-path",
                     "/var/lib/grafana/dashboards/qmonit"]) == 0
    provider = yaml.safe_load((out / "provisioning/dashboards/qmonit.yaml").read_text())
    assert provider["providers"][0]["options"] == {"path": "/var/lib/grafana/dashboards/qmonit"}
    capsys.readouterr()
    assert cli.main(["-c", str(cfg), "dashboards", "build", "-o", str(tmp_path / "other"),
                     "--grafana-path", "dashboards/qmonit"]) == 2
    assert capsys.readouterr().err == (
        "qmonit dashboards build: --grafana-path dashboards/qmonit: not an absolute path "
        "(Grafana's provisioning needs the folder as its host sees it)\n")
    assert not (tmp_path / "other").exists()


def test_a_broken_dashboard_file_is_named_and_exits_2(write_config, tmp_path, capsys):
    boards_dir = tmp_path / "boards"
    boards_dir.mkdir()
    (boards_dir / "ok.dashboard.py").write_text(
        Path(__file__).parents[1].joinpath("dashboards", "jobs.dashboard.py").read_text())
    (boards_dir / "broken.dashboard.py").write_text("dashboard = undefined_name\n")
    cfg = write_config({**NO_SOURCES, "grafana": {"dashboards_dir": str(boards_dir)}})
    assert cli.main(["-c", str(cfg), "dashboards", "build", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{boards_dir / 'broken.dashboard.py'}: NameError: name 'undefined_name' is not " \
           f"defined" in err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_all_value_is_what_grafana_sends():
    view = View(VIEW_START, VIEW_END, variables={
        "cloud": {"name": "cloud", "multi": True, "includeAll": True, "allValue": ".*",
                  "current": {"value": ALL}},
        "owner": {"name": "owner", "multi": True, "includeAll": True, "current": {}}},
        values={"owner": ["a'b", "c.d"]}, selected={"owner": ALL})
    assert expand_influx('"cloud" =~ /^$cloud$/', view) == '"cloud" =~ /^.*$/'
    assert expand_sql("owner IN (${owner:sqlstring})", view) == "owner IN ('a''b','c.d')"
    # the regex format leaves a quote alone: never inside a SQL literal (helpers.sql_match)
    assert expand_sql("owner REGEXP '^${owner:regex}$'", view) == r"owner REGEXP '^(a'b|c\.d)$'"
    assert expand_sql("'${owner:percentencode}'", view) == "'%7Ba%27b%2Cc.d%7D'"
    assert expand_sql("'${cloud:percentencode}'", view) == "'.%2A'"
    assert expand_sql("${cloud:sqlstring}", view) == ".*"  # All's custom value goes in raw


def test_a_missing_dashboards_directory_is_named_and_exits_2(write_config, tmp_path, capsys):
    cfg = write_config({**NO_SOURCES, "grafana": {"dashboards_dir": str(tmp_path / "none")}})
    assert cli.main(["-c", str(cfg), "dashboards", "build"]) == 2
    assert capsys.readouterr().err == (f"qmonit dashboards: {tmp_path / 'none'}: no such "
                                       f"directory ([grafana] dashboards_dir)\n")


LEVEL_VARIABLES = {one.name: one.base for one in CHOICES}


def normalized(rows: list[dict]) -> list[tuple]:
    """Rows in a fixed order, numbers rounded to 9 significant digits (sums of HS06 and of
    means differ in the last bits with the order of adding)."""
    def value(v):
        return float(f"{v:.9g}") if isinstance(v, float) else v
    return sorted(tuple(sorted((k, value(v)) for k, v in row.items())) for row in rows)


def test_every_panel_gives_the_same_numbers_from_its_level_as_from_the_per_queue_series(filled):
    """At every resolution and for All, one cloud, one site and one queue: the level the hidden
    variable picks answers exactly what the per-queue measurement answers."""
    parts, engine, _ = filled
    compared, used = 0, set()
    for board in boards():
        names = {v["name"] for v in board.model["templating"]["list"]} & set(LEVEL_VARIABLES)
        if not names:
            continue
        for rp in RPS:
            everything = make_view(board.model, parts, engine, rp)
            choices = [{}]
            for variable in ("cloud", "site", "queue", "owner"):
                if everything.values.get(variable):
                    choices.append({variable: [everything.values[variable][0]]})
            for selection in choices:
                view = make_view(board.model, parts, engine, rp, **selection)
                base = View(view.start, view.end, variables=view.variables, values=view.values,
                            selected={**view.selected, **{n: LEVEL_VARIABLES[n] for n in names}})
                used |= {view.selected[n] for n in names}
                for panel in panels(board.model):
                    for target in panel["targets"]:
                        query = target.get("query", "")
                        if not any(f"${{{n}:percentencode}}" in query for n in names):
                            continue
                        got = parts.store.rows(expand_influx(query, view))
                        want = parts.store.rows(expand_influx(query, base))
                        assert normalized(got) == normalized(want), \
                            f"{board.name} / {panel['title']} at {rp}, {selection}"
                        assert want or rp == "1d", f"{board.name} / {panel['title']} at {rp}"
                        compared += 1
    assert compared > 100
    # All reads the levels; one queue, site or owner reads the per-queue measurements
    assert {"jobs_grid", "jobs_by_state", "jobs_by_status", "jobs_by_queue", "workers_by_cloud",
            "batch_jobs_by_partition", "jobs", "workers", "batch_jobs"} <= used


def test_all_reads_a_level_and_one_queue_the_per_queue_series(filled):
    parts, engine, _ = filled
    jobs = board("jobs").model
    view = make_view(jobs, parts, engine, "10m")
    assert [view.selected[n] for n in ("jobs_m", "jobs_split_m", "jobs_status_m")] == [
        "jobs_grid", "jobs_by_state", "jobs_grid"]  # $group_by starts on cloud
    view = make_view(jobs, parts, engine, "10m", cloud=[view.values["cloud"][0]])
    assert [view.selected[n] for n in ("jobs_m", "jobs_split_m", "jobs_status_m")] == [
        "jobs_by_state", "jobs_by_state", "jobs_by_status"]
    site = view.values["site"][0]
    view = make_view(jobs, parts, engine, "10m", site=[site])
    assert [view.selected[n] for n in ("jobs_m", "jobs_split_m", "jobs_status_m")] == [
        "jobs_by_queue", "jobs_by_queue", "jobs"]
    queue = view.values["queue"][0]
    view = make_view(jobs, parts, engine, "10m", queue=[queue], group_by="panda_queue")
    assert [view.selected[n] for n in ("jobs_m", "jobs_split_m", "jobs_status_m")] == [
        "jobs_by_queue", "jobs_by_queue", "jobs"]


def test_the_flag_panels_read_from_the_flagged_findings_what_all_findings_give(filled):
    parts, engine, _ = filled
    suspicious = board("suspicious").model
    compared = 0
    for rp in RPS:
        view = make_view(suspicious, parts, engine, rp)
        for panel in panels(suspicious):
            for target in panel["targets"]:
                query = target.get("query", "")
                if '"suspicious_flagged"' not in query:
                    continue
                got = parts.store.rows(expand_influx(query, view))
                every = query.replace('"suspicious_flagged"', '"suspicious"')
                want = [row for row in parts.store.rows(expand_influx(every, view))
                        if any(v for k, v in row.items() if k not in ("time", "rule"))]
                assert normalized(got) == normalized(want), f"{panel['title']} at {rp}"
                assert got or rp == "1d", f"{panel['title']} at {rp}: nothing flagged"
                compared += 1
    assert compared == 6


def test_each_level_variable_comes_after_every_variable_it_reads():
    """Grafana refreshes a variable when one it names changes; listed after them, it is also
    resolved after them when a dashboard opens."""
    checked = 0
    for board in boards():
        names = [v["name"] for v in board.model["templating"]["list"]]
        for position, variable in enumerate(board.model["templating"]["list"]):
            if variable["name"] not in LEVEL_VARIABLES:
                continue
            used = set(re.findall(r"\$\{?(\w+)", variable["query"])) & set(names)
            assert used, variable["name"]
            assert all(names.index(name) < position for name in used), \
                (board.name, variable["name"], used)
            checked += 1
    assert checked == len(LEVEL_VARIABLES)


def test_daod_distribution_ranks_the_badly_placed_datadisk_first(filled):
    parts, engine, _ = filled
    [board] = [b for b in boards() if b.model["uid"] == "qmonit-daod"]
    view = make_view(board.model, parts, engine, "10m")
    [panel] = [p for p in panels(board.model) if p["title"] == "Most under-supplied datadisks"]
    rows = parts.store.rows(expand_influx(panel["targets"][0]["query"], view))
    assert len(rows) == 10
    assert max(rows, key=lambda r: r["placement_ratio"])["rse"] == parts.daod.badly_placed
    [every] = [p for p in panels(board.model) if p["title"] == "Every datadisk"]
    listed = parts.store.rows(expand_influx(every["targets"][0]["query"], view))
    assert {r["rse"] for r in listed} == set(parts.daod.bytes)
    assert sum(r["daod_bytes"] for r in listed) == pytest.approx(sum(parts.daod.bytes.values()))
