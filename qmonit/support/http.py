"""HTTP sessions for PanDA, CRIC and InfluxDB: TLS on by default, auth, one deadline per
exchange, a cap on every answer's size, safe URLs for logs.

requests' `timeout` bounds each socket operation, not the exchange: a server that sends
its answer one byte every few seconds keeps a request alive for ever. Every request made
through a Session here also has a deadline for the whole exchange (connect, send, the
answer's headers and body), by default its `timeout`: when it passes, a watchdog shuts
the exchange's socket down and the request raises ExchangeTimeout.

Every answer is also read with a cap (`[http] max_response_mb`) on the bytes received and
on the bytes they decode to: the body is read in chunks, gzip/deflate are inflated here
with a bound on each step's output, and past the cap the exchange stops with
ResponseTooLarge. A gzip bomb (256 MB of zeros in 260 KB) costs at most the cap in memory.
"""

from __future__ import annotations

import re
import socket
import threading
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from qmonit import __version__
from qmonit.support.redact import brief

USER_AGENT = f"qmonit/{__version__}"
DEFAULT_MAX_RESPONSE_MB = 128.0  # the [http] max_response_mb default (see config.py)
CHUNK = 64 * 1024  # bytes received per read; inflated in pieces of 16 times that (1 MiB)
ENCODINGS = "gzip, deflate"  # what we inflate ourselves; no br/zstd even when installed


class ExchangeTimeout(requests.Timeout):
    """The whole exchange took longer than its deadline (a server that hangs or drips)."""


class ResponseTooLarge(requests.RequestException):
    """The answer is larger than the cap, received or decoded; it was not read further."""

    def __init__(self, cap: int, received: int, decoded: int, declared: int | None = None):
        self.cap, self.received, self.decoded, self.declared = cap, received, decoded, declared
        where = (f"Content-Length {declared}; not read" if declared is not None else
                 f"stopped after {received} bytes received, {decoded} decoded")
        super().__init__(f"answer larger than {cap / 2**20:g} MB ([http] max_response_mb): "
                         f"{where}")


class BadEncoding(requests.RequestException):
    """The answer's Content-Encoding is not one qmonit asked for, or does not decode."""


class _Inflater:
    """gzip or zlib (HTTP's deflate, raw deflate too) inflated with a bound on each output."""

    def __init__(self, encoding: str):
        self.wbits = zlib.MAX_WBITS | 32  # a gzip or zlib header, detected
        self.encoding = encoding
        self.inflate = zlib.decompressobj(self.wbits)
        self.started = False

    def feed(self, data: bytes, room: int) -> list[bytes]:
        """Inflate `data`, at most `room` bytes out (the rest of the input stays unread);
        the pieces as inflated (joined only once, at the end of the answer)."""
        out: list[bytes] = []
        while data and room > 0:
            try:
                piece = self.inflate.decompress(data, min(room, CHUNK * 16))
            except zlib.error as exc:
                if not self.started and self.encoding == "deflate" and self.wbits > 0:
                    self.wbits = -zlib.MAX_WBITS  # a server that sends raw deflate
                    self.inflate = zlib.decompressobj(self.wbits)
                    continue
                if self.started and self.inflate.eof:
                    return out  # bytes after the last gzip member: ignored
                raise BadEncoding(f"the answer's {self.encoding} encoding is broken ({exc})"
                                  ) from None
            self.started = True
            out.append(piece)
            room -= len(piece)
            if self.inflate.eof:  # a further gzip member may follow
                data = self.inflate.unused_data
                if data:
                    self.inflate = zlib.decompressobj(self.wbits)
            else:
                data = self.inflate.unconsumed_tail
        return out  # input left over only when room ran out: the cap is passed


def _read(response: requests.Response) -> bytes:
    """One chunk of the raw body; urllib3's errors as requests raises them for `.content`."""
    try:
        return response.raw.read(CHUNK, decode_content=False)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from None
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None


