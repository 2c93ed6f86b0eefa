"""InfluxDB line-protocol encoding, following the rules of InfluxDB 1.x/2.x/3.x.

Measurement names escape commas and spaces; tag keys, tag values and field keys
escape commas, equals signs and spaces; string field values are double-quoted
with quotes and backslashes escaped. Line breaks cannot be represented inside a
line, so they are written as the two characters backslash-n (and -r, -t), the
way the official influxdb client does. A tag value ending in a backslash cannot
be written at all (InfluxDB rejects the line), so it is refused here with the
tag named. Timestamps are whole seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

from qmonit.core.sample import FieldValue, Sample, epoch_seconds

TagSet = tuple[tuple[str, str], ...]
FieldSet = tuple[tuple[str, float | str], ...]

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


# Any character that needs escaping somewhere (or a backslash, which needs a check).
_SPECIAL = re.compile(r"[,= \\\n\r\t]")


def _number(key: str, value: FieldValue) -> str:
    """Always a float literal (an int would create an integer field and a type conflict).
    Text never comes here: encode and _field send it to the quoted form."""
    value = float(value)
    if value - value != 0.0:  # NaN and ±inf, without a function call per field
        raise ValueError(f"field {key}={value!r}: InfluxDB cannot store NaN or infinity")
    return repr(value)


def _field(key: str, value: float | str) -> str:
    if isinstance(value, str):
        return f'{key.translate(_KEY)}="{value.translate(_STRING)}"'
    return f"{key.translate(_KEY)}={_number(key, value)}"


def _tag(key: str, value: str) -> str:
    if value[-1:] == "\\":
        raise ValueError(
            f"tag {key}={value!r} ends with a backslash, which line protocol cannot carry"
        )
    return f"{key.translate(_KEY)}={value.translate(_KEY)}"


def series_head(measurement: str, tags: TagSet) -> str:
    """The escaped measurement and tag set that start a line (InfluxDB's series key)."""
    return ",".join([measurement.translate(_MEASUREMENT), *[_tag(k, v) for k, v in tags]])


def field_key(name: str) -> str:
    return name.translate(_KEY)


def _escaped(measurement: str, tags: TagSet, fields: FieldSet) -> tuple[str, str]:
    return series_head(measurement, tags), ",".join([_field(k, v) for k, v in fields])


def encode(sample: Sample) -> str:
    """One line of line protocol (no trailing newline), precision seconds.

    Raises ValueError naming the measurement and the key that cannot be encoded.
    """
    measurement, tags, fields, when = sample
    try:
        names = "".join([measurement, *[k + v for k, v in tags], *[k for k, _ in fields]])
        if _SPECIAL.search(names) or any(isinstance(v, str) for _, v in fields):
            head, body = _escaped(measurement, tags, fields)
        else:  # the common case: nothing to escape
            head = ",".join([measurement, *[f"{k}={v}" for k, v in tags]])
            body = ",".join([f"{k}={_number(k, v)}" for k, v in fields])
    except ValueError as exc:
        raise ValueError(f"{measurement}: {exc}") from None
    return f"{head} {body} {epoch_seconds(when)}"


def encode_lines(samples: Iterable[Sample]) -> list[str]:
    return [encode(sample) for sample in samples]


_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_UNESCAPED_EQUALS = re.compile(r"(?<!\\)=")
_UNESCAPE = re.compile(r"\\([,= ])")


def split_head(head: str) -> tuple[str, TagSet]:
    """A series key back into (measurement, tags), unescaped as InfluxDB reads it: only
    commas, equals signs and spaces (the inverse of series_head for what the store holds)."""
    if "\\" not in head:  # the common case: nothing escaped, plain splits
        measurement, *pairs = head.split(",")
        return measurement, cast(TagSet, tuple([tuple(pair.split("=", 1)) for pair in pairs]))
    measurement, *pairs = _UNESCAPED_COMMA.split(head)
    tags = []
    for pair in pairs:
        key, value = _UNESCAPED_EQUALS.split(pair, maxsplit=1)
        tags.append((unescape_key(key), unescape_key(value)))
    return unescape_key(measurement), tuple(tags)


def unescape_key(text: str) -> str:
    """A measurement, tag key, tag value or field key as InfluxDB reads it from a line."""
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text
