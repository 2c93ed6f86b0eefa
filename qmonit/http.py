"""HTTP sessions for PanDA, CRIC and InfluxDB: TLS on by default, auth, safe URLs for logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from qmonit import __version__

USER_AGENT = f"qmonit/{__version__}"


class Session(requests.Session):
    """A requests session whose own `verify` wins.

    Plain requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment
    override a session's CA bundle; passing verify on each request stops that, so
    the configured ca_bundle (or verify_tls = false) is what is used.
    """

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def make_session(settings: Mapping[str, Any]) -> requests.Session:
    """A session from a config section with verify_tls, ca_bundle, token, cert, key."""
    session = Session()
    session.headers["User-Agent"] = USER_AGENT
    if not settings.get("verify_tls", True):
        session.verify = False
    elif settings.get("ca_bundle"):
        session.verify = settings["ca_bundle"]
    if settings.get("cert"):
        key = settings.get("key")
        session.cert = (settings["cert"], key) if key else settings["cert"]
    if settings.get("token"):
        session.headers["Authorization"] = f"Bearer {settings['token']}"
    return session


def safe_url(url: str) -> str:
    """The URL without user, password and query string: fit for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe_failure(exc: requests.RequestException) -> str:
    """A short reason for a failed request that never repeats the URL's credentials."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (set ca_bundle, or check the server certificate)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (server down or unreachable)"
    return type(exc).__name__
