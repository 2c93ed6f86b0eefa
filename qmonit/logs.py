"""Logging set-up: UTC timestamps, a file or stderr, and secrets masked in every record."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

from qmonit import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replace every known secret value in a record's final text with *** (the secrets
    given here and those registered with qmonit.redact)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        redact.register(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = redact.redact(text)
        if masked is not text:
            record.msg, record.args = masked, None
        return True


def setup(level: str = "INFO", file: str = "", secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler = (logging.FileHandler(file, encoding="utf-8") if file
                                else logging.StreamHandler(sys.stderr))
    formatter = logging.Formatter(FORMAT, "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "sqlalchemy", "mysql.connector", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
