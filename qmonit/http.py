"""HTTP sessions for PanDA, CRIC and InfluxDB: TLS on by default, auth, one deadline per
exchange, safe URLs for logs.

requests' `timeout` bounds each socket operation, not the exchange: a server that sends
its answer one byte every few seconds keeps a request alive for ever. Every request made
through a Session here also has a deadline for the whole exchange (connect, send, the
answer's headers and body), by default its `timeout`: when it passes, a watchdog shuts
the exchange's socket down and the request raises ExchangeTimeout.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from qmonit import __version__

USER_AGENT = f"qmonit/{__version__}"


class ExchangeTimeout(requests.Timeout):
    """The whole exchange took longer than its deadline (a server that hangs or drips)."""


_exchange = threading.local()  # the connections the running exchange of this thread uses


class _Watched:
    """A connection pool that tells the running exchange which connection it hands out."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        used = getattr(_exchange, "connections", None)
        if used is not None:
            used.append(conn)
        return conn


class _WatchedPool(_Watched, HTTPConnectionPool):
    pass


class _WatchedTLSPool(_Watched, HTTPSConnectionPool):
    pass


_WATCHED = {"http": _WatchedPool, "https": _WatchedTLSPool}


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)  # through https_proxy too
        manager.pool_classes_by_scheme = _WATCHED
        return manager


def _cut(connections: list[Any]) -> None:
    for conn in list(connections):
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Session(requests.Session):
    """A requests session whose own `verify` wins, with a deadline per exchange.

    Plain requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment
    override a session's CA bundle; passing verify on each request stops that, so
    the configured ca_bundle (or verify_tls = false) is what is used.

    `deadline_s=` bounds the whole exchange (default: `timeout`, when it is one number);
    a streamed body (stream=True) is read after the deadline's watch and is not bounded.
    """

    def __init__(self) -> None:
        super().__init__()
        for prefix in ("http://", "https://"):
            self.mount(prefix, _Adapter())

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        deadline = kwargs.pop("deadline_s", None)
        if deadline is None and isinstance(kwargs.get("timeout"), int | float):
            deadline = kwargs["timeout"]
        if not deadline:
            return super().request(method, url, *args, **kwargs)
        connections: list[Any] = []
        outer = getattr(_exchange, "connections", None)
        _exchange.connections = connections
        passed = threading.Event()

        def expire() -> None:
            passed.set()
            _cut(connections)

        watchdog = threading.Timer(deadline, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            if passed.is_set():
                raise ExchangeTimeout(f"no complete answer within {deadline:.3g} s") from None
            raise
        finally:
            watchdog.cancel()
            _exchange.connections = outer
        if passed.is_set() and not kwargs.get("stream"):  # cut while the body was read
            raise ExchangeTimeout(f"no complete answer within {deadline:.3g} s")
        return response


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


def describe_failure(exc: requests.RequestException, timeout: Any = None) -> str:
    """A short reason for a failed request that never repeats the URL's credentials."""
    within = f" within {timeout:g} s" if isinstance(timeout, int | float) else ""
    if isinstance(exc, ExchangeTimeout):
        return f"timed out: {exc} (raise timeout_s if the server is only slow)"
    if isinstance(exc, requests.ConnectTimeout):
        return f"timed out: no connection{within} (server down or unreachable)"
    if isinstance(exc, requests.Timeout) or "timed out" in str(exc):
        # requests reports a read timeout in the body as a ConnectionError
        return (f"timed out: no complete answer{within} (raise timeout_s if the server is "
                "only slow)")
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed (set ca_bundle, or check the server certificate)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (server down or unreachable)"
    return type(exc).__name__
