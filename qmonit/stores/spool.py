"""The durable on-disk spool: points a time-series store could not take, replayed oldest first.

Each spool file is gzipped JSON lines: a header line, then one point a line. A file
is written to a temporary name, fsynced and renamed, so a crash leaves either a
whole file or none. Points a store rejected as invalid go to `rejected/`, kept for
a human to read, never replayed.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qmonit.sample import Sample, from_epoch

log = logging.getLogger(__name__)

SUFFIX = ".jsonl.gz"


class SpoolFull(Exception):
    """Writing these points would pass the spool's size cap; they were not spooled."""


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    size: int
    retention: str
    points: int
    created: datetime


@dataclass
class ReplayResult:
    files: int = 0
    points: int = 0
    rejected: int = 0
    error: str | None = None
    oldest: datetime | None = None  # the oldest point that arrived late


def _dump(sample: Sample) -> str:
    return json.dumps([sample.measurement, sample.tags, sample.fields,
                       sample.time.timestamp()], separators=(",", ":"))


def _load(line: str) -> Sample:
    measurement, tags, fields, when = json.loads(line)
    return Sample(measurement, tuple(map(tuple, tags)), tuple(map(tuple, fields)),
                  from_epoch(when))


def _write_atomically(path: Path, lines: Iterable[str]) -> int:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3) as handle:
            for line in lines:
                handle.write(line.encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path.stat().st_size


class Spool:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def _ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def files(self) -> list[SpoolFile]:
        """Pending spool files, oldest first."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                with gzip.open(path, "rt") as handle:
                    header = json.loads(handle.readline())
                out.append(SpoolFile(path, path.stat().st_size, header["retention"],
                                     header["points"],
                                     datetime.fromisoformat(header["created"])))
            except (OSError, ValueError, KeyError) as exc:
                log.error("spool file %s is unreadable (%s); left in place for inspection",
                          path, exc)
        return out

    def size_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.directory.glob(f"*{SUFFIX}"))

    def put(self, samples: Sequence[Sample], retention: str) -> Path:
        """Spool points durably; raises SpoolFull (nothing written) past the size cap."""
        self._ensure()
        now = datetime.now(UTC)
        name = f"{time.time_ns():020d}-{retention}{SUFFIX}"
        header = json.dumps({"retention": retention, "points": len(samples),
                             "created": now.isoformat()})
        path = self.directory / name
        size = _write_atomically(path, [header, *map(_dump, samples)])
        total = self.size_bytes()
        if total > self.max_bytes:
            path.unlink()
            raise SpoolFull(
                f"spool {self.directory} is full ({total - size} of {self.max_bytes} bytes "
                f"used): {len(samples)} points could not be spooled and are lost; "
                f"replay the spool or raise [spool] max_mb"
            )
        return path

    def put_rejected(self, lines: Sequence[str], reason: str) -> Path:
        """Keep points a store refused as invalid, with the reason, for a human to read."""
        target = self.directory / "rejected"
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = target / f"{time.time_ns():020d}.txt.gz"
        _write_atomically(path, [f"# {reason}", *lines])
        return path

    def read(self, spool_file: SpoolFile) -> list[Sample]:
        with gzip.open(spool_file.path, "rt") as handle:
            handle.readline()
            return [_load(line) for line in handle if line.strip()]

    def replay(self, write: Callable[[Sequence[Sample], str], object]) -> ReplayResult:
        """Hand every file, oldest first, to write(samples, retention); stop at the first failure.

        `write` returns a WriteResult; a file is removed once nothing of it is left unwritten.
        """
        result = ReplayResult()
        for spool_file in self.files():
            samples = self.read(spool_file)
            outcome = write(samples, spool_file.retention)
            if outcome.unwritten:
                result.error = outcome.error
                if len(outcome.unwritten) < len(samples):
                    self._rewrite(spool_file, outcome.unwritten)
                break
            spool_file.path.unlink()
            oldest = min(sample.time for sample in samples) if samples else None
            if oldest and (result.oldest is None or oldest < result.oldest):
                result.oldest = oldest
            result.files += 1
            result.points += outcome.written
            result.rejected += sum(r.points for r in outcome.rejected)
        return result

    def _rewrite(self, spool_file: SpoolFile, remaining: Sequence[Sample]) -> None:
        header = json.dumps({"retention": spool_file.retention, "points": len(remaining),
                             "created": spool_file.created.isoformat()})
        _write_atomically(spool_file.path, [header, *map(_dump, remaining)])
