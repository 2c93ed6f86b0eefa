"""The immutable Sample every source returns, and the 10-minute slot arithmetic."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import NamedTuple

from qmonit.core.model import TAG_LIMIT, TAG_LIMITS
from qmonit.support.redact import brief

SLOT = timedelta(minutes=10)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FieldValue = float | str


class Sample(NamedTuple):
    """One point: measurement, sorted tags, sorted fields, an aware UTC time."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time: datetime

    def tag(self, key: str, default: str | None = None) -> str | None:
        return dict(self.tags).get(key, default)

    def field(self, key: str) -> FieldValue | None:
        return dict(self.fields).get(key)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=65536)
def _name_problem(key: str, value: str) -> str | None:
    """Why a tag value cannot be kept as it is, or None: longer than the SQL column it goes
    in, or holding a control character (CR, LF, TAB, ...), which line protocol cannot carry
    and a table would keep altered, or a Unicode format character (right-to-left override,
    zero-width space, ...), which would show a dashboard a name other than the stored one."""
    limit = TAG_LIMITS.get(key, TAG_LIMIT)
    if len(value) > limit:
        return f"is {len(value)} characters long (at most {limit}): {value[:40]!r}..."
    control = _CONTROL.search(value)
    if control:
        return (f"= {value[:80]!r} holds the control character {control.group()!r} "
                "(names must be printable)")
    if not value.isascii():  # the ASCII fast path: no format character there
        for char in value:
            if unicodedata.category(char) == "Cf":
                return (f"= {value[:80]!r} holds the format character U+{ord(char):04X} "
                        f"{unicodedata.name(char, 'unnamed')} (names must not hold invisible "
                        "or direction-changing characters)")
    return None


def or_unknown(key: str | None) -> str:
    """A JSON key as a tag value: empty, or a null the server wrote as a key ("null",
    "None"), is unknown."""
    return "unknown" if key in (None, "", "null", "None") else key


def shown(name: str, limit: int = 60) -> str:
    """A name as a message may quote it: as it is when printable and short, else its repr,
    cut to `limit` characters (a 10,000-character or CR/LF-laden name from a server must
    not flood or forge log lines)."""
    if len(name) <= limit and name.isprintable():
        return name
    return repr(name[:limit]) + ("..." if len(name) > limit else "")


def shown_path(*names: str) -> str:
    """Where a record sits in a nested answer (queue/label/resource/status), each part as
    `shown` quotes it."""
    return "/".join(map(shown, names))


def make_sample(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | str],
    time: datetime,
) -> Sample:
    """Build a Sample: numeric fields become floats, tags and fields are sorted.

    Raises ValueError for a non-finite number, an empty tag value, a naive time
    or a point without fields, naming the offending key.
    """
    if not fields:
        raise ValueError(f"{measurement}: a point needs at least one field")
    if time.tzinfo is None:
        raise ValueError(f"{measurement}: time {time.isoformat()} has no time zone")
    clean_fields: list[tuple[str, FieldValue]] = []
    for key, value in fields.items():
        if isinstance(value, str):
            clean_fields.append((key, value))
            continue
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{measurement}: field {key}={value!r} is not a finite number")
        clean_fields.append((key, number))
    for key, value in tags.items():
        if not isinstance(value, str) or value == "":
            raise ValueError(f"{measurement}: tag {key} has an empty or non-text value {value!r}")
        problem = _name_problem(key, value)
        if problem:
            raise ValueError(f"{measurement}: tag {key} {problem}")
    return Sample(
        measurement,
        tuple(sorted(tags.items())),
        tuple(sorted(clean_fields)),
        time.astimezone(UTC),
    )


def slot_start(moment: datetime, slot: timedelta = SLOT) -> datetime:
    """The start of the slot holding `moment` (UTC); naive times are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elapsed = moment.astimezone(UTC) - EPOCH
    return EPOCH + (elapsed // slot) * slot


def epoch_seconds(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def from_epoch(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def series_id(sample: Sample) -> int:
    """A stable signed 64-bit id of the sample's series (measurement and tag set): the hash
    of json.dumps([measurement, tags]) in compact form. Where no name holds what JSON
    escapes (quotes, backslashes, anything but printable ASCII: all names, in practice) the
    same text is put together directly, ~4 times cheaper."""
    measurement, tags = sample[0], sample[1]
    names = "".join([measurement, *chain.from_iterable(tags)])
    if tags and names.isascii() and names.isprintable() and '"' not in names \
            and "\\" not in names:
        text = "".join(['["', measurement, '",[["', '"],["'.join(map('","'.join, tags)),
                        '"]]]'])
    else:
        text = json.dumps([measurement, tags], separators=(",", ":"))
    return stable_id(text)


class SeriesIds:
    """series_id with a memory, for the embedded store's cycles, which ask for the same
    series again every cycle (twice: zero-fill and the write). It holds one tag set per
    series, so beside InfluxDB, where each id is asked once a cycle, it is not used."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self._known: dict[tuple, int] = {}
        # id(tags) -> (tags, measurement, series id) of samples whose ids are known already
        self._recent: dict[int, tuple[tuple, str, int]] = {}

    def remember(self, samples: Sequence[Sample], ids: Sequence[int]) -> None:
        """These samples' ids, worked out already (a fetch did, perhaps in another process):
        until forget(), asking for them again costs a look-up by the identity of their tag
        tuple (a look-up by equal tags hashes and compares every pair: ~4 times as much).
        The entries hold the tuples, so an identity cannot be reused meanwhile."""
        recent = self._recent
        for sample, sid in zip(samples, ids, strict=True):
            recent[id(sample[1])] = (sample[1], sample[0], sid)

    def forget(self) -> None:
        self._recent.clear()

    def __call__(self, sample: Sample) -> int:
        hit = self._recent.get(id(sample[1]))
        if hit is not None and hit[0] is sample[1] and hit[1] == sample[0]:
            return hit[2]
        key = (sample.measurement, sample.tags)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            known = self._known[key] = series_id(sample)
        return known


def stable_id(text: str) -> int:
    """A signed 64-bit hash of `text`, the same in every process (Python's hash() is not)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big",
                          signed=True)


RUN_MESSAGE_LIMIT = 1000  # characters of a run's errors kept in its `message` field


def run_sample(job: str, source: str, slot: datetime, fields: Mapping[str, float | int | str],
               errors: Sequence[str] = (), status: str | None = None) -> Sample:
    """The one way a run records itself: a `qmonit_run` point for one source (or sink) of
    one run of `job`. `status`: "failed" when there are `errors`, else "ok", unless given
    (a source's own, e.g. "cached"); the errors joined in `message`, redacted and cut."""
    values = dict(fields)
    if errors:
        values["message"] = brief("; ".join(errors), RUN_MESSAGE_LIMIT)
    return make_sample("qmonit_run", {"job": job, "source": source,
                                      "status": status or ("failed" if errors else "ok")},
                       values, slot)
