"""Every list of sources is the registry's: the CLI's choices, the configuration's known
sources and [states] keys, the rule sets, `states test`'s live source, and the components
a configuration builds."""

from __future__ import annotations

from importlib import resources

import pytest

from qmonit.app.cli import parser
from qmonit.collect.components import build
from qmonit.core import config, registry
from qmonit.core.states import rules


def test_the_rule_sets_are_the_sources_own_and_each_has_its_file():
    assert registry.RULE_SETS == ("panda", "harvester", "htcondor", "apf", "slurm",
                                  "slurm_nodes")
    assert rules.SOURCES == registry.RULE_SETS
    shipped = sorted(p.name for p in resources.files("qmonit.core.states").iterdir()
                     if p.name.endswith(".rules"))
    assert shipped == sorted(f"{name}.rules" for name in registry.RULE_SETS)
    assert sorted(config.SCHEMA["states"]) == sorted(registry.RULE_SETS)


def test_the_cli_offers_the_registrys_rule_sets():
    states = parser().parse_args(["states", "show", "apf"])
    assert states.source == "apf"
    with pytest.raises(SystemExit):
        parser().parse_args(["states", "show", "condor"])


def test_an_unknown_source_names_the_registrys_list():
    with pytest.raises(config.ConfigError) as err:
        config.defaults({"sources": {"enabled": "simulated,condor"}})
    assert "[sources] enabled: unknown source 'condor' (known: simulated, simulated_batch, " \
        "panda, harvester, htcondor, slurm)" in str(err.value)


def test_states_test_asks_the_source_that_shows_each_rule_set():
    assert {name: registry.source_of_rule_set(name).name for name in registry.RULE_SETS} == {
        "panda": "panda", "harvester": "harvester", "htcondor": "htcondor",
        "apf": "htcondor", "slurm": "slurm", "slurm_nodes": "slurm"}


def test_components_build_the_enabled_sources_through_their_builders(tmp_path):
    cfg = config.defaults({"sources": {"enabled": "simulated,simulated_batch"},
                           "sql": {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"},
                           "qmonit": {"data_dir": str(tmp_path)}})
    parts = build(cfg)
    assert [type(s).__name__ for s in parts.sources] == [
        "SimulatedJobStats", "SimulatedHarvester", "SimulatedSlurm", "SimulatedFactory"]
    assert sorted(parts.rules or {}) == sorted(registry.RULE_SETS)
    for spec in registry.SOURCES:  # every builder resolves
        assert callable(registry.builder(spec))
    parts.engine.dispose()
