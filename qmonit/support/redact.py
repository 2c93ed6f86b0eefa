"""One redaction for every text that leaves the process, and child environments without secrets.

A server may echo a request's Authorization header, or a password, into its error body,
and that body ends up in an exception's message. Masking only in the logging filter leaves
it in `check`'s output, in the `qmonit_run` message written to the store, in
`source_status.message` in SQL and in a notification. So the secrets in force are
registered here once (the CLI does it after loading the configuration), and every exit
applies `redact`: the log formatter (message and traceback), the CLI's stdout and stderr,
the `qmonit_run` and `source_status` messages, and the digest a notifier sends. Text that
looks like a credential is masked too when it was never registered (a token of another
service, a password in a URL). A text cut to a length goes through `brief`, which redacts
the whole text first and cuts after: a secret cut in the middle would escape both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

MASK = "***"
_secrets: list[str] = []

_KEY = r"(?:password|passwd|pwd|token|secret|api[_-]?key|access[_-]?key)"
_KEY_WORDS = ("pass", "pwd", "token", "secret", "key")
# credentials by their look: (words one of which the text must hold, pattern, replacement
# keeping what says where it was); the words, looked for first, spare a long text the scans
# (words that must occur, the pattern, its replacement)
Replacement = str | Callable[[re.Match[str]], str]
_LOOKS_SECRET: list[tuple[tuple[str, ...], re.Pattern[str], Replacement]] = [
    # an Authorization header, any scheme: "Authorization: Basic dXNl..." (as echoed or dumped)
    (("authorization",), re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:([a-z]+)(\s+))?"
                r"[^\s\"',;}]+"), lambda m: f"{m[1]}{m[2] or ''}{m[3] or ''}{MASK}"),
    # a bearer token on its own: "Bearer eyJhbGciOi..."
    (("bearer",), re.compile(r"(?i)(bearer\s+)[\w.~+/=-]{8,}"), rf"\1{MASK}"),
    # a password in a URL: scheme://user:password@host
    (("://",), re.compile(r"(://[^/\s:@?#]{0,256}:)[^/\s@?#]+@"), rf"\1{MASK}@"),
    # key=value, in a query string or a dump: token=..., password=..., QMONIT_X_TOKEN=...
    (_KEY_WORDS, re.compile(rf"(?i)({_KEY}=)[^\s&#\"',;]+"), rf"\1{MASK}"),
    # a quoted key in JSON or a Python repr: "password": "..."
    (_KEY_WORDS, re.compile(rf"(?i)({_KEY}[\"']\s*:\s*[\"'])[^\"']+"), rf"\1{MASK}"),
]


def register(secrets: Iterable[str]) -> None:
    """Add secret values to mask (longest first, so a secret inside another goes whole)."""
    _secrets[:] = sorted({*_secrets, *(s for s in secrets if s)}, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every registered secret, and everything that looks like a credential,
    replaced by ***."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    lowered = text.lower()
    for words, pattern, replacement in _LOOKS_SECRET:
        if any(word in lowered for word in words):
            text = pattern.sub(replacement, text)
    return text


def brief(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, redacted before the cut (never a partial secret)."""
    return redact(text)[:limit]


_SECRET_NAME = re.compile(r"(?i)(password|passwd|token|secret|api_?key|access_?key"
                          r"|credential|private_?key)")


def child_environment(*, qmonit_child: bool = False,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process qmonit starts.

    A scheduler's client (squeue, sinfo, scontrol) gets no QMONIT_* variable, no variable
    whose name says it holds a secret (..._TOKEN, ..._PASSWORD, ...) and none whose value
    holds a registered secret or a credential (a proxy URL with a password). qmonit's own
    child (`qmonit_child=True`, the daemon's `qmonit run`) reads its secrets from the
    environment as its parent did, so it keeps everything."""
    environ = os.environ if environ is None else environ
    if qmonit_child:
        return dict(environ)
    return {name: value for name, value in environ.items()
            if not name.startswith("QMONIT_") and not _SECRET_NAME.search(name)
            and redact(value) == value}


class RedactingStream:
    """A text stream (stdout, stderr) that masks the secrets in everything written to it."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text))

    def __getattr__(self, name: str) -> Any:  # the rest of the stream's API, as it is
        return getattr(self._stream, name)
