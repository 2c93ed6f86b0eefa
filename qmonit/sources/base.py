"""What a source returns and how it fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

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
