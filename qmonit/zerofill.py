"""Zero-fill: a series seen recently but missing from a successful fetch is written as 0.

Without it a queue that emptied simply stops reporting, and every sum or mean over
time keeps its last non-zero value. Only a fetch that succeeded may zero-fill: a
failed source writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from qmonit.sample import Sample, epoch_seconds
from qmonit.stores.state import SeenSeries


def zero_samples(present_ids: Iterable[int], seen: Mapping[int, SeenSeries],
                 slot: datetime) -> list[Sample]:
    """Explicit zeros at `slot` for every seen series absent now that existed by `slot`."""
    present = set(present_ids)
    now = epoch_seconds(slot)
    return [
        Sample(s.measurement, s.tags, tuple((name, 0.0) for name in s.fields), slot)
        for sid, s in seen.items()
        if sid not in present and s.first_seen <= now
    ]
