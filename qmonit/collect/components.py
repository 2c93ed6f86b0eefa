"""Build the stores, the spool and the sources a configuration describes (no I/O happens here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from qmonit.core.config import Config
from qmonit.core.sample import Sample, SeriesIds, series_id
from qmonit.core.states.rules import SOURCES as RULE_SETS
from qmonit.core.states.rules import RuleSet, load_rules
from qmonit.simulation.batch import SIMULATED
from qmonit.simulation.grid import (
    SimulatedDaod,
    SimulatedGrid,
    SimulatedTopology,
)
from qmonit.sources.base import Source
from qmonit.sources.cric import CricTopology, NoTopology, TopologySource
from qmonit.sources.daod import DaodAccounting, VolumeSource
from qmonit.sources.registry import SOURCES
from qmonit.stores.sql import make_engine
from qmonit.stores.timeseries.base import TimeSeriesStore
from qmonit.stores.timeseries.durable import DurableWriter
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.influx import InfluxStore
from qmonit.stores.timeseries.rollup_buffer import FILE_NAME as BUFFER_FILE
from qmonit.stores.timeseries.rollup_buffer import RollupBuffer
from qmonit.stores.timeseries.spool import Spool
from qmonit.support.clock import Clock, SystemClock

CRIC_SNAPSHOT = "cric_pandaqueue.json"


@dataclass
class Components:
    cfg: Config
    engine: Engine  # the SQL state store
    store: TimeSeriesStore
    spool: Spool
    writer: DurableWriter
    sources: list[Source]
    topology: TopologySource
    grid: SimulatedGrid | None = None
    rules: dict[str, RuleSet] = field(default_factory=dict)  # rule set name -> its rules
    buffer: RollupBuffer | None = None  # what the hourly roll-up reads instead of the store
    series_ids: Callable[[Sample], int] = series_id
    daod: VolumeSource | None = None  # the datadisk job's DAOD accounting
    # the embedded store's ids (`series_ids` itself): what the fetch worked out, kept for
    # the write of the same cycle; None with InfluxDB (its ids are only the zero-fill's)
    kept_ids: SeriesIds | None = None
    clock: Clock = field(default_factory=SystemClock)  # the time every stage asks


def build(cfg: Config, clock: Clock | None = None) -> Components:
    """The parts `cfg` describes; the sources and every stage ask `clock` the time."""
    clock = clock or SystemClock()
    settings = cfg.settings
    cap = settings.http.max_response_mb  # every HTTP client's bound on an answer
    engine = make_engine(cfg.sql_url, settings.sql.password)
    series_ids: Callable[[Sample], int] = series_id
    kept_ids = None
    if settings.influxdb.url:
        store: TimeSeriesStore = InfluxStore(settings.influxdb, max_response_mb=cap)
    else:
        series_ids = kept_ids = SeriesIds()
        store = EmbeddedStore(engine, series_ids)
    spool = Spool(cfg.spool_dir, int(settings.spool.max_mb * 1024 * 1024), clock)
    buffer = None  # the embedded store's own client path is the same SQL on a local file
    if isinstance(store, InfluxStore) and settings.downsample.buffer:
        buffer = RollupBuffer(Path(cfg.data_dir) / BUFFER_FILE,
                              settings.downsample.buffer_hours)
    enabled = settings.sources.enabled
    sources: list[Source] = []
    grid: SimulatedGrid | None = None
    topology: TopologySource = NoTopology()
    rules = {name: load_rules(name, settings.states.file_of(name)) for name in RULE_SETS}
    simulated = [spec for spec in SIMULATED if spec.name in enabled]
    if simulated:  # one grid under all of them, its topology and its DAOD
        grid = SimulatedGrid(settings.sources.simulated_seed,
                             settings.sources.simulated_scale)
        topology = SimulatedTopology(grid)
        sources += [source for sim in simulated for source in sim.build(grid, rules)]
    for spec in SOURCES:  # the real ones, each through its registry entry
        if spec.name in enabled:
            sources += spec.build(cfg, rules, clock)
    if settings.cric.url and grid is None:
        topology = CricTopology(settings.cric, Path(cfg.data_dir) / CRIC_SNAPSHOT,
                                max_response_mb=cap, clock=clock)
    daod: VolumeSource | None = None
    if settings.datadisk.url:
        daod = DaodAccounting(settings.datadisk, max_response_mb=cap)
    elif grid is not None:
        daod = SimulatedDaod(grid)
    return Components(cfg, engine, store, spool, DurableWriter(store, spool, buffer), sources,
                      topology, grid, rules, buffer, series_ids, daod, kept_ids, clock)
