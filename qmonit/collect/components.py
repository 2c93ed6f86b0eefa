"""Build the stores, the spool and the sources a configuration describes (no I/O happens here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from qmonit.core.config import Config
from qmonit.core.sample import Sample, SeriesIds, series_id
from qmonit.core.states.rules import SOURCES as RULE_SOURCES
from qmonit.core.states.rules import RuleSet, load_rules
from qmonit.simulation.grid import (
    SimulatedDaod,
    SimulatedGrid,
    SimulatedJobStats,
    SimulatedTopology,
)
from qmonit.sources.base import Source
from qmonit.sources.cric import CricTopology, NoTopology
from qmonit.sources.daod import DaodAccounting
from qmonit.sources.harvester import HarvesterWorkers
from qmonit.sources.htcondor import HTCondorSource
from qmonit.sources.panda import PandaJobStats
from qmonit.sources.slurm import SlurmSource
from qmonit.stores.sql import make_engine
from qmonit.stores.timeseries.base import TimeSeriesStore
from qmonit.stores.timeseries.durable import DurableWriter
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.influx import InfluxStore
from qmonit.stores.timeseries.rollup_buffer import FILE_NAME as BUFFER_FILE
from qmonit.stores.timeseries.rollup_buffer import RollupBuffer
from qmonit.stores.timeseries.spool import Spool

CRIC_SNAPSHOT = "cric_pandaqueue.json"


@dataclass
class Components:
    cfg: Config
    engine: Engine  # the SQL state store
    store: TimeSeriesStore
    spool: Spool
    writer: DurableWriter
    sources: list[Source]
    topology: Any  # has load(slot) -> Topology
    grid: SimulatedGrid | None = None
    rules: dict[str, RuleSet] | None = None
    buffer: RollupBuffer | None = None  # what the hourly roll-up reads instead of the store
    series_ids: Callable[[Sample], int] = series_id  # remembered with the embedded store
    daod: Any = None  # the datadisk job's DAOD accounting: has volumes(until)


def http_section(cfg: Config, name: str) -> dict[str, Any]:
    """A section of an HTTP client with the [http] cap on answers (make_session reads it)."""
    return {**cfg.section(name), "max_response_mb": cfg.get("http", "max_response_mb")}


def build(cfg: Config) -> Components:
    engine = make_engine(cfg.sql_url, cfg.get("sql", "password"))
    influx = http_section(cfg, "influxdb")
    series_ids: Callable[[Sample], int] = series_id
    if influx["url"]:
        store: TimeSeriesStore = InfluxStore(influx)
    else:
        series_ids = SeriesIds()
        store = EmbeddedStore(engine, series_ids)
    spool = Spool(cfg.spool_dir, int(cfg.get("spool", "max_mb") * 1024 * 1024))
    buffer = None  # the embedded store's own client path is the same SQL on a local file
    if isinstance(store, InfluxStore) and cfg.get("downsample", "buffer"):
        buffer = RollupBuffer(Path(cfg.data_dir) / BUFFER_FILE,
                              cfg.get("downsample", "buffer_hours"))
    enabled = cfg.get("sources", "enabled")
    sources: list[Source] = []
    grid = None
    topology: Any = NoTopology()
    if {"simulated", "simulated_batch"} & set(enabled):
        grid = SimulatedGrid(cfg.get("sources", "simulated_seed"),
                             cfg.get("sources", "simulated_scale"))
        topology = SimulatedTopology(grid)
    if "simulated" in enabled:
        sources.append(SimulatedJobStats(grid))
    rules = {source: load_rules(source, cfg.get("states", source)) for source in RULE_SOURCES}
    if "simulated_batch" in enabled:
        from qmonit.simulation.batch import (
            SimulatedFactory,
            SimulatedHarvester,
            SimulatedSlurm,
        )

        sources += [SimulatedHarvester(grid, rules["harvester"]),
                    SimulatedSlurm(rules["slurm"], rules["slurm_nodes"]),
                    SimulatedFactory(grid, rules["htcondor"], rules["apf"])]
    if "panda" in enabled:
        sources.append(PandaJobStats(http_section(cfg, "panda")))
    if "harvester" in enabled:
        sources.append(HarvesterWorkers(http_section(cfg, "panda"), rules["harvester"]))
    if "htcondor" in enabled:
        sources.append(HTCondorSource(cfg.section("htcondor"), rules["htcondor"], rules["apf"]))
    if "slurm" in enabled:
        sources.append(_slurm_source(cfg, rules["slurm"], rules["slurm_nodes"]))
    if cfg.get("cric", "url") and grid is None:
        topology = CricTopology(http_section(cfg, "cric"), Path(cfg.data_dir) / CRIC_SNAPSHOT)
    daod: Any = None
    if cfg.get("datadisk", "url"):
        daod = DaodAccounting(http_section(cfg, "datadisk"))
    elif grid is not None:
        daod = SimulatedDaod(grid)
    return Components(cfg, engine, store, spool, DurableWriter(store, spool, buffer), sources,
                      topology, grid, rules, buffer, series_ids, daod)


def _slurm_source(cfg: Config, rules: RuleSet, node_rules: RuleSet) -> Source:
    settings = cfg.section("slurm")
    if settings["backend"] == "pyslurm":
        from qmonit.sources.slurm_pyslurm import PyslurmSource  # only when configured

        return PyslurmSource(settings, rules)
    return SlurmSource(settings, rules, node_rules=node_rules)
