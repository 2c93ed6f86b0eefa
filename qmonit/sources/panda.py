"""PanDA job statistics per queue, prod_source, resource type and job status.

v1:     GET {panda}/api/v1/statistics/job_stats_by_site_share_and_resource_type?time_window=MIN
        -> {"success": bool, "message": str,
            "data": {queue: {prod_source: {resource: {status: n}}}}}
legacy: GET {panda}/server/panda/get_job_statistics_per_site_label_resource?time_window=MIN
        -> the bare inner dict.
An empty dict means the server failed: it is an error, never a grid with no jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from qmonit.core.bounds import MAX_JOBS, number_problem
from qmonit.core.config import Config
from qmonit.core.model import PANDA_JOB_STATUSES
from qmonit.core.sample import make_sample, or_unknown, shown_path
from qmonit.core.settings import PandaSection
from qmonit.core.states.rules import RuleSet
from qmonit.sources.base import Collection, Source, SourceError, json_answer
from qmonit.sources.kinds import check_answer
from qmonit.support.clock import Clock
from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB, body_summary, make_session, safe_url
from qmonit.support.redact import brief

log = logging.getLogger(__name__)

PATHS = {
    "v1": "/api/v1/statistics/job_stats_by_site_share_and_resource_type",
    "legacy": "/server/panda/get_job_statistics_per_site_label_resource",
}


def _count(value: Any) -> float | None:
    """A job or worker count, or None when number_problem finds it unusable."""
    return None if number_problem(value, MAX_JOBS) is not None else float(value)


def parse_job_stats(data: Any, slot: datetime, origin: str) -> Collection:
    """The inner statistics dict -> `jobs` samples (tags from PanDA only, field jobs).

    A malformed record is reported in `problems` with its path and skipped; the rest
    goes through. A payload that is empty, not a dict, or of another kind (Harvester's
    worker statistics, a CRIC or Slurm answer at the PanDA URL) raises SourceError.
    """
    if not isinstance(data, dict):
        raise SourceError(f"{origin}: expected a JSON object of queues, got {type(data).__name__}")
    if not data:
        raise SourceError(f"{origin}: empty statistics (the server failed); nothing written")
    check_answer("panda", data, origin)
    out = Collection()
    unknown_statuses: set[str] = set()
    for queue, by_label in data.items():
        if not isinstance(by_label, dict):
            out.problems.append(f"{origin}: {shown_path(queue)}: expected an object of "
                                f"prod_source labels, got {type(by_label).__name__}; skipped")
            continue
        for label, by_resource in by_label.items():
            if not isinstance(by_resource, dict):
                out.problems.append(f"{origin}: {shown_path(queue, label)}: expected an object of "
                                    f"resource types, got {type(by_resource).__name__}; "
                                    "skipped")
                continue
            for resource, by_status in by_resource.items():
                if not isinstance(by_status, dict):
                    out.problems.append(f"{origin}: {shown_path(queue, label, resource)}: "
                                        f"expected an object of job statuses, got "
                                        f"{type(by_status).__name__}; skipped")
                    continue
                for status, raw in by_status.items():
                    problem = number_problem(raw, MAX_JOBS)
                    if problem is not None:
                        out.problems.append(f"{origin}: "
                                            f"{shown_path(queue, label, resource, status)}: "
                                            f"count {problem}; skipped")
                        continue
                    count = float(raw)
                    if status not in PANDA_JOB_STATUSES:
                        unknown_statuses.add(status)
                    tags = {"panda_queue": queue, "prod_source": or_unknown(label),
                            "resource": or_unknown(resource), "job_status": status}
                    try:
                        out.samples.append(make_sample("jobs", tags, {"jobs": count}, slot))
                    except ValueError as exc:
                        out.problems.append(f"{origin}: "
                                            f"{shown_path(queue, label, resource, status)}: "
                                            f"{exc}; skipped")
    if unknown_statuses:
        log.warning("%s: job statuses not known to qmonit kept as they are: %s", origin,
                    ", ".join(sorted(unknown_statuses)))
    return out


def unwrap_v1(payload: Any, origin: str) -> Any:
    if not isinstance(payload, dict) or "success" not in payload:
        raise SourceError(f"{origin}: not a PanDA API v1 response (no 'success' key)")
    if payload["success"] is not True:
        message = brief(str(payload.get("message") or "no message"), 300)
        raise SourceError(f"{origin}: the server reported failure: {message}")
    return payload.get("data")


class PandaJobStats:
    name = "panda"

    def __init__(self, settings: PandaSection, session: requests.Session | None = None,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB):
        self.api = settings.api
        self.url = settings.url.rstrip("/") + PATHS[self.api]
        self.time_window = settings.time_window
        self.timeout = settings.timeout_s
        self.session = session or make_session(settings.client(max_response_mb))

    @property
    def origin(self) -> str:
        return f"PanDA {safe_url(self.url)}"

    def get_json(self, params: dict[str, Any]) -> Any:
        """GET the URL with `params`; the decoded JSON, or a SourceError saying what failed."""
        return json_answer(
            lambda: self.session.get(self.url, params=params, timeout=self.timeout),
            self.origin, self.timeout, lambda response: body_summary(response.text))

    def fetch(self) -> Any:
        """The job statistics (the v1 envelope removed)."""
        payload = self.get_json({"time_window": self.time_window})
        return unwrap_v1(payload, self.origin) if self.api == "v1" else payload

    def collect(self, slot: datetime) -> Collection:
        return parse_job_stats(self.fetch(), slot, self.origin)


def from_config(cfg: Config, rules: Mapping[str, RuleSet], clock: Clock) -> list[Source]:
    """The registry's builder: PanDA's job statistics."""
    return [PandaJobStats(cfg.settings.panda,
                          max_response_mb=cfg.settings.http.max_response_mb)]
