"""Every source qmonit reads, declared once: its name (as `[sources] enabled` and
`source_status` say it), its configuration section, the state rule sets it maps with, what
it writes, and its builder. The CLI's choices, configuration checks, the `[states]` keys,
`qmonit states show/test` and the components all read this list; adding a source is its
module, its builder and one entry here.

Builders are named as "module:function" and imported when a configuration enables them:
the core stage names the sources without importing them (they are a later stage).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SourceSpec:
    name: str
    section: str  # its configuration section
    rule_sets: tuple[str, ...]  # the state rules it maps with (`qmonit states show NAME`)
    measures: tuple[str, ...]  # the measurements it writes
    builder: str  # "module:function" taking (cfg, rules, grid), returning its Source(s)
    simulated: bool = False  # part of the simulated grid (needs the shared SimulatedGrid)


SOURCES = (
    SourceSpec("simulated", "sources", (), ("jobs",), "qmonit.simulation.grid:from_config",
               simulated=True),
    SourceSpec("simulated_batch", "sources", (),
               ("workers", "batch_jobs", "batch_nodes", "batch_partitions"),
               "qmonit.simulation.batch:from_config", simulated=True),
    SourceSpec("panda", "panda", ("panda",), ("jobs",), "qmonit.sources.panda:from_config"),
    SourceSpec("harvester", "panda", ("harvester",), ("workers",),
               "qmonit.sources.harvester:from_config"),
    SourceSpec("htcondor", "htcondor", ("htcondor", "apf"),
               ("batch_jobs", "batch_nodes", "workers"), "qmonit.sources.htcondor:from_config"),
    SourceSpec("slurm", "slurm", ("slurm", "slurm_nodes"),
               ("batch_jobs", "batch_nodes", "batch_partitions"),
               "qmonit.sources.slurm:from_config"),
)
NAMES = tuple(spec.name for spec in SOURCES)
# every state rule set, in the order the sources declare them
RULE_SETS = tuple(dict.fromkeys(rule for spec in SOURCES for rule in spec.rule_sets))


def spec_of(name: str) -> SourceSpec:
    for spec in SOURCES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown source {name!r} (known: {', '.join(NAMES)})")


def source_of_rule_set(rule_set: str) -> SourceSpec:
    """The source whose answers show the native states of a rule set (apf: htcondor)."""
    return next(spec for spec in SOURCES if rule_set in spec.rule_sets)


def builder(spec: SourceSpec) -> Callable[..., list[Any]]:
    module, _, function = spec.builder.partition(":")
    built: Callable[..., list[Any]] = getattr(importlib.import_module(module), function)
    return built
