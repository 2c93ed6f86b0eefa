"""Grafana provisioning files: the two datasources, the dashboards folder, two alert rules.

Grafana reads with its own accounts ([grafana] sql_reader_user, influxdb_reader_user), never
with qmonit's writing ones: any viewer can send a statement of their own through Grafana's
query API, so the datasource's account is all that stands between a viewer and the data.
Secrets are never written: the files name environment variables
(QMONIT_GRAFANA_INFLUXDB_READER_PASSWORD, QMONIT_GRAFANA_SQL_READER_PASSWORD), which Grafana
expands when it reads them, so the same variables serve `qmonit init` and Grafana.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

from qmonit.core.config import Config


class ReaderError(ValueError):
    """Grafana's reading account is missing or is qmonit's writing account."""

STALE_MINUTES = 30
# The alert rules' queries (MySQL); the tests run them against a filled database.
OPEN_FLAGS_SQL = ("SELECT COUNT(DISTINCT panda_queue) AS open_critical_incidents FROM alerts "
                  "WHERE closed_at IS NULL AND severity = 'critical'")
STALE_SQL = (f"SELECT COUNT(*) AS stale_sources FROM source_status WHERE job = 'collect' AND "
             f"(last_ok_slot IS NULL OR TIMESTAMPDIFF(MINUTE, last_ok_slot, UTC_TIMESTAMP()) > "
             f"{STALE_MINUTES})")


def datasources(cfg: Config) -> tuple[dict[str, Any], list[str]]:
    """The datasource provisioning document and what the operator must still fill in."""
    problems = []
    for reader in (sql_reader, influx_reader):
        try:
            reader(cfg)
        except ReaderError as exc:
            problems.append(str(exc))
    if problems:
        raise ReaderError("; ".join(problems))
    notes = []
    influx = cfg.settings.influxdb
    influx_url = influx.url or "http://localhost:8086"
    if not influx.url:
        notes.append("[influxdb] url is empty (embedded store): the InfluxDB datasource points "
                     "at http://localhost:8086; Grafana needs a real InfluxDB")
    influx_source: dict[str, Any] = {
        "name": "qmonit InfluxDB", "uid": cfg.settings.grafana.influxdb_datasource,
        "type": "influxdb", "access": "proxy", "url": influx_url,
        "jsonData": {"dbName": influx.database, "httpMode": "GET",
                     "tlsSkipVerify": not influx.verify_tls},
    }
    # never [influxdb] token: it is the writer's (2.x: a v1 auth of a read-only token)
    influx_source["user"] = influx_reader(cfg)
    influx_source["secureJsonData"] = {"password": "${QMONIT_GRAFANA_INFLUXDB_READER_PASSWORD}"}

    sql = make_url(cfg.sql_url)
    if sql.get_backend_name() != "mysql":
        notes.append(f"[sql] url is {sql.get_backend_name()}: Grafana's MySQL datasource needs "
                     f"the state store in MySQL or MariaDB; it points at localhost:3306/qmonit")
        host, database, user = "localhost:3306", "qmonit", "qmonit"
    else:
        host = f"{sql.host or 'localhost'}:{sql.port or 3306}"
        database = sql.database or "qmonit"
    user = sql_reader(cfg)
    sql_source: dict[str, Any] = {
        "name": "qmonit MySQL", "uid": cfg.settings.grafana.sql_datasource, "type": "mysql",
        "url": host, "user": user, "jsonData": {"database": database, "timezone": "UTC",
                                               "maxOpenConns": 10},
        "secureJsonData": {"password": "${QMONIT_GRAFANA_SQL_READER_PASSWORD}"},
    }
    return {"apiVersion": 1, "datasources": [influx_source, sql_source]}, notes


def sql_reader(cfg: Config) -> str:
    """[grafana] sql_reader_user, refused when empty or the [sql] url user."""
    reader, writer = cfg.settings.grafana.sql_reader_user, make_url(cfg.sql_url).username
    if not reader:
        raise ReaderError("[grafana] sql_reader_user is empty: Grafana needs its own SQL account "
                          "with SELECT only (`qmonit init` creates it), never the [sql] url user")
    if reader == writer:
        raise ReaderError(f"[grafana] sql_reader_user is {reader!r}, the [sql] url user that "
                          f"writes: give Grafana its own account with SELECT only")
    return reader


def influx_reader(cfg: Config) -> str:
    """[grafana] influxdb_reader_user, refused when empty or the [influxdb] username."""
    reader, writer = cfg.settings.grafana.influxdb_reader_user, cfg.settings.influxdb.username
    if not reader:
        raise ReaderError("[grafana] influxdb_reader_user is empty: Grafana needs its own "
                          "InfluxDB account with READ only (`qmonit init` creates it), never "
                          "the [influxdb] username")
    if reader == writer:
        raise ReaderError(f"[grafana] influxdb_reader_user is {reader!r}, the [influxdb] "
                          f"username that writes: give Grafana its own account with READ only")
    return reader


def dashboard_provider(cfg: Config, json_dir: Path) -> dict[str, Any]:
    """A file provider: Grafana loads the built JSON from json_dir into the folder (the build
    folder, or `--grafana-path`: where Grafana's host has the JSON copied)."""
    return {"apiVersion": 1, "providers": [{
        "name": "qmonit", "orgId": 1, "folder": cfg.settings.grafana.folder,
        "folderUid": cfg.settings.grafana.folder_uid, "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": str(json_dir.resolve())}}]}


