"""One redaction for every text that leaves the process.

A server may echo a request's Authorization header, or a password, into its error body,
and that body ends up in an exception's message. Masking only in the logging filter leaves
it in `check`'s output, in the `qmonit_run` message written to the store, in
`source_status.message` in SQL and in a notification. So the secrets in force are
registered here once (the CLI does it after loading the configuration), and every exit
applies `redact`: the logging filter, the CLI's stdout and stderr, the `qmonit_run` and
`source_status` messages, and the digest a notifier sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

MASK = "***"
_secrets: list[str] = []


def register(secrets: Iterable[str]) -> None:
    """Add secret values to mask (longest first, so a secret inside another goes whole)."""
    _secrets[:] = sorted({*_secrets, *(s for s in secrets if s)}, key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingStream:
    """A text stream (stdout, stderr) that masks the secrets in everything written to it."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
