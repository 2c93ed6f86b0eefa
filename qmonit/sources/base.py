"""What a source returns and how it fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import requests

from qmonit.core.batchjobs import BatchJob, BatchNode, Reservation
from qmonit.core.sample import Sample
from qmonit.support.http import body_summary, describe_failure

MAX_JSON_DEPTH = 64  # PanDA and Harvester nest 6 deep, CRIC 4, Elasticsearch ~10

# What a parser raises on input it cannot take: bad values, numbers too large, nesting too
# deep for the interpreter's stack, more than memory holds. Any of them from a source is a
# source error (recorded, the other sources go on), never the end of the run.
PARSE_ERRORS = (ValueError, ArithmeticError, RecursionError, MemoryError)


class SourceError(Exception):
    """The source as a whole failed: nothing of it may be written, not even zeros."""


@dataclass
class Collection:
    """What one fetch produced: the samples, the records it had to skip (with why) and, for
    a batch scheduler, its job records with their mapped states (for the job tables) and
    the cluster they belong to; None where a source keeps no job records."""

    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    jobs: list[BatchJob] | None = None
    cluster: str = ""
    nodes: list[BatchNode] | None = None  # its nodes, for their drain and down reasons
    # its reservations; None: not read (not a Slurm source, or scontrol failed: kept as is)
    reservations: list[Reservation] | None = None


class Source(Protocol):
    name: str

    @property
    def origin(self) -> str:
        """Where its answers come from, for `check` and messages (never a credential)."""

    def collect(self, slot: datetime) -> Collection:
        """Fetch and parse; raise SourceError when nothing trustworthy came back."""


def json_answer(send: Callable[[], requests.Response], origin: str, timeout: Any,
                refused: Callable[[requests.Response], str] = lambda response: body_summary(
                    response.text)) -> Any:
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
    return parse_json(response.content, origin)


def parse_json(text: bytes | str, origin: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decoded JSON nested at most `max_depth` deep, or a SourceError naming `origin`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise SourceError(f"{origin}: response is not valid JSON (nested deeper than "
                          f"{max_depth} levels)") from None
    except MemoryError:
        raise SourceError(f"{origin}: response too large to decode in memory") from None
    except ValueError as exc:
        raise SourceError(f"{origin}: response is not valid JSON ({exc})") from None
    if json_depth(value, max_depth) > max_depth:
        raise SourceError(f"{origin}: response is not valid JSON (nested deeper than "
                          f"{max_depth} levels)")
    return value


_CONTAINERS = (dict, list)


def json_depth(value: Any, limit: int) -> int:
    """How deep `value`'s lists and objects nest (counted without recursion; once past
    `limit`, limit + 1)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return limit + 1
        below = depth + 1
        for child in children:
            if type(child) in _CONTAINERS:  # json.loads makes exactly dict and list
                stack.append((child, below))
    return deepest
