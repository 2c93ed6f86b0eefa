"""The configuration as typed sections, the one clock the parts ask, and `check` asking CRIC
itself (never its snapshot) through the topology's own probe."""

import json
import threading
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, datetime

import pytest

from qmonit.app import cli
from qmonit.collect.components import build
from qmonit.core import config
from qmonit.core import settings as settings_module
from qmonit.core.config import SCHEMA, default_section
from qmonit.core.sample import make_sample
from qmonit.core.settings import HtcondorSection, Settings, SlurmSection, section_name
from qmonit.sources.cric import PATH as CRIC_PATH
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 3, 7, tzinfo=UTC)
TYPE_OF_KIND = {"str": "str", "url": "str", "path": "str", "choice": "str", "duration": "str",
                "int": "int", "float": "float", "bool": "bool", "list": "tuple[str, ...]"}


class FixedClock:
    def __init__(self, now):
        self.at = now

    def now(self):
        return self.at

    def sleep(self, seconds: float, wake: threading.Event) -> None:
        raise AssertionError("nothing here sleeps")


def test_every_section_and_key_of_the_schema_is_a_typed_field():
    assert [f.name for f in fields(Settings)] == list(SCHEMA)
    for section in fields(Settings):
        typed = {f.name: f.type for f in fields(getattr(settings_module, section.type))}
        assert typed == {key: TYPE_OF_KIND[opt.kind]
                         for key, opt in SCHEMA[section.name].items()}, section.name


def test_a_loaded_configuration_is_typed_and_frozen(write_config):
    path = write_config({"sources": {"enabled": "simulated"},
                         "slurm": {"cluster": "ccslurm", "timeout_s": "45"},
                         "htcondor": {"schedds": "sched1, sched2"},
                         "downsample": {"max_daily_windows": "40"}})
    cfg = config.load(str(path), environ={"QMONIT_SPOOL_MAX_MB": "7"})
    assert cfg.settings.slurm == SlurmSection(cluster="ccslurm", backend="cli", format="text",
                                              bin_dir="", timeout_s=45.0,
                                              agent_queue_warning=1000, cycle_warning_s=120.0,
                                              atlas_sites=())
    assert cfg.settings.htcondor.schedds == ("sched1", "sched2")
    assert cfg.settings.spool.max_mb == 7.0
    assert cfg.settings.states.file_of("slurm_nodes") == ""
    assert cfg.settings.downsample.limit("max_daily_windows") == 40
    assert cfg.settings.downsample.limit("max_hourly_windows") == 72
    with pytest.raises(FrozenInstanceError):
        cfg.settings.slurm.cluster = "other"  # type: ignore[misc]


def test_default_section_fills_what_is_not_given():
    made = default_section(HtcondorSection, cluster="pool1")
    assert made == HtcondorSection(
        cluster="pool1", collector="", schedds=(),
        group_by=("Owner", "AccountingGroup", "x509UserProxyVOName"), factory_schedds=(),
        label_attribute="MATCH_APF_QUEUE", timeout_s=60.0, duty_cycle_warning=0.95,
        atlas_sites=())
    assert section_name(HtcondorSection) == "htcondor"
    with pytest.raises(KeyError, match="FixedClock is not a section of Settings"):
        section_name(FixedClock)


def test_the_parts_and_the_spool_ask_the_clock_they_are_given(make_config, tmp_path):
    clock = FixedClock(T)
    parts = build(make_config({"sources": {"enabled": "simulated"}}), clock)
    assert parts.clock is clock
    point = make_sample("jobs", {"panda_queue": "Q"}, {"jobs": 1.0},
                        datetime(2026, 11, 21, 11, 50, tzinfo=UTC))
    parts.spool.put([point], "10m")
    [spooled] = parts.spool.files()
    assert (spooled.created, spooled.oldest, spooled.points) == (T, point.time, 1)
    parts.engine.dispose()


CRIC_ANSWER = {
    "QUEUE_A": {"panda_resource": "QUEUE_A", "atlas_site": "SITE_A", "cloud": "FR",
                "tier": "T1", "status": "online", "corecount": 8},
    "QUEUE_B": {"panda_resource": "QUEUE_B", "atlas_site": "SITE_B", "cloud": "FR",
                "tier": "T2", "status": "brokeroff", "corecount": 1},
    "QUEUE_EMPTY": {},
}


def test_check_says_what_cric_answers(write_config, http, capsys):
    http.route(CRIC_PATH, Reply(200, json.dumps(CRIC_ANSWER)))
    cfg = write_config({"cric": {"url": http.url}, "sources": {"enabled": "panda"},
                        "panda": {"url": "http://127.0.0.1:9"}})
    cli.main(["-c", str(cfg), "check"])
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("cric")]
    assert line == f"cric   CRIC {http.url}{CRIC_PATH}  answers, 2 PanDA queues (1 empty records)"


def test_check_says_cric_failed_even_with_a_snapshot_to_fall_back_on(write_config, http,
                                                                      capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "cric_pandaqueue.json").write_text(json.dumps(
        {"fetched_at": T.isoformat(), "queues": {}}))
    http.route(CRIC_PATH, Reply(503, "<html><title>Service Unavailable</title></html>"))
    cfg = write_config({"qmonit": {"data_dir": str(data)}, "cric": {"url": http.url},
                        "sources": {"enabled": "panda"}, "panda": {"url": "http://127.0.0.1:9"}})
    assert cli.main(["-c", str(cfg), "check"]) == 1
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("cric")]
    assert line == (f"cric   CRIC {http.url}{CRIC_PATH}  FAILED: CRIC {http.url}{CRIC_PATH}: "
                    "HTTP 503: Service Unavailable")
