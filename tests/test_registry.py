"""Every list of sources is the registry's (qmonit/sources/registry.py, and the simulated
grid's beside it): the CLI's choices, the configuration's known sources and [states] keys,
the rule sets and their files, the recorded-file readers, `states test`'s live source, and
the components a configuration builds. The core stage keeps the names as plain tuples (it
cannot import the sources); these tests fail when they and the registry differ."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from qmonit.app.cli import parser
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.core.states import rules
from qmonit.simulation.batch import SIMULATED
from qmonit.sources import kinds, recorded, registry
from qmonit.sources.htcondor import HTCondorSource
from qmonit.sources.slurm import SlurmSource

NOW = datetime(2026, 12, 5, 13, 7, tzinfo=UTC)


def test_the_rule_sets_are_the_sources_own_and_each_has_its_file() -> None:
    assert registry.RULE_SETS == ("panda", "harvester", "htcondor", "apf", "slurm",
                                  "slurm_nodes")
    assert rules.SOURCES == registry.RULE_SETS
    shipped = sorted(p.name for p in resources.files("qmonit.core.states").iterdir()
                     if p.name.endswith(".rules"))
    assert shipped == sorted(f"{name}.rules" for name in registry.RULE_SETS)
    assert tuple(config.SCHEMA["states"]) == registry.RULE_SETS


def test_the_configurations_known_sources_are_the_registrys() -> None:
    assert config.SOURCE_NAMES == (*(spec.name for spec in SIMULATED), *registry.NAMES)
    assert config.SOURCE_NAMES == ("simulated", "simulated_batch", "panda", "harvester",
                                   "htcondor", "slurm")
    for spec in registry.SOURCES:  # each source's section is one the schema has
        assert spec.section in config.SCHEMA, spec.name


def test_an_unknown_source_names_the_registrys_list() -> None:
    with pytest.raises(config.ConfigError) as err:
        config.defaults({"sources": {"enabled": "simulated,condor"}})
    assert "[sources] enabled: unknown source 'condor' (known: simulated, simulated_batch, " \
        "panda, harvester, htcondor, slurm)" in str(err.value)


def states_choices() -> list[str]:
    subparsers = next(a for a in parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    source = next(a for a in subparsers.choices["states"]._actions if a.dest == "source")
    return list(source.choices or ())


def test_the_cli_offers_the_registrys_rule_sets_and_cric() -> None:
    assert states_choices() == [*registry.RULE_SETS, *registry.TOPOLOGY_READERS]
    assert parser().parse_args(["states", "show", "apf"]).source == "apf"
    with pytest.raises(SystemExit):
        parser().parse_args(["states", "show", "condor"])


def test_every_choice_has_a_recorded_reader_and_the_kinds_it_takes() -> None:
    for name in states_choices():
        assert callable(registry.recorded_reader(name)), name
        assert name in kinds.READERS, name
    assert registry.recorded_reader("apf") is recorded.read_htcondor
    assert registry.recorded_reader("slurm_nodes") is recorded.read_slurm
    assert registry.recorded_reader("cric") is recorded.read_cric


def test_states_test_asks_the_source_that_shows_each_rule_set() -> None:
    assert {name: registry.source_of_rule_set(name).name for name in registry.RULE_SETS} == {
        "panda": "panda", "harvester": "harvester", "htcondor": "htcondor",
        "apf": "htcondor", "slurm": "slurm", "slurm_nodes": "slurm"}
    with pytest.raises(KeyError, match="unknown source 'condor' .known: panda, harvester, "
                                       "htcondor, slurm."):
        registry.spec_of("condor")


def test_a_recorded_reader_returns_counts_samples_and_problems(tmp_path: Path) -> None:
    ads = [{"MyType": "Job", "ClusterId": 7, "ProcId": 0, "JobStatus": 1, "Owner": "alice"},
           {"MyType": "Job", "ClusterId": 7, "ProcId": 1, "JobStatus": 2, "Owner": "alice"},
           {"MyType": "Job", "ClusterId": 8, "ProcId": 0, "JobStatus": 9, "Owner": "bob"}]
    path = tmp_path / "condor_q.json"
    path.write_text(json.dumps(ads))
    built_in = {name: rules.load_rules(name, "") for name in registry.RULE_SETS}
    found = recorded.read_recorded("htcondor", registry.recorded_reader("htcondor"),
                                   [path, path], built_in, NOW)
    assert dict(found.counts) == {("Idle", "", "pending", ""): 2,
                                  ("Running", "", "running", ""): 2}
    assert found.problems == [f"{path}: ad 2: JobStatus 9 is not 1-7; skipped"] * 2
    assert sorted({s.measurement for s in found.samples}) == ["batch_jobs"]


def test_components_build_the_enabled_sources_through_their_entries(tmp_path: Path) -> None:
    cfg = config.defaults({
        "sources": {"enabled": "simulated,simulated_batch,slurm,htcondor"},
        "sql": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
        "qmonit": {"data_dir": str(tmp_path)}})
    parts = build(cfg)
    assert [type(s).__name__ for s in parts.sources] == [
        "SimulatedJobStats", "SimulatedHarvester", "SimulatedSlurm", "SimulatedFactory",
        "HTCondorSource", "SlurmSource"]
    assert isinstance(parts.sources[-1], SlurmSource)
    assert isinstance(parts.sources[-2], HTCondorSource)
    assert list(parts.rules or {}) == list(registry.RULE_SETS)
    assert parts.grid is not None
    parts.engine.dispose()