# Grafana expands $NAME in provisioning files from its environment; $$ is a literal $.
def _rule(uid: str, title: str, sql: str, datasource: str, no_data: str, summary: str,
          severity: str) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "condition": "C", "for": "0s",
        "noDataState": no_data, "execErrState": "Error",
        "annotations": {"summary": summary},
        "labels": {"team": "shift", "severity": severity, "service": "qmonit"},
        "data": [
            {"refId": "A", "datasourceUid": datasource,
             "relativeTimeRange": {"from": 600, "to": 0},
             "model": {"refId": "A", "format": "table", "rawQuery": True, "rawSql": sql}},
            {"refId": "B", "datasourceUid": "__expr__",
             "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"}},
            {"refId": "C", "datasourceUid": "__expr__",
             "model": {"refId": "C", "type": "threshold", "expression": "B",
                       "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}},
        ],
    }


def alert_rules(cfg: Config) -> dict[str, Any]:
    datasource = cfg.settings.grafana.sql_datasource
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": "qmonit", "folder": cfg.settings.grafana.folder,
        "interval": "5m",
        "rules": [
            _rule("qmonit-open-flags", "Open critical suspicious-site incidents", OPEN_FLAGS_SQL,
                  datasource, "OK", "{{ $$values.B.Value }} critical suspicious-site incident(s) "
                  "open: "
                  "see the Suspicious Sites dashboard", "critical"),
            _rule("qmonit-stale-data", "Stale monitoring data", STALE_SQL, datasource,
                  "Alerting", f"{{{{ $$values.B.Value }}}} source(s) with no successful write for "
                  f"{STALE_MINUTES} minutes: see the Pipeline Health dashboard", "critical"),
        ],
    }]}


def documents(cfg: Config, json_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Relative path -> YAML text of every provisioning file, and the notes for the operator."""
    sources, notes = datasources(cfg)
    texts = {
        "datasources/qmonit.yaml": sources,
        "dashboards/qmonit.yaml": dashboard_provider(cfg, json_dir),
        "alerting/qmonit.yaml": alert_rules(cfg),
    }
    header = "# Generated by `qmonit dashboards build`; edit the configuration, not this file.\n"
    return {path: header + yaml.safe_dump(doc, sort_keys=False) for path, doc in texts.items()}, \
        notes
