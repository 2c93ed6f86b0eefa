"""What a source returns and how it fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import requests

from qmonit.http import describe_failure
from qmonit.sample import Sample


class SourceError(Exception):
    """The source as a whole failed: nothing of it may be written, not even zeros."""


@dataclass
class Collection:
    """What one fetch produced: the samples, and the records it had to skip (with why)."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Source(Protocol):
    name: str

    def collect(self, slot: datetime) -> Collection:
        """Fetch and parse; raise SourceError when nothing trustworthy came back."""


def json_answer(send: Callable[[], requests.Response], origin: str, timeout: Any,
                refused: Callable[[requests.Response], str] = lambda response: "") -> Any:
    """Send a request; its decoded JSON, or a SourceError naming `origin` and what failed
    (the exchange, the HTTP status with `refused`'s reason, or the body)."""
    try:
        response = send()
    except requests.RequestException as exc:
        raise SourceError(f"{origin}: {describe_failure(exc, timeout)}") from None
    if response.status_code != 200:
        reason = refused(response)
        raise SourceError(f"{origin}: HTTP {response.status_code}"
                          + (f": {reason}" if reason else ""))
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise SourceError(f"{origin}: response is not valid JSON ({exc})") from None
