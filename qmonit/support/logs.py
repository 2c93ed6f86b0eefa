"""Logging set-up: UTC timestamps, a file or stderr, and secrets masked in every record."""

from __future__ import annotations

import logging
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
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "sqlalchemy", "mysql.connector", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
