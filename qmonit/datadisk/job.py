"""The `datadisk` job: are analysis data placed where the analysis jobs run?

Once an hour: DAOD files and bytes per RSE from the Rucio accounting index
(qmonit.sources.daod), each PanDA queue's datadisk from CRIC (`astorages.read_lan`,
only `*DATADISK` endpoints), and the analysis jobs running at each queue — now and
their 24 h and 7 d moving averages, from `queue_stats`, which collect and derive keep.
A queue's running analysis jobs are added to each datadisk it reads (a queue that reads
several is reported, once a run, and counted on each). One `datadisk` point per
datadisk in the "1h" policy at the hour: tags rse, atlas_site, cloud, tier (of the
queues reading it; `unknown` for a datadisk no queue reads); fields daod_bytes,
daod_files, analysis_running, analysis_running_avg24h, analysis_running_avg7d,
share_of_daod (of all DAOD bytes), share_of_analysis (of all running analysis, by
the 24 h average, or the current count where the average lacks coverage) and
placement_ratio = share_of_analysis / share_of_daod (left out where a datadisk holds
no DAOD: there is no ratio to a share of nothing). A ratio far above 1: analysis runs
against too little data (under-supplied); far below 1: data nobody analyses
(over-supplied).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from qmonit.collect.components import Components
from qmonit.core.model import UNKNOWN
from qmonit.core.sample import Sample, make_sample, run_sample
from qmonit.sources.base import SourceError
from qmonit.sources.cric import Topology
from qmonit.sources.daod import RseVolume
from qmonit.stores.sql import state_errors
from qmonit.stores.state import queues
from qmonit.stores.state.status import record_run_samples

log = logging.getLogger(__name__)

ANALYSIS_SOURCES = ("user", "panda")  # PanDA's prodSourceLabels of analysis jobs
HOUR = timedelta(hours=1)


@dataclass
class Analysis:
    """Running analysis jobs of one queue: now, 24 h and 7 d averages (None: no coverage)."""

    running: float = 0.0
    avg24h: float | None = None
    avg7d: float | None = None

    def add(self, running: float, avg24h: float | None, avg7d: float | None) -> None:
        self.running += running
        self.avg24h = _plus(self.avg24h, avg24h)
        self.avg7d = _plus(self.avg7d, avg7d)


def _plus(total: float | None, value: float | None) -> float | None:
    if value is None:
        return total
    return value if total is None else total + value


def analysis_per_queue(engine: Engine) -> dict[str, Analysis]:
    """From queue_stats: per PanDA queue, its analysis prod_sources over every resource."""
    table = queues.queue_stats
    out: dict[str, Analysis] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(table.c.panda_queue, table.c.running,
                                       table.c.running_avg_24h, table.c.running_avg_7d)
                                .where(table.c.prod_source.in_(ANALYSIS_SOURCES))):
            out.setdefault(row.panda_queue, Analysis()).add(float(row.running or 0.0),
                                                            row.running_avg_24h,
                                                            row.running_avg_7d)
    return out


@dataclass
class Join:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def join(volumes: Iterable[RseVolume], topology: Topology, analysis: Mapping[str, Analysis],
         hour: datetime) -> Join:
    """The `datadisk` points of `hour` (see the module's docstring)."""
    result = Join()
    disks: dict[str, Analysis] = {}
    sites: dict[str, Counter] = {}
    for queue in sorted(analysis):
        info = topology.lookup(queue)
        numbers = analysis[queue]
        if info is None:
            if numbers.running or numbers.avg24h:
                result.problems.append(f"queue {queue}: runs analysis but CRIC does not know "
                                       "it: not counted on any datadisk")
            continue
        if not info.datadisks:
            if numbers.running or numbers.avg24h:
                result.problems.append(f"queue {queue}: runs analysis but reads no datadisk "
                                       "in CRIC: not counted")
            continue
        if len(info.datadisks) > 1:
            result.problems.append(f"queue {queue} reads {len(info.datadisks)} datadisks "
                                   f"({', '.join(info.datadisks)}): counted on each")
        for disk in info.datadisks:
            disks.setdefault(disk, Analysis()).add(numbers.running, numbers.avg24h,
                                                   numbers.avg7d)
            sites.setdefault(disk, Counter())[(info.atlas_site or UNKNOWN, info.cloud or UNKNOWN,
                                               info.tier or UNKNOWN)] += 1
    volume_of = {v.rse: v for v in volumes}
    total_bytes = sum(v.bytes for v in volume_of.values())
    weight = {rse: _weight(a) for rse, a in disks.items()}
    total_analysis = sum(weight.values())
    for rse in sorted(set(volume_of) | set(disks)):
        volume = volume_of.get(rse, RseVolume(rse, 0.0, 0.0))
        numbers = disks.get(rse, Analysis())
        site, cloud, tier = sites[rse].most_common(1)[0][0] if rse in sites else \
            (UNKNOWN, UNKNOWN, UNKNOWN)
        fields: dict[str, float] = {"daod_bytes": volume.bytes, "daod_files": volume.files,
                                    "analysis_running": numbers.running}
        if numbers.avg24h is not None:
            fields["analysis_running_avg24h"] = numbers.avg24h
        if numbers.avg7d is not None:
            fields["analysis_running_avg7d"] = numbers.avg7d
        share_daod = volume.bytes / total_bytes if total_bytes else 0.0
        share_analysis = weight.get(rse, 0.0) / total_analysis if total_analysis else 0.0
        fields["share_of_daod"] = share_daod
        fields["share_of_analysis"] = share_analysis
        if share_daod > 0 and total_analysis:
            fields["placement_ratio"] = share_analysis / share_daod
        result.samples.append(make_sample("datadisk", {"rse": rse, "atlas_site": site,
                                                       "cloud": cloud, "tier": tier},
                                          fields, hour))
    return result


def _weight(numbers: Analysis) -> float:
    return numbers.avg24h if numbers.avg24h is not None else numbers.running


@dataclass
class DatadiskReport:
    hour: datetime
    datadisks: int = 0
    problems: list[str] = field(default_factory=list)
    error: str = ""
    duration_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)  # the points written

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0


