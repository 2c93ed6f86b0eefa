"""What a careless operator does: a slot in the future, a manual spool replay, ..."""

import subprocess
import sys
from argparse import Namespace
from datetime import UTC, datetime, timedelta

from qmonit import commands
from qmonit.components import build
from qmonit.sample import make_sample
from qmonit.stores import state
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
    state.create_tables(parts.engine)
    counts = {("Q", "managed", "SCORE"): ({"cloud": "DE"}, {"running": 5.0})}
    state.upsert_queue_stats(parts.engine, {("OLD", "managed", "SCORE"):
                                            ({"cloud": "DE"}, {"running": 1.0})},
                             datetime(2099, 1, 1, tzinfo=UTC))  # written by an older version
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    state.upsert_queue_stats(parts.engine, counts, now - timedelta(minutes=10))
    assert state.newest_slot(parts.engine) == now - timedelta(minutes=10)


def test_a_manual_spool_replay_rewinds_the_roll_ups(make_config, influx_db, capsys):
    parts = build(make_config({"influxdb": influx_db, "sources": {"enabled": "simulated"}}))
    state.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    state.set_watermark(parts.engine, "jobs", "hourly", T + timedelta(hours=3), T)
    state.set_watermark(parts.engine, "jobs", "daily", T.replace(hour=0) + timedelta(days=1), T)
    parts.spool.put([make_sample("jobs", {"panda_queue": "A"}, {"jobs": 1},
                                 T + timedelta(minutes=40))], "10m")
    assert commands.spool(Namespace(action="replay"), parts) == 0
    assert capsys.readouterr().out.startswith("replayed 1 file(s), 1 points to InfluxDB")
    assert state.watermark(parts.engine, "jobs", "hourly") == T  # 12:40 late: 12:00 again
    assert state.watermark(parts.engine, "jobs", "daily") == T.replace(hour=0)
