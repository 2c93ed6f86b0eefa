"""`qmonit dashboards build`: every dashboards/*.dashboard.py rendered to Grafana JSON.

Each file defines a module-level `dashboard` (grafanalib). The panels name the
datasources by the uids in qmonit.grafana.helpers; build swaps in the uids of
[grafana] influxdb_datasource and sql_datasource, so the JSON matches the
provisioned datasources.
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmonit.core.config import Config
from qmonit.grafana.helpers import INFLUX, MYSQL
from qmonit.grafana.schema import SchemaError, modernise
from qmonit.support.files import READABLE_FILE, write_text_atomic
from qmonit.support.resources import ResourceMissing, resource

SUFFIX = ".dashboard.py"


class DashboardError(Exception):
    """A dashboard file that does not build; the message names the file."""


@dataclass(frozen=True)
class Built:
    name: str  # the file's name without .dashboard.py
    source: Path
    model: dict[str, Any]  # the dashboard JSON

    @property
    def uid(self) -> str:
        return self.model["uid"]

    @property
    def title(self) -> str:
        return self.model["title"]


def dashboards_dir(cfg: Config) -> Path:
    """[grafana] dashboards_dir, else the dashboards shipped with qmonit (in the wheel, or
    the checkout's dashboards/)."""
    configured = cfg.settings.grafana.dashboards_dir
    try:
        directory = Path(configured) if configured else resource("dashboards")
    except ResourceMissing as exc:
        raise DashboardError(f"{exc} ([grafana] dashboards_dir)") from None
    if not directory.is_dir():
        raise DashboardError(f"{directory}: no such directory ([grafana] dashboards_dir)")
    return directory


def _json_data(value: Any) -> Any:
    """grafanalib's objects nest: each becomes its to_json_data() (what grafanalib's own
    encoder does, without its private module)."""
    if hasattr(value, "to_json_data"):
        return value.to_json_data()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _swap_datasources(node: Any, uids: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"type", "uid"} and node["uid"] in uids:
            return {"type": node["type"], "uid": uids[node["uid"]]}
        return {key: _swap_datasources(value, uids) for key, value in node.items()}
    if isinstance(node, list):
        return [_swap_datasources(value, uids) for value in node]
    return node


def build_one(path: Path, uids: dict[str, str]) -> Built:
    name = path.name[: -len(SUFFIX)]
    try:
        board = runpy.run_path(str(path)).get("dashboard")
        model = None if board is None else json.loads(json.dumps(board.to_json_data(),
                                                                 default=_json_data))
    except Exception as exc:  # a dashboard file is code: any error is reported with its file
        raise DashboardError(f"{path}: {type(exc).__name__}: {exc}") from exc
    if model is None:
        raise DashboardError(f"{path}: defines no `dashboard` (a grafanalib Dashboard)")
    for key in ("uid", "title"):
        if not model.get(key):
            raise DashboardError(f"{path}: the dashboard has no {key}")
    try:  # the JSON of Grafana 12-13 (schemaVersion 42), not grafanalib's of Grafana 4
        return Built(name, path, modernise(_swap_datasources(model, uids)))
    except SchemaError as exc:
        raise DashboardError(f"{path}: {exc}") from None


def build_all(cfg: Config, directory: Path | None = None) -> list[Built]:
    """Every dashboard of the directory, in file-name order; the first broken file stops it."""
    directory = directory or dashboards_dir(cfg)
    uids = {INFLUX["uid"]: cfg.settings.grafana.influxdb_datasource,
            MYSQL["uid"]: cfg.settings.grafana.sql_datasource}
    paths = sorted(directory.glob(f"*{SUFFIX}"))
    if not paths:
        raise DashboardError(f"{directory}: no *{SUFFIX} files")
    built = [build_one(path, uids) for path in paths]
    seen: dict[str, Path] = {}
    for board in built:
        if board.uid in seen:
            raise DashboardError(f"{board.source}: uid {board.uid} already used by "
                                 f"{seen[board.uid]}")
        seen[board.uid] = board.source
    return built


def write_json(built: list[Built], out_dir: Path) -> list[Path]:
    paths = []
    for board in built:
        path = out_dir / f"{board.name}.json"
        write_text_atomic(path, json.dumps(board.model, indent=2, sort_keys=True) + "\n",
                          READABLE_FILE)  # for Grafana's account; no secret in it
        paths.append(path)
    return paths
