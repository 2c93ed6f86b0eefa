"""DAOD files and bytes per RSE from the Rucio accounting index (Elasticsearch/OpenSearch).

One `_msearch` request with one search: the documents of the time window whose
datatype is DAOD, summed per RSE in a terms aggregation ("4") with two sums, files
("1") and bytes ("3") — the names MONIT's Grafana panel gives them, so QMonit's
recorded answer parses as it is. `[datadisk] url` is the search endpoint: the
cluster itself (https://es.example:9203) or Grafana's datasource proxy
(https://monit-grafana.cern.ch/api/datasources/proxy/ID); `_msearch` is appended.

    POST {url}/_msearch   (application/x-ndjson: a header line, a body line)
    -> {"responses": [{"status": 200, "timed_out": false,
                       "aggregations": {"4": {"buckets": [
                           {"key": "CERN-PROD_DATADISK", "1": {"value": files},
                            "3": {"value": bytes}}, ...]}}}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests

from qmonit.core.bounds import MAX_BYTES, MAX_FILES, field_problem
from qmonit.core.sample import epoch_seconds, shown
from qmonit.core.settings import DatadiskSection
from qmonit.sources.base import SourceError, json_answer
from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB, make_session, safe_url
from qmonit.support.redact import brief

BY_RSE, FILES, BYTES = "4", "1", "3"


@dataclass(frozen=True)
class RseVolume:
    rse: str
    files: float
    bytes: float


def msearch_body(settings: DatadiskSection, until: datetime) -> str:
    """The two NDJSON lines of the search: DAOD of the window before `until`, per RSE."""
    since = until - timedelta(hours=settings.window_h)
    header = {"index": settings.index, "ignore_unavailable": True}
    query = {
        "size": 0,
        "query": {"bool": {"filter": [
            {"range": {settings.time_field: {"gte": epoch_seconds(since) * 1000,
                                                "lt": epoch_seconds(until) * 1000,
                                                "format": "epoch_millis"}}},
            {"term": {settings.datatype_field: settings.datatype}},
        ]}},
        "aggs": {BY_RSE: {
            "terms": {"field": settings.rse_field, "size": 10000, "order": {"_key": "asc"}},
            "aggs": {FILES: {"sum": {"field": settings.files_field}},
                     BYTES: {"sum": {"field": settings.bytes_field}}},
        }},
    }
    return json.dumps(header) + "\n" + json.dumps(query) + "\n"


def parse_msearch(data: Any, origin: str) -> tuple[list[RseVolume], list[str]]:
    """The per-RSE volumes; the whole answer refused (SourceError) when it cannot be
    trusted: an error inside the response, a search that timed out (partial sums), shards
    that failed, no buckets at all. A bucket without a number is reported and skipped."""
    if not isinstance(data, dict) or not isinstance(data.get("responses"), list) \
            or not data["responses"]:
        raise SourceError(f"{origin}: expected {{\"responses\": [...]}} from _msearch")
    answer = data["responses"][0]
    if not isinstance(answer, dict):
        raise SourceError(f"{origin}: responses[0] is not an object")
    if answer.get("error"):
        error = answer["error"]
        reason = error.get("reason") or error.get("type") if isinstance(error, dict) else error
        raise SourceError(f"{origin}: the search failed (status {answer.get('status', '?')}): "
                          f"{reason}")
    if answer.get("timed_out"):
        raise SourceError(f"{origin}: the search timed out on the server: its sums are partial")
    shards = answer.get("_shards") or {}
    if isinstance(shards, dict) and shards.get("failed"):
        raise SourceError(f"{origin}: {shards['failed']} of {shards.get('total', '?')} shards "
                          "failed: the sums would be partial")
    buckets = ((answer.get("aggregations") or {}).get(BY_RSE) or {}).get("buckets")
    if not buckets:
        raise SourceError(f"{origin}: no DAOD found per RSE (no buckets): the index, the "
                          "window or the datatype filter matches nothing")
    volumes, problems = [], []
    for number, bucket in enumerate(buckets):
        try:
            rse = str(bucket["key"])
            files, size = float(bucket[FILES]["value"]), float(bucket[BYTES]["value"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            problems.append(f"{origin}: bucket {number}: no files/bytes ({exc!r}); skipped")
            continue
        if not rse:
            problems.append(f"{origin}: bucket {number} ({rse!r}): not a volume; skipped")
            continue
        problem = field_problem("files", files, MAX_FILES) or \
            field_problem("bytes", size, MAX_BYTES)
        if problem is not None:
            problems.append(f"{origin}: bucket {number} ({shown(rse)}): {problem}; skipped")
            continue
        volumes.append(RseVolume(rse, files, size))
    return volumes, problems


class VolumeSource(Protocol):
    """What the datadisk job reads DAOD volumes from (the search endpoint or simulated)."""

    def volumes(self, until: datetime) -> tuple[list[RseVolume], list[str]]:
        """The DAOD files and bytes per datadisk up to `until`, and the buckets skipped."""


class DaodAccounting:
    """The `[datadisk]` search endpoint."""

    name = "daod"

    def __init__(self, settings: DatadiskSection, session: requests.Session | None = None,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB):
        self.settings = settings
        self.url = settings.url.rstrip("/") + "/_msearch"
        self.timeout = settings.timeout_s
        self.session = session or make_session(settings.client(max_response_mb))

    @property
    def origin(self) -> str:
        return f"DAOD accounting {safe_url(self.url)}"

    def fetch(self, until: datetime) -> Any:
        return json_answer(
            lambda: self.session.post(self.url, data=msearch_body(self.settings, until).encode(),
                                      headers={"Content-Type": "application/x-ndjson"},
                                      timeout=self.timeout),
            self.origin, self.timeout, _reason)

    def volumes(self, until: datetime) -> tuple[list[RseVolume], list[str]]:
        return parse_msearch(self.fetch(until), self.origin)


def _reason(response: requests.Response) -> str:
    """Elasticsearch's own reason of a refused request, else the HTTP reason."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        return brief(str(error.get("reason") or error.get("type")), 300)
    if isinstance(error, str):
        return brief(error, 300)
    return response.reason or "no reason given"
