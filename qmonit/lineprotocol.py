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

import math
from collections.abc import Iterable

from qmonit.sample import Sample, epoch_seconds

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"})
_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
)
_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


def _field_value(key: str, value: float | str) -> str:
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    if not math.isfinite(value):
        raise ValueError(f"field {key}={value!r}: InfluxDB cannot store NaN or infinity")
    return repr(float(value))


def _tag(key: str, value: str) -> str:
    if value.endswith("\\"):
        raise ValueError(
            f"tag {key}={value!r} ends with a backslash, which line protocol cannot carry"
        )
    return f",{key.translate(_KEY)}={value.translate(_KEY)}"


def encode(sample: Sample) -> str:
    """One line of line protocol (no trailing newline), precision seconds.

    Raises ValueError naming the measurement and the key that cannot be encoded.
    """
    try:
        head = sample.measurement.translate(_MEASUREMENT) + "".join(
            _tag(k, v) for k, v in sample.tags
        )
        body = ",".join(f"{k.translate(_KEY)}={_field_value(k, v)}" for k, v in sample.fields)
    except ValueError as exc:
        raise ValueError(f"{sample.measurement}: {exc}") from None
    return f"{head} {body} {epoch_seconds(sample.time)}"


def encode_lines(samples: Iterable[Sample]) -> list[str]:
    return [encode(sample) for sample in samples]
