"""Harvester worker statistics from the PanDA server -> `workers`.

GET {panda}/api/v1/harvester/get_worker_statistics
  -> {panda_queue: {harvester_id: {job_type: {resource_type: {worker_status: n}}}}}
(only rows updated in the last 4 hours), or the same wrapped as {"success", "message",
"data"}. Each point carries the native worker_status and the mapped state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from qmonit.core.bounds import MAX_JOBS, number_problem
from qmonit.core.config import Config
from qmonit.core.sample import make_sample, or_unknown, shown_path
from qmonit.core.settings import PandaSection
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import Collection, Source, SourceError
from qmonit.sources.kinds import check_answer
from qmonit.sources.panda import PandaJobStats, unwrap_v1
from qmonit.support.clock import Clock
from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB

PATH = "/api/v1/harvester/get_worker_statistics"
LEVELS = ("harvester instances", "job types", "resource types", "worker statuses")


def parse_worker_stats(data: Any, rules: RuleSet, slot: datetime, origin: str) -> Collection:
    """The inner statistics dict -> `workers` samples; a malformed record is reported and
    skipped. Empty, not a dict, or of another kind (PanDA's job statistics at this URL):
    SourceError."""
    if not isinstance(data, dict):
        raise SourceError(f"{origin}: expected a JSON object of queues, got {type(data).__name__}")
    if not data:
        raise SourceError(f"{origin}: no worker statistics at all (the server failed or no "
                          f"Harvester reported in 4 hours); nothing written")
    check_answer("harvester", data, origin)
    out = Collection()

    def walk(node: Any, path: tuple[str, ...]) -> None:
        depth = len(path)
        if depth == 5:
            problem = number_problem(node, MAX_JOBS)
            if problem is not None:
                out.problems.append(f"{origin}: {shown_path(*path)}: count {problem}; skipped")
                return
            count = float(node)
            queue, harvester, job_type, resource_type, status = path
            tags = {"factory": or_unknown(harvester), "factory_type": "harvester",
                    "panda_queue": queue, "job_type": or_unknown(job_type),
                    "resource_type": or_unknown(resource_type), "worker_status": status,
                    "state": rules.map(status).state}
            try:
                out.samples.append(make_sample("workers", tags, {"workers": count}, slot))
            except ValueError as exc:
                out.problems.append(f"{origin}: {shown_path(*path)}: {exc}; skipped")
            return
        if not isinstance(node, dict):
            out.problems.append(f"{origin}: {shown_path(*path)}: expected an object of "
                                f"{LEVELS[depth - 1]}, got {type(node).__name__}; skipped")
            return
        for key, child in node.items():
            walk(child, (*path, str(key)))

    for queue, by_harvester in data.items():
        walk(by_harvester, (str(queue),))
    return out


class HarvesterWorkers(PandaJobStats):
    """The worker statistics of every Harvester instance, through the PanDA server."""

    name = "harvester"

    def __init__(self, settings: PandaSection, rules: RuleSet,
                 session: requests.Session | None = None,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB):
        super().__init__(settings, session, max_response_mb)
        self.url = settings.url.rstrip("/") + PATH
        self.rules = rules

    def fetch(self) -> Any:
        """The worker statistics (the v1 envelope, when there is one, removed)."""
        payload = self.get_json({})
        if isinstance(payload, dict) and "success" in payload:
            payload = unwrap_v1(payload, self.origin)
        return payload

    def collect(self, slot: datetime) -> Collection:
        return parse_worker_stats(self.fetch(), self.rules, slot, self.origin)


def from_config(cfg: Config, rules: Mapping[str, RuleSet], clock: Clock) -> list[Source]:
    """The registry's builder: Harvester's worker statistics, through PanDA's API."""
    return [HarvesterWorkers(cfg.settings.panda, rules["harvester"],
                             max_response_mb=cfg.settings.http.max_response_mb)]
