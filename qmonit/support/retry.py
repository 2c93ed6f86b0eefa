"""Retry with exponential back-off, full jitter and a total deadline, deterministic under test."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """Raised by an attempt that may succeed if tried again; retry_after in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """Every attempt within the deadline failed; the last reason is the message."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


@dataclass
class Retry:
    deadline_s: float = 60.0
    initial_s: float = 0.5
    max_s: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
        return self.rng.uniform(0, min(self.max_s, self.initial_s * (2**attempt)))

    def call(self, attempt_fn: Callable[[], T]) -> T:
        """Run attempt_fn until it returns, re-raises a non-Retryable, or the deadline passes."""
        start = self.clock()
        attempt = 0
        while True:
            try:
                return attempt_fn()
            except Retryable as exc:
                wait = self.backoff(attempt)
                if exc.retry_after is not None:  # the server's word, but never a busy loop
                    wait = max(exc.retry_after, wait, self.initial_s)
                attempt += 1
                remaining = self.deadline_s - (self.clock() - start)
                if wait > remaining:
                    raise RetriesExhausted(
                        f"{exc} (gave up after {attempt} attempt{'s' * (attempt > 1)} "
                        f"within {self.deadline_s:g} s)",
                        attempt,
                    ) from exc
                self.sleep(wait)
