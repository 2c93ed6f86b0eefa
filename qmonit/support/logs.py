"""Logging set-up: UTC timestamps, a file or stderr, and secrets masked in every record."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable

from qmonit.support import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """The house format in UTC, with the whole formatted record redacted: the message, its
    arguments, and a traceback or stack (an exception's text often holds an echoed token)."""

    converter = staticmethod(time.gmtime)  # a plain function, not a method of self

    def __init__(self) -> None:
        super().__init__(FORMAT, "%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        return redact.redact(super().format(record))


class SameErrorOnce(logging.Filter):
    """One full line per failure class: when several steps of a run meet the same error (a
    wrong SQL password refuses the zero-fill, the writes, the current state, the factory
    labels, ...), the first record says it whole and the next ones within `window_s` say
    "the same error" and what they skipped."""

    CAUSE = re.compile(r"\b\w+(?:Error|Exception): [^;]+")

    def __init__(self, window_s: float = 60.0) -> None:
        super().__init__()
        self.window_s = window_s
        self.seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        cause = self.CAUSE.search(message)
        if cause is None:
            return True
        now = time.monotonic()
        self.seen = {c: t for c, t in self.seen.items() if now - t < self.window_s}
        # the same cause, perhaps with a note after it ("(not tried again in this run)")
        same = next((seen for seen in self.seen if cause.group(0).startswith(seen)), None)
        if same is not None:
            record.msg, record.args = message.replace(same, "the same error"), ()
        else:
            self.seen[cause.group(0)] = now
        return True


def setup(level: str = "INFO", file: str = "", secrets: Iterable[str] = ()) -> None:
    """Send the root logger to `file` (else stderr) through the redacting formatter; the
    `secrets` are registered with qmonit.support.redact for every other exit too."""
    redact.register(secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler = (logging.FileHandler(file, encoding="utf-8") if file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(RedactingFormatter())
    handler.addFilter(SameErrorOnce())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "sqlalchemy", "mysql.connector", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
