"""Zero-fill: a series seen recently but missing from a successful fetch is written as 0.

Without it a queue that emptied simply stops reporting, and every sum or mean over
time keeps its last non-zero value. Only a fetch that succeeded may zero-fill: a
failed source writes nothing at all.
"""

from __future__ import annotations

from datetime import datetime

from qmonit.core.sample import Sample
from qmonit.stores.state.series import SeenSeries


def zero_samples(vanished: list[SeenSeries], slot: datetime) -> list[Sample]:
    """An explicit 0 at `slot` for every field each vanished series used to carry."""
    return [Sample(s.measurement, s.tags, tuple((name, 0.0) for name in s.fields), slot)
            for s in vanished]
