"""What a careless operator does: a slot in the future, a manual spool replay, ..."""

import subprocess
import sys
from argparse import Namespace
from datetime import UTC, datetime, timedelta

import pytest

from qmonit.app import commands
from qmonit.collect.components import build
from qmonit.core.sample import make_sample
from qmonit.stores.state import queues, schema, watermarks
from tests.servers import environ_without_qmonit

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def qmonit(*args):
    return subprocess.run([sys.executable, "-m", "qmonit", *args], capture_output=True,
                          text=True, env=environ_without_qmonit())


def test_a_slot_in_the_future_is_refused_and_writes_nothing(write_config, tmp_path):
    path = write_config({"sources": {"enabled": "simulated"}})
    done = qmonit("-c", str(path), "run", "collect", "--at", "2099-01-01T00:05Z")
    assert done.returncode == 2
    assert done.stderr == ("qmonit run collect: --at 2099-01-01T00:05Z is in the future; a slot "
                           "can be collected, derived or rolled up only once it has begun "
                           "(nothing done)\n")
    assert sorted(p.name for p in (tmp_path / "data").glob("**/*")) == []  # nothing written


def test_state_rows_of_a_future_slot_do_not_freeze_the_current_state(make_config):
    parts = build(make_config({"sources": {"enabled": "simulated"}}))
    schema.create_tables(parts.engine)
    counts = {("Q", "managed", "SCORE"): ({"cloud": "DE"}, {"running": 5.0})}
    queues.upsert_queue_stats(parts.engine, {("OLD", "managed", "SCORE"):
                                            ({"cloud": "DE"}, {"running": 1.0})},
                             datetime(2099, 1, 1, tzinfo=UTC))  # written by an older version
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    queues.upsert_queue_stats(parts.engine, counts, now - timedelta(minutes=10))
    assert queues.newest_slot(parts.engine, now) == now - timedelta(minutes=10)


def test_a_manual_spool_replay_rewinds_the_roll_ups(make_config, influx_db, capsys):
    parts = build(make_config({"influxdb": influx_db, "sources": {"enabled": "simulated"}}))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    watermarks.set_watermark(parts.engine, "jobs", "hourly", T + timedelta(hours=3), T)
    watermarks.set_watermark(parts.engine, "jobs", "daily", T.replace(hour=0) + timedelta(days=1),
                             T)
    parts.spool.put([make_sample("jobs", {"panda_queue": "A"}, {"jobs": 1},
                                 T + timedelta(minutes=40))], "10m")
    assert commands.spool(Namespace(action="replay"), parts) == 0
    assert capsys.readouterr().out.startswith("replayed 1 file(s), 1 points to InfluxDB")
    assert watermarks.watermark(parts.engine, "jobs", "hourly") == T  # 12:40 late: 12:00 again
    assert watermarks.watermark(parts.engine, "jobs", "daily") == T.replace(hour=0)


def configured(write_config, sections):
    return write_config({"sources": {"enabled": "simulated"}, **sections})


@pytest.mark.parametrize("sections, message", [
    ({"sql": {"url": "not a url at all"}},
     "[sql] url: not a database URL such as mysql+mysqlconnector://user@host/qmonit or "
     "sqlite:////path/qmonit.sqlite"),
    ({"sql": {"url": "postgresql://qmonit@db/qmonit"}},
     "[sql] url: postgresql is not supported (MySQL/MariaDB or SQLite)"),
    ({"logging": {"file": "/nonexistent-dir/qmonit.log"}},
     "[logging] file: directory /nonexistent-dir does not exist"),
    ({"spool": {"max_mb": "0"}}, "[spool] max_mb = '0': must be more than 0"),
    ({"derive": {"coverage_min": "7"}}, "[derive] coverage_min = '7': must be at most 1"),
])
def test_configuration_mistakes_exit_2_naming_the_key(write_config, sections, message):
    path = configured(write_config, sections)
    done = qmonit("-c", str(path), "check")
    assert (done.returncode, done.stderr) == (2, f"qmonit: configuration error: {path}: "
                                                 f"{message}\n")


def test_an_environment_variable_for_no_key_is_an_error(write_config):
    path = configured(write_config, {})
    done = subprocess.run([sys.executable, "-m", "qmonit", "-c", str(path), "check"],
                          capture_output=True, text=True,
                          env={**environ_without_qmonit(), "QMONIT_PANDA_TOKN": "x",
                               "QMONIT_BENCH_BUFFER": "false"})  # not a section: not ours
    assert done.returncode == 2
    assert done.stderr == (f"qmonit: configuration error: {path}: QMONIT_PANDA_TOKN: no such "
                           "key [panda] tokn (did you mean `token`?) (known: url, api, "
                           "time_window, token, cert, key, verify_tls, ca_bundle, timeout_s)\n")


def test_an_unreadable_configuration_file_is_a_clear_error(write_config, monkeypatch):
    # root reads any file; the service account meets EACCES, made here at open()
    from pathlib import Path

    from qmonit.core import config
    path = configured(write_config, {})
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(config.ConfigError) as failed:
        config.load(str(path), environ={})
    assert str(failed.value).startswith(f"{path}: cannot be read (Permission denied); qmonit "
                                        "runs as ")


@pytest.mark.parametrize("command", [["run", "collect"], ["suspicious"]])
def test_running_before_init_says_what_to_do(write_config, tmp_path, command):
    path = configured(write_config, {})
    done = qmonit("-c", str(path), *command)
    assert done.returncode == 1
    assert done.stderr == (f"qmonit {command[0]}: the state store sqlite:///"
                           f"{tmp_path / 'data' / 'qmonit.sqlite'} has no tables yet (alerts, "
                           "batch_clusters, batch_job_hosts, ...): run `qmonit init` "
                           "first\n")
