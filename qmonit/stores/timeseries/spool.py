"""The durable on-disk spool: points a time-series store could not take, replayed oldest first.

Each spool file is gzipped JSON lines: a header line, then one point a line. A file
is written to a temporary name, fsynced and renamed, so a crash leaves either a
whole file or none; a write that fails (a full disk) removes its temporary file and
raises OSError, which the writer counts as points lost. Points a store rejected as
invalid go to `rejected/`, kept for a human to read, never replayed.

A file damaged all the same (cut short by a full disk before this design, a bad block,
a hand edit) never stops the spool: the points that read back are kept in a whole file
under its name and replayed; the damaged original moves to `damaged/` for inspection,
and the points it held beyond them are reported lost.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from qmonit.core.sample import Sample, from_epoch
from qmonit.stores.timeseries.base import WriteResult
from qmonit.support.clock import Clock, SystemClock
from qmonit.support.files import private_dir

log = logging.getLogger(__name__)

SUFFIX = ".jsonl.gz"
DAMAGED = "damaged"
# what reading a damaged gzip stream raises: cut short, bad CRC, not gzip, not UTF-8
_STREAM_ERRORS = (EOFError, OSError, zlib.error, UnicodeDecodeError)


class SpoolFull(Exception):
    """Writing these points would pass the spool's size cap; they were not spooled."""


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    size: int
    retention: str
    points: int
    created: datetime
    oldest: datetime | None = None  # the time of its oldest point


@dataclass
class ReplayResult:
    files: int = 0
    points: int = 0
    rejected: int = 0
    error: str | None = None
    oldest: datetime | None = None  # the oldest point that arrived late
    damaged: list[str] = field(default_factory=list)  # what was wrong with damaged files
    lost: int = 0  # points damaged files held beyond those read back


def _dump(sample: Sample) -> str:
    return json.dumps([sample.measurement, sample.tags, sample.fields,
                       sample.time.timestamp()], separators=(",", ":"))


def _load(line: str) -> Sample:
    measurement, tags, fields, when = json.loads(line)
    return Sample(measurement, tuple(map(tuple, tags)), tuple(map(tuple, fields)),
                  from_epoch(when))


