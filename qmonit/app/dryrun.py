"""`qmonit run collect --dry-run` (Telegraf's `--test`): ask every configured source once and
print the InfluxDB line protocol collect would write, writing nothing.

The sources and the topology are the configuration's; everything qmonit would write to
(the SQL state, the time-series store, the spool, CRIC's snapshot) is swapped for a
temporary directory that is removed afterwards. The printed points are the sources'
samples, enriched with CRIC's tags, and the levels the dashboards read; not printed: the
zero-fill (it needs the state of earlier cycles) and collect's own `qmonit_run` points.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from typing import TextIO

from qmonit.collect.components import build
from qmonit.collect.fetch import fetch
from qmonit.core.config import Config
from qmonit.core.levels import combined
from qmonit.core.sample import Sample, slot_start
from qmonit.stores.timeseries.lineprotocol import encode_lines


def dry_run(cfg: Config, slot: datetime, out: TextIO = sys.stdout,
            err: TextIO = sys.stderr) -> int:
    """Print the points; a summary per source on `err`. Exit 1 when a source failed."""
    slot = slot_start(slot)
    with tempfile.TemporaryDirectory(prefix="qmonit-dry-run-") as scratch:
        parts = build(cfg.replaced({"qmonit": {"data_dir": scratch},
                                    "sql": {"url": "", "password": ""},
                                    "influxdb": {"url": ""}, "spool": {"dir": ""}}))
        fetched = fetch(parts, slot)
        points: list[Sample] = []
        levels = []
        failed = 0
        for answer in fetched.answers:
            if answer.samples is None:
                failed += 1
                print(f"# {answer.source}: FAILED: {answer.message}", file=err)
                continue
            points += answer.samples
            levels.append(answer.levels or [])
            print(f"# {answer.source}: {len(answer.samples)} points", file=err)
        aggregated = combined(levels)
        lines = encode_lines(points + aggregated)
        parts.engine.dispose()
    out.write("".join(line + "\n" for line in lines))
    print(f"# slot {slot:%Y-%m-%d %H:%M} UTC: {len(points)} points and {len(aggregated)} "
          f"level points; nothing written (the zero-fill and qmonit_run are not shown)",
          file=err)
    return 1 if failed else 0