def run_datadisk(parts: Components, now: datetime | None = None) -> DatadiskReport:
    """One run: the `datadisk` points of the current hour, or nothing (and the error in
    qmonit_run) when the accounting, CRIC or the state store fails."""
    started = time.monotonic()
    now = now or parts.clock.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    report = DatadiskReport(hour)
    accounting = parts.daod
    with state_errors() as caught:
        try:
            if accounting is None:
                raise SourceError("[datadisk] url is not set: no DAOD accounting to read")
            volumes, report.problems = accounting.volumes(hour)
            topology = parts.topology.load(hour)
            if topology.status == "missing":
                raise SourceError(f"CRIC: {topology.message}")
            joined = join(volumes, topology, analysis_per_queue(parts.engine), hour)
        except SourceError as exc:
            report.error = str(exc)
    report.error = report.error or caught.error
    samples: list[Sample] = []
    if not report.error:
        report.problems += joined.problems
        samples = report.samples = joined.samples
        report.datadisks = len(samples)
    for problem in report.problems:
        log.warning("datadisk: %s", problem)
    if report.error:
        log.error("datadisk: %s; nothing written for %s UTC", report.error,
                  f"{hour:%Y-%m-%d %H:%M}")
    if samples:
        delivery = parts.writer.write(samples, "1h")
        if delivery.errors:
            log.error("datadisk: %s", "; ".join(delivery.errors))
    report.duration_s = time.monotonic() - started
    fields: dict[str, float | str] = {"duration_s": report.duration_s,
                                      "points": float(len(samples)),
                                      "errors": 1.0 if report.error else 0.0}
    run = run_sample("datadisk", "daod", hour, fields, [report.error] if report.error else [])
    parts.writer.write([run])
    record_run_samples(parts.engine, [run], hour, parts.clock.now())
    return report


def _ratio(sample: Sample) -> float:
    """A datadisk point's placement_ratio (0.0 without one: such points are not ranked)."""
    value = sample.field("placement_ratio")
    return 0.0 if value is None else float(value)


def placement_summary(report: DatadiskReport, top: int = 3) -> str:
    """The most under- and over-supplied datadisks of a run, for a report."""
    ranked = sorted((s for s in report.samples if s.field("placement_ratio") is not None),
                    key=lambda s: -_ratio(s))
    if not ranked:
        return f"no datadisk placement ({report.error or 'nothing to rank'})"

    def named(samples: list[Sample]) -> str:
        return ", ".join(f"{s.tag('rse')} {_ratio(s):.2f}"
                         for s in samples)
    return (f"{report.datadisks} datadisks; share of analysis / share of DAOD, most "
            f"under-supplied: {named(ranked[:top])}; most over-supplied: "
            f"{named(ranked[::-1][:top])}")