def _write_atomically(path: Path, lines: Iterable[str]) -> int:
    """Write a whole file or none: a failure (a full disk) removes the temporary file and
    raises OSError."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # 0600 whatever the umask: the points name owners, queues and jobs
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3) as handle:
                for line in lines:
                    handle.write(line.encode() + b"\n")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path.stat().st_size


class Spool:
    def __init__(self, directory: Path, max_bytes: int, clock: Clock | None = None):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.clock = clock or SystemClock()  # each file's stamp: when it was spooled

    def _ensure(self) -> None:
        private_dir(self.directory)

    def files(self) -> list[SpoolFile]:
        """Pending spool files, oldest first; one whose header cannot be read is moved to
        damaged/ (nothing in it can be trusted to replay)."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                with gzip.open(path, "rt") as handle:
                    header = json.loads(handle.readline())
                oldest = header.get("oldest")  # files of versions before have none
                out.append(SpoolFile(path, path.stat().st_size, header["retention"],
                                     header["points"],
                                     datetime.fromisoformat(header["created"]),
                                     datetime.fromisoformat(oldest) if oldest else None))
            except FileNotFoundError:  # replayed by another run meanwhile
                continue
            except (*_STREAM_ERRORS, ValueError, KeyError, TypeError) as exc:
                self._quarantine(path, f"its header is unreadable ({_reason(exc)})")
        return out

    def damaged(self) -> list[Path]:
        """Damaged files moved aside, oldest first."""
        target = self.directory / DAMAGED
        return sorted(target.glob(f"*{SUFFIX}")) if target.is_dir() else []

    def _quarantine(self, path: Path, problem: str) -> Path:
        target = self.directory / DAMAGED
        private_dir(target)
        moved = target / path.name
        os.replace(path, moved)
        log.error("spool file %s is damaged: %s; moved to %s for inspection", path, problem,
                  moved)
        return moved

    def size_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.directory.glob(f"*{SUFFIX}"))

    def put(self, samples: Sequence[Sample], retention: str) -> Path:
        """Spool points durably; raises SpoolFull (nothing written) past the size cap."""
        self._ensure()
        name = f"{time.time_ns():020d}-{retention}{SUFFIX}"
        path = self.directory / name
        size = _write_atomically(path, [_header(retention, samples, self.clock.now()),
                                        *map(_dump, samples)])
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
        private_dir(target)
        path = target / f"{time.time_ns():020d}.txt.gz"
        _write_atomically(path, [f"# {reason}", *lines])
        return path

    def read(self, spool_file: SpoolFile, result: ReplayResult | None = None) -> list[Sample]:
        """The file's points. A damaged file gives the points that read back; they are
        kept in a whole file under its name, the original is moved to damaged/, and what
        was wrong and how many points are lost go to `result`."""
        samples, problem = _read_points(spool_file.path)
        if problem is None:
            return samples
        lost = max(spool_file.points - len(samples), 0)
        problem = (f"{problem}: {len(samples)} of {spool_file.points} points read back and "
                   f"replayed, {lost} lost")
        self._quarantine(spool_file.path, problem)
        try:
            _write_atomically(spool_file.path, [_header(spool_file.retention, samples,
                                                        spool_file.created),
                                                *map(_dump, samples)])
        except OSError as exc:  # they are replayed from memory; kept only if that succeeds
            log.error("spool file %s: the %d points read back could not be kept (%s)",
                      spool_file.path, len(samples), exc)
        if result is not None:
            result.damaged.append(f"spool file {spool_file.path.name} {problem}")
            result.lost += lost
        return samples

    def replay(self, write: Callable[[Sequence[Sample], str], WriteResult]) -> ReplayResult:
        """Hand every file, oldest first, to write(samples, retention); stop at the first failure.

        `write` returns a WriteResult; a file is removed once nothing of it is left unwritten.
        """
        result = ReplayResult()
        for spool_file in self.files():
            try:
                samples = self.read(spool_file, result)
            except FileNotFoundError:  # replayed by another run meanwhile
                continue
            outcome = write(samples, spool_file.retention)
            if outcome.unwritten:
                result.error = outcome.error
                if len(outcome.unwritten) < len(samples):
                    self._rewrite(spool_file, outcome.unwritten)
                break
            spool_file.path.unlink(missing_ok=True)
            oldest = min(sample.time for sample in samples) if samples else None
            if oldest and (result.oldest is None or oldest < result.oldest):
                result.oldest = oldest
            result.files += 1
            result.points += outcome.written
            result.rejected += sum(r.points for r in outcome.rejected)
        return result

    def _rewrite(self, spool_file: SpoolFile, remaining: Sequence[Sample]) -> None:
        try:
            _write_atomically(spool_file.path, [_header(spool_file.retention, remaining,
                                                        spool_file.created),
                                                *map(_dump, remaining)])
        except OSError as exc:  # the whole file stays: its written points come again
            log.error("spool file %s: could not drop the %d points written (%s); they are "
                      "written again at the next replay", spool_file.path,
                      spool_file.points - len(remaining), exc)

    def verify(self, spool_file: SpoolFile) -> str | None:
        """What is wrong with a pending file (read through to its end), or None."""
        samples, problem = _read_points(spool_file.path)
        if problem is None and len(samples) != spool_file.points:
            problem = f"its header says {spool_file.points} points"
        return None if problem is None else f"{problem}: {len(samples)} points readable"


def _header(retention: str, samples: Sequence[Sample], created: datetime) -> str:
    """A spool file's first line: its policy, how many points, when it was first spooled,
    and the slot of its oldest point (what `qmonit status` shows)."""
    oldest = min((sample.time for sample in samples), default=None)
    return json.dumps({"retention": retention, "points": len(samples),
                       "created": created.isoformat(),
                       "oldest": oldest.isoformat() if oldest else None})


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "cut short"
    return str(exc) or type(exc).__name__


def _read_points(path: Path) -> tuple[list[Sample], str | None]:
    """Every point that reads back, and what was wrong (None: the file is whole). Raises
    FileNotFoundError."""
    samples: list[Sample] = []
    bad = 0
    problem = None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            handle.readline()
            for line in handle:
                if not line.endswith("\n"):  # the last line, cut in the middle
                    bad += 1
                    break
                if not line.strip():
                    continue
                try:
                    samples.append(_load(line))
                except (ValueError, TypeError, KeyError, IndexError, OverflowError):
                    bad += 1
    except FileNotFoundError:
        raise
    except _STREAM_ERRORS as exc:
        problem = _reason(exc)
    if bad:
        problem = ", ".join(filter(None, [problem, f"{bad} malformed line(s)"]))
    return samples, problem
