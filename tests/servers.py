"""Real servers for the tests: a private influxd, MariaDB, and a scripted local HTTP server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:g} s")


class InfluxServer:
    """A private `influxd run` (Debian package influxdb) on a fixed port; stop/start keep data."""

    def __init__(self, directory: Path):
        if not shutil.which("influxd"):
            raise RuntimeError("influxd not found: apt-get install influxdb (see .ci/run)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        conf = directory / "influxdb.conf"
        conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{directory}/meta"
[data]
  dir = "{directory}/data"
  wal-dir = "{directory}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
""")
        self.conf = conf

    def start(self) -> InfluxServer:
        log = open(self.directory / "influxd.log", "ab")
        self.process = subprocess.Popen(["influxd", "run", "-config", str(self.conf)],
                                        stdout=log, stderr=log)
        _wait_for(lambda: port_open(self.port), f"influxd on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        _wait_for(lambda: not port_open(self.port), "influxd shutdown")


class MariaDB:
    """MariaDB at 127.0.0.1:3306 if it runs there, else a private mariadbd in a temp dir."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.tmp: str | None = None
        if port_open(3306):
            self.port = 3306
            return
        self.tmp = tempfile.mkdtemp(prefix="qmonit-mariadb-")
        self.port = free_port()
        data = Path(self.tmp) / "data"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                        "--auth-root-authentication-method=normal", "--user=root"],
                       check=True, capture_output=True)
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.tmp}/mysqld.sock", "--user=root",
             ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(lambda: port_open(self.port), "mariadbd")

    def url(self, database: str = "") -> str:
        return f"mysql+mysqlconnector://root@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(30)
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    echo: bool = False  # the body is followed by the request's headers (a careless server)
    length: bool = True  # False: no Content-Length, the body ends when the connection closes


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A local HTTP server: each path answers its scripted replies in turn (the last repeats)."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(Request(self.command, parts.path, parse_qs(parts.query),
                                               dict(self.headers), body))
                replies = server.routes.get(parts.path)
                reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies \
                    else Reply(404, b"no such route")
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                if reply.echo:
                    payload += "".join(f" {k}: {v}" for k, v in self.headers.items()).encode()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    if reply.length:
                        self.send_header("Content-Length", str(len(payload)))
                    else:
                        self.close_connection = True
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def environ_without_qmonit() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("QMONIT_")}


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made by openssl; returns (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key