def read_capped(response: requests.Response, cap: int) -> bytes:
    """The body of a streamed `response`, decoded, or ResponseTooLarge past `cap` bytes
    received or decoded (the connection is then closed, not reused)."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        inflater = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflater = _Inflater(encoding)
    else:
        response.close()
        raise BadEncoding(f"the answer's Content-Encoding {encoding!r} was not asked for "
                          f"(only {ENCODINGS})")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        response.close()
        raise ResponseTooLarge(cap, 0, 0, int(declared))
    parts: list[bytes] = []
    received = decoded = 0
    while True:
        data = _read(response)
        if not data:
            break
        received += len(data)
        pieces = [data] if inflater is None else inflater.feed(data, cap + 1 - decoded)
        decoded += sum(map(len, pieces))
        if received > cap or decoded > cap:
            response.close()
            raise ResponseTooLarge(cap, received, decoded)
        parts += pieces
    return b"".join(parts)


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
    """Pools that report their connections to the exchange; every answer that is not
    streamed by request (stream=True) is read here, within the cap, redirects' too."""

    max_bytes = int(DEFAULT_MAX_RESPONSE_MB * 2**20)

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None,
             verify: bool | str = True, cert: str | tuple[str, str] | None = None,
             proxies: dict[str, str] | None = None) -> requests.Response:
        response = super().send(request, stream=True, timeout=timeout, verify=verify,
                                cert=cert, proxies=proxies)
        if not stream:
            response._content = read_capped(response, self.max_bytes)
            response._content_consumed = True
            response.raw.release_conn()
        return response

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
    a streamed body (stream=True) is read after the deadline's watch and is not bounded,
    neither in time nor in size. Every other answer is read within `max_response_mb`.
    """

    def __init__(self, max_response_mb: float = DEFAULT_MAX_RESPONSE_MB) -> None:
        super().__init__()
        self.headers["Accept-Encoding"] = ENCODINGS
        for prefix in ("http://", "https://"):
            adapter = _Adapter()
            adapter.max_bytes = int(max_response_mb * 2**20)
            self.mount(prefix, adapter)

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any
                ) -> requests.Response:
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


@dataclass(frozen=True, slots=True)
class HttpClient:
    """What an HTTP client needs of a server's section (support/http.make_session): its
    TLS and credentials, and the [http] cap on answers."""

    timeout_s: float = 60.0
    max_response_mb: float = DEFAULT_MAX_RESPONSE_MB
    verify_tls: bool = True
    ca_bundle: str = ""
    token: str = ""
    cert: str = ""
    key: str = ""


def make_session(client: HttpClient | None = None) -> Session:
    """A session with a server section's TLS settings, token, certificate and the [http]
    cap on answers (`section.client(cap)`); none: verified TLS, no credentials."""
    client = client or HttpClient()
    session = Session(client.max_response_mb)
    session.headers["User-Agent"] = USER_AGENT
    if not client.verify_tls:
        session.verify = False
    elif client.ca_bundle:
        session.verify = client.ca_bundle
    if client.cert:
        session.cert = (client.cert, client.key) if client.key else client.cert
    if client.token:
        session.headers["Authorization"] = f"Bearer {client.token}"
    return session


def safe_url(url: str) -> str:
    """The URL without user, password and query string: fit for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _chain_text(exc: BaseException) -> str:
    """The messages of an exception and of every exception behind it (urllib3 wraps the
    socket's error two or three levels down)."""
    texts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__ or (
            current.args[0] if current.args and isinstance(current.args[0], BaseException)
            else None)
    return " | ".join(texts)


_NOT_TLS = ("wrong version number", "WRONG_VERSION_NUMBER", "record layer failure",
            "packet length too long", "http request")
_DNS = ("Name or service not known", "nodename nor servname", "Temporary failure in name "
        "resolution", "NameResolutionError", "No address associated with hostname",
        "getaddrinfo failed")


def describe_failure(exc: requests.RequestException, timeout: Any = None) -> str:
    """One line a user can act on for a failed request, never the URL's credentials: a
    timeout, a server speaking plain HTTP to https://, a certificate not trusted, a host
    name DNS does not know, a port nothing listens on, a connection cut."""
    within = f" within {timeout:g} s" if isinstance(timeout, int | float) else ""
    if isinstance(exc, ResponseTooLarge | BadEncoding):
        return str(exc)
    if isinstance(exc, ExchangeTimeout):
        return f"timed out: {exc} (raise timeout_s if the server is only slow)"
    if isinstance(exc, requests.ConnectTimeout):
        return f"timed out: no connection{within} (server down, or a firewall drops it)"
    chain = _chain_text(exc)
    if isinstance(exc, requests.Timeout) or "timed out" in chain:
        # requests reports a read timeout in the body as a ConnectionError
        return (f"timed out: no complete answer{within} (raise timeout_s if the server is "
                "only slow)")
    if isinstance(exc, requests.exceptions.SSLError):
        if any(mark in chain for mark in _NOT_TLS):
            return "the server speaks plain HTTP, not TLS: use http:// in the URL"
        if "CERTIFICATE_VERIFY_FAILED" in chain or "certificate verify failed" in chain:
            return ("TLS verification failed: the server's certificate is not trusted (set "
                    "ca_bundle to the CA that signed it, or check the host name)")
        return "TLS handshake failed (check the URL's port and the server's TLS setup)"
    if isinstance(exc, requests.ConnectionError):
        if any(mark in chain for mark in _DNS):
            return "host name not found (DNS): check the URL's host"
        if "Connection refused" in chain or "Errno 111" in chain:
            return "connection refused: nothing listens there (server down, or wrong port)"
        if "unreachable" in chain or "No route to host" in chain:
            return "network unreachable: no route to the server"
        if "RemoteDisconnected" in chain or "Connection aborted" in chain or \
                "Connection reset" in chain:
            return "the server closed the connection without an answer"
        return "connection failed (server down or unreachable)"
    return type(exc).__name__


def body_summary(text: str, limit: int = 200) -> str:
    """One line of an answer's body for a message: an HTML page's title (or its first line
    of text), else the first non-empty line; at most `limit` characters, redacted before
    the cut (never a token's prefix)."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        line = title.group(1)
    else:
        plain = re.sub(r"<[^>]*>", "\n", text) if re.search(r"<[a-zA-Z!/]", text) else text
        line = next((one for one in plain.splitlines() if one.strip()), "")
    return brief(" ".join(line.split()), limit)
