"""Numbers from a source checked at parse time: finite, non-negative, below a sane maximum.

Every source calls `number_problem` (or `checked`) on each count or amount it reads, so a
NaN, an infinity, a negative or an absurd value (a server's 1e308, a user's
`RequestCpus = real("NaN")`) is reported with its record and skipped instead of reaching
a sum, a store (SQLite keeps inf; MariaDB refuses the whole batch) or an int() that
overflows. The maxima are far above any real grid and far below where a sum of a whole
cycle could overflow a float or a 64-bit SQL integer.
"""

from __future__ import annotations

import math
from typing import Any

# jobs (or workers, pilots) in one cell of a source's answer (queue x label x resource x
# status): ATLAS runs ~10^6 jobs in all; 10^7 in one cell is a broken server.
MAX_JOBS = 1e7
# cores of one job slot or queue (CRIC corecount, a batch job's cpus): the largest nodes
# hold a few hundred cores; 1024 leaves margin.
MAX_CORECOUNT = 1024.0
# HS06 per core (CRIC corepower): ~10-30 today; 10^4 is impossible for years to come.
MAX_COREPOWER = 1e4
# CPUs of one batch job or node (a whole-cluster job on the largest HPC): 10^6.
MAX_CPUS = 1e6
# GPUs of one batch job or node.
MAX_GPUS = 1e5
# memory of one job or node in MB: 10^9 MB = 1 PB.
MAX_MEMORY_MB = 1e9
# bytes on one disk (DAOD on one RSE): 10^18 = 1 EB, ~10 times all of ATLAS's storage.
MAX_BYTES = 1e18
# files on one disk: 10^12.
MAX_FILES = 1e12


def number_problem(value: Any, limit: float) -> str | None:
    """Why `value` is not a usable amount (None if it is): not a number, not finite,
    negative or above `limit`. Cheap: type test, isfinite, two comparisons."""
    if value.__class__ is bool or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float
        return f"{value!r} is above the maximum {limit:g}"
    if not math.isfinite(number):
        return f"{value!r} is not finite"
    if number < 0:
        return f"{value!r} is negative"
    if number > limit:
        return f"{value!r} is above the maximum {limit:g}"
    return None


def field_problem(name: str, value: Any, limit: float) -> str | None:
    """`number_problem` phrased for a message: "field cpus = -64 is negative"."""
    problem = number_problem(value, limit)
    return None if problem is None else f"field {name} = {problem}"
