"""Fixtures that make faults happen: a small disk that fills."""

import os
import subprocess

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """mount(kb) -> an empty directory on its own tmpfs of that size; fill(dir) then takes
    every free byte. Skips where tmpfs cannot be mounted (not root)."""
    mounted = []

    def mount(kb: int):
        where = tmp_path / f"disk-{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k,mode=0700", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"a size-limited tmpfs cannot be mounted here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory) -> None:
    """Take every free byte of the file system `directory` is on."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0


class DripServer:
    """Answers every connection with `head` at once, then `answer` one byte every `every`
    seconds (every=None: nothing after the head, never closing: a server that hangs)."""

    def __init__(self, answer: bytes, every: float | None, head: bytes = b"",
                 tls: tuple | None = None):
        import socket
        import ssl
        import threading

        self.answer, self.every, self.head = answer, every, head
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.tls = None
        if tls:  # (cert, key): the same over HTTPS
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(*tls)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                return
        with conn:
            try:
                conn.recv(65536)  # the request (small enough for one read)
                conn.sendall(self.head)
                if self.every is None:
                    self.closed.wait()
                    return
                for byte in self.answer:
                    if self.closed.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture
def drip():
    servers = []

    def start(answer: bytes, every: float | None = 0.2, head: bytes = b"",
              tls: tuple | None = None) -> DripServer:
        servers.append(DripServer(answer, every, head, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
