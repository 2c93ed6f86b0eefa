"""`qmonit dashboards push`: the built dashboards into a Grafana folder over its HTTP API.

POST /api/dashboards/db with the folder's uid; the folder is created when missing. Each
dashboard is the JSON `dashboards build` writes (schemaVersion 42, qmonit/grafana/schema.py),
checked before it is sent: one that is not is reported and not sent.
Grafana's refusals become messages that say what to change: 401 the token, 403 its
role, 404 the URL, 412 a dashboard changed in Grafana since the last push. The token
is sent as a Bearer header and never appears in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from qmonit.core.settings import GrafanaSection
from qmonit.grafana.build import Built
from qmonit.grafana.schema import SCHEMA_VERSION, problems
from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB, describe_failure, make_session, safe_url


class GrafanaError(Exception):
    """Grafana refused or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status  # Grafana's HTTP status; 0 when it did not answer


@dataclass
class PushReport:
    pushed: list[tuple[str, str, int]] = field(default_factory=list)  # title, url, version
    failed: list[tuple[str, str]] = field(default_factory=list)  # title, reason
    folder: str = ""

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _explain(response: requests.Response, what: str, folder: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = str(body.get("message", "")).strip() if isinstance(body, dict) else ""
    status = str(body.get("status", "")).strip() if isinstance(body, dict) else ""
    code = response.status_code
    said = f" (Grafana: {message})" if message else ""
    if code == 401:
        return f"{what}: 401 unauthorised{said}: the token was refused; check [grafana] token " \
               f"(or QMONIT_GRAFANA_TOKEN) and that it has not expired"
    if code == 403:
        return f"{what}: 403 forbidden{said}: the token may not write to folder {folder}; it " \
               f"needs the Editor role on it"
    if code == 404:
        return f"{what}: 404 not found at {safe_url(response.url)}{said}: check [grafana] url " \
               f"(a Grafana served under a sub-path needs it in the URL)"
    if code == 412:
        kind = {"version-mismatch": "was changed in Grafana since it was last pushed",
                "name-exists": "has the title of another dashboard in the folder",
                "plugin-dashboard": "belongs to a plugin"}.get(status, "conflicts")
        return f"{what}: 412 precondition failed ({status or 'no status'}): the dashboard " \
               f"{kind}; set [grafana] overwrite = true to replace it, or copy the change " \
               f"into its .dashboard.py file"
    return f"{what}: HTTP {code}{said}"


class GrafanaClient:
    def __init__(self, settings: GrafanaSection,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB):
        if not settings.url:
            raise GrafanaError("[grafana] url is empty: say where Grafana is")
        self.url = settings.url.rstrip("/")
        self.timeout = settings.timeout_s
        # Bearer token, TLS settings, User-Agent
        self.session = make_session(settings.client(max_response_mb))

    def request(self, method: str, path: str, what: str, folder: str,
                body: dict[str, Any] | None = None) -> requests.Response:
        try:
            response = self.session.request(method, f"{self.url}{path}", json=body,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise GrafanaError(f"{what}: Grafana at {safe_url(self.url)} "
                               f"{describe_failure(exc, self.timeout)}") from None
        return response

    def ensure_folder(self, uid: str, title: str) -> str:
        """The folder's uid; created when Grafana does not have it."""
        what = f"folder {title}"
        response = self.request("GET", f"/api/folders/{uid}", what, title)
        if response.status_code == 200:
            return uid
        if response.status_code != 404:
            raise GrafanaError(_explain(response, what, title), response.status_code)
        created = self.request("POST", "/api/folders", what, title, {"uid": uid, "title": title})
        if created.status_code not in (200, 201):
            raise GrafanaError(_explain(created, f"creating {what}", title), created.status_code)
        return uid

    def push(self, board: Built, folder_uid: str, folder: str, overwrite: bool
             ) -> tuple[str, int]:
        found = problems(board.model)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise GrafanaError(f"dashboard {board.title}: not sent, not a Grafana dashboard of "
                               f"schemaVersion {SCHEMA_VERSION}: {found[0]}{more}")
        # No id: Grafana finds the dashboard by its uid (the same as "id": null).
        response = self.request("POST", "/api/dashboards/db", f"dashboard {board.title}", folder,
                                {"dashboard": board.model, "folderUid": folder_uid,
                                 "overwrite": overwrite,
                                 "message": f"qmonit dashboards push ({board.source.name})"})
        if response.status_code != 200:
            raise GrafanaError(_explain(response, f"dashboard {board.title}", folder),
                               response.status_code)
        answer = response.json()
        return str(answer.get("url", "")), int(answer.get("version", 0))


def push_all(settings: GrafanaSection, built: list[Built],
             max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> PushReport:
    """Push every dashboard; a dashboard that fails is reported and the others still go."""
    report = PushReport(folder=settings.folder)
    client = GrafanaClient(settings, max_response_mb)
    folder_uid = client.ensure_folder(settings.folder_uid, settings.folder)
    for board in built:
        try:
            url, version = client.push(board, folder_uid, settings.folder,
                                       settings.overwrite)
        except GrafanaError as exc:
            report.failed.append((board.title, str(exc)))
            if exc.status in (401, 403):
                break  # the same token will be refused for the rest as well
            continue
        report.pushed.append((board.title, url, version))
    return report
