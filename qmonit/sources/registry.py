"""Every source qmonit collects from, declared once: its name (as `[sources] enabled` and
`source_status` say it), its configuration section, the state rule sets it maps with, the
measurements it writes, its builder and its reader of recorded outputs. The components,
`qmonit states show/test` and recorded input read this list; adding a source is its module
and one entry here (and its configuration section in qmonit/core/config.py).

The core stage cannot import this one, so qmonit/core/config.py (SOURCE_NAMES) and
qmonit/core/states/rules.py (SOURCES, the rule files shipped) keep the names as plain
tuples; tests/test_registry.py fails when they and this list differ. The simulated grid's
sources are a later stage (qmonit/simulation/batch.py SIMULATED, built on the grid they
share); qmonit/collect/components.py reads both lists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qmonit.core.config import Config
from qmonit.core.states.rules import RuleSet
from qmonit.sources import harvester, htcondor, panda, recorded, slurm
from qmonit.sources.base import Source
from qmonit.sources.recorded import RecordedReader
from qmonit.support.clock import Clock

# its Source(s) from a configuration, the rule sets in force and the clock they ask
Build = Callable[[Config, Mapping[str, RuleSet], Clock], list[Source]]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    section: str  # its configuration section
    rule_sets: tuple[str, ...]  # the state rules it maps with (`qmonit states show NAME`)
    measures: tuple[str, ...]  # the measurements it writes
    build: Build  # its Source(s) from a configuration and the rule sets in force
    # reads one recorded output for `qmonit states test RULE_SET --input FILE`; which kinds
    # of file each rule set takes: qmonit/sources/kinds.py READERS[rule_set]
    read_recorded: RecordedReader


SOURCES = (
    SourceSpec("panda", "panda", ("panda",), ("jobs",), panda.from_config,
               recorded.read_panda),
    SourceSpec("harvester", "panda", ("harvester",), ("workers",), harvester.from_config,
               recorded.read_harvester),
    SourceSpec("htcondor", "htcondor", ("htcondor", "apf"),
               ("batch_jobs", "batch_nodes", "workers"), htcondor.from_config,
               recorded.read_htcondor),
    SourceSpec("slurm", "slurm", ("slurm", "slurm_nodes"),
               ("batch_jobs", "batch_nodes", "batch_partitions"), slurm.from_config,
               recorded.read_slurm),
)
NAMES = tuple(spec.name for spec in SOURCES)
# every state rule set, in the order the sources declare them
RULE_SETS = tuple(dict.fromkeys(rule for spec in SOURCES for rule in spec.rule_sets))
# recorded outputs of what is not a collect source: CRIC's pandaqueues, the topology
TOPOLOGY_READERS: dict[str, RecordedReader] = {"cric": recorded.read_cric}


def spec_of(name: str) -> SourceSpec:
    """The source of that name; a KeyError naming the known ones."""
    for spec in SOURCES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown source {name!r} (known: {', '.join(NAMES)})")


def source_of_rule_set(rule_set: str) -> SourceSpec:
    """The source whose answers show the native states of a rule set (apf: htcondor)."""
    return next(spec for spec in SOURCES if rule_set in spec.rule_sets)


def recorded_reader(name: str) -> RecordedReader:
    """The reader of recorded outputs for a rule set (or for cric, the topology)."""
    if name in TOPOLOGY_READERS:
        return TOPOLOGY_READERS[name]
    return source_of_rule_set(name).read_recorded
