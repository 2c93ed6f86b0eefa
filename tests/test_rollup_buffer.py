"""The roll-up buffer on its own: when it vouches for a window, pruning, a damaged file, its
level groups kept as JSON (and converted from the repr() text of the version before)."""

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from qmonit.core.levels import Aggregator
from qmonit.core.sample import make_sample, stable_id
from qmonit.stores.timeseries.rollup_buffer import RollupBuffer

H = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SLOT = timedelta(minutes=10)


def jobs(queue, value, when, **extra):
    return make_sample("jobs", {"panda_queue": queue}, {"jobs": value, **extra}, when)


def tables(buffer):
    with sqlite3.connect(buffer.path) as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'points_%'"))


def test_a_new_buffer_vouches_from_the_next_full_hour(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    assert not buffer.covers("jobs", H, H + HOUR)  # no file yet
    buffer.add([jobs("A", 1, H + 2 * SLOT)])  # created in the middle of 10:00
    assert not buffer.covers("jobs", H, H + HOUR)
    assert buffer.covers("jobs", H + HOUR, H + 2 * HOUR)
    assert buffer.covers("workers", H + HOUR, H + 2 * HOUR)  # nothing written is nothing
    assert not buffer.covers("jobs", H + HOUR, H + HOUR + SLOT)  # hours only


def test_means_maxima_and_overwritten_slots_as_line_protocol(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    buffer.add([jobs("A", 1, H - SLOT)])
    buffer.add([jobs("A", 10, H), jobs("B b", 4, H, state="text is skipped")])
    buffer.add([jobs("A", 30, H + SLOT), jobs("A", 20, H)])  # 10:00 again: overwrites 10
    buffer.add([jobs("B b", 8, H + 5 * SLOT), jobs("A", 99, H + HOUR)])
    buffer.add([jobs("C", 0.1, H + n * SLOT) for n in range(3)])
    assert buffer.covers("jobs", H, H + HOUR)
    at = int(H.timestamp())
    assert sorted(buffer.rollup_lines("jobs", H)) == [
        f"jobs,panda_queue=A jobs=25.0,jobs_max=30.0 {at}",
        f"jobs,panda_queue=B\\ b jobs=6.0,jobs_max=8.0 {at}",  # escaped as the encoder does
        f"jobs,panda_queue=C jobs={(0.1 + 0.1 + 0.1) / 3!r},jobs_max=0.1 {at}"]
    assert list(buffer.rollup_lines("workers", H)) == []
    assert list(buffer.rollup_lines("jobs", H + 5 * HOUR)) == []  # nothing written that hour


def test_many_fields_take_several_rows_and_a_changed_field_set_reads_the_store(tmp_path,
                                                                                 caplog):
    caplog.set_level(logging.INFO)
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    buffer.add([jobs("Z", 0, H - SLOT)])  # the buffer is complete from 10:00
    wide = {f"f{n:02d}": n for n in range(14)}
    buffer.add([make_sample("run", {"job": "x"}, wide, H + n * SLOT) for n in range(2)])
    [first, second] = sorted(buffer.rollup_lines("run", H), key=len, reverse=True)
    at = int(H.timestamp())
    assert first == "run,job=x " + ",".join(
        f"f{n:02d}={float(n)!r},f{n:02d}_max={float(n)!r}" for n in range(12)) + f" {at}"
    assert second == f"run,job=x f12=12.0,f12_max=12.0,f13=13.0,f13_max=13.0 {at}"
    buffer.add([jobs("A", 1, H), jobs("A{x}", 2, H)])
    buffer.add([jobs("A", 2, H + SLOT, cores=4)])  # cores from 10:10 on: one mean of jobs
    assert not buffer.covers("jobs", H, H + HOUR)
    assert buffer.covers("run", H, H + HOUR)
    assert "jobs,panda_queue=A changed its fields at 2026-11-21 10:10 UTC" in caplog.text
    assert sorted(buffer.rollup_lines("jobs", H))[1] == \
        f"jobs,panda_queue=A{{x}} jobs=2.0,jobs_max=2.0 {at}"  # braces are no placeholders


def test_rolled_up_windows_taints_and_dropped_hours(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    buffer.add([jobs("A", 1, H - SLOT)])
    buffer.add([jobs("A", 1, H), make_sample("workers", {"f": "x"}, {"workers": 2}, H),
                jobs("A", 2, H + HOUR)])
    buffer.taint([jobs("A", 2, H + HOUR)])
    assert not buffer.covers("jobs", H + HOUR, H + 2 * HOUR)
    buffer.rolled_up("jobs", H + HOUR)
    assert not buffer.covers("jobs", H, H + HOUR)  # rolled up: a re-run reads the store
    assert buffer.drop_rolled_up_hours() == 1  # 09:00; 10:00 still has workers to do
    assert tables(buffer) == [f"points_{int(t.timestamp())}" for t in (H, H + HOUR)]
    buffer.rolled_up("workers", H + HOUR)
    buffer.rolled_up("jobs", H + 2 * HOUR)
    assert buffer.drop_rolled_up_hours() == 2
    assert tables(buffer) == []
    buffer.rolled_up("jobs", H + HOUR)  # never goes back
    assert not buffer.covers("jobs", H + HOUR, H + 2 * HOUR)
    assert buffer.covers("jobs", H + 2 * HOUR, H + 3 * HOUR)


def test_hours_never_rolled_up_are_pruned_after_buffer_hours(tmp_path, caplog):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=3)
    for n in range(6):
        buffer.add([jobs("A", n, H + n * HOUR)])
        buffer.close()  # a new collect run each time
        buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=3)
    assert tables(buffer) == [f"points_{int((H + n * HOUR).timestamp())}" for n in (2, 3, 4, 5)]
    assert not buffer.covers("jobs", H + HOUR, H + 2 * HOUR)
    assert buffer.covers("jobs", H + 2 * HOUR, H + 3 * HOUR)
    assert "1 hour(s) older than 3 h were never rolled up from it" in caplog.text


def test_a_damaged_buffer_is_removed_and_starts_afresh(tmp_path, caplog):
    path = tmp_path / "b.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 100)
    buffer = RollupBuffer(path, keep_hours=12)
    with caplog.at_level(logging.WARNING):
        buffer.add([jobs("A", 1, H + 3 * SLOT)])
    assert f"roll-up buffer {path}: a write failed (file is not a database); removed" \
        in caplog.text
    assert not path.exists()
    buffer.add([jobs("A", 1, H + 4 * SLOT)])  # afresh: complete from the next hour only
    assert not buffer.covers("jobs", H, H + HOUR)
    assert buffer.covers("jobs", H + HOUR, H + 2 * HOUR)


def test_a_write_never_finished_leaves_its_slots_to_the_store(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    buffer.add([jobs("A", 1, H - SLOT)])
    done = buffer.begin([jobs("A", 1, H)])
    buffer.add([jobs("A", 1, H)])
    buffer.finish(done)
    assert buffer.covers("jobs", H, H + HOUR)
    killed = buffer.begin([jobs("A", 2, H + SLOT), jobs("B", 2, H + SLOT)])
    assert isinstance(killed, int)
    buffer.close()  # the run dies here: neither add() nor finish()
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    assert not buffer.covers("jobs", H, H + HOUR)
    assert buffer.covers("jobs", H + HOUR, H + 2 * HOUR)
    buffer.rolled_up("jobs", H + HOUR)  # rolled up from the store; the mark goes with it
    assert buffer.covers("jobs", H + HOUR, H + 2 * HOUR)


def grid_hour(buffer):
    """An hour of three queues (C lacks prod_source) and two findings, one flagged."""
    def q(queue, cloud, value, when, **tags):
        return make_sample("jobs", {"panda_queue": queue, "cloud": cloud, "state": "running",
                                    **tags}, {"jobs": value, "cores": 8 * value}, when)
    buffer.add([q("A", "DE", 0, H - SLOT, prod_source="user")])  # complete from 10:00
    for n, (a, b, c) in enumerate([(1, 10, 5), (2, 30, 6), (6, 20, 7)]):
        when = H + n * SLOT
        buffer.add([q("A", "DE", a, when, prod_source="user"),
                    q("B", "DE", b, when, prod_source="managed"),
                    q("C", "FR", c, when),
                    make_sample("suspicious", {"panda_queue": "A", "rule": "drop"},
                                {"flagged": 1, "current": a}, when),
                    make_sample("suspicious", {"panda_queue": "B", "rule": "drop"},
                                {"flagged": 0, "current": b}, when)])


def rolled_up_levels(buffer, measurement):
    levels = Aggregator()
    lines = list(buffer.rollup_lines(measurement, H, levels))
    return lines, sorted(levels.samples())


def test_the_levels_of_an_hour_are_the_sums_of_its_rolled_up_series(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    grid_hour(buffer)
    lines, levels = rolled_up_levels(buffer, "jobs")
    assert len(lines) == 3
    by_state = {s.tags: dict(s.fields) for s in levels if s.measurement == "jobs_by_state"}
    assert by_state == {
        (("cloud", "DE"), ("prod_source", "managed"), ("state", "running")):
            {"jobs": 20.0, "jobs_max": 30.0, "cores": 160.0, "cores_max": 240.0},
        (("cloud", "DE"), ("prod_source", "user"), ("state", "running")):
            {"jobs": 3.0, "jobs_max": 6.0, "cores": 24.0, "cores_max": 48.0},
        (("cloud", "FR"), ("state", "running")):  # C lacks the tag: left out, as in InfluxDB
            {"jobs": 6.0, "jobs_max": 7.0, "cores": 48.0, "cores_max": 56.0}}
    grid = {s.tags: dict(s.fields) for s in levels if s.measurement == "jobs_grid"}
    assert grid[(("state", "running"),)] == {"jobs": 6.0, "jobs_max": 7.0, "cores": 48.0,
                                             "cores_max": 56.0}  # the one without prod_source
    assert {s.measurement for s in levels} == {"jobs_by_queue", "jobs_by_status",
                                               "jobs_by_state", "jobs_grid"}
    assert {s.time for s in levels} == {H}
    _, flagged = rolled_up_levels(buffer, "suspicious")  # a threshold: summed in Python
    assert [(s.measurement, s.tags, dict(s.fields)) for s in flagged] == [
        ("suspicious_flagged", (("panda_queue", "A"), ("rule", "drop")),
         {"flagged": 1.0, "flagged_max": 1.0, "current": 3.0, "current_max": 6.0})]


def test_an_hour_begun_by_the_version_before_sums_its_levels_in_python(tmp_path):
    new = RollupBuffer(tmp_path / "new.sqlite", keep_hours=12)
    grid_hour(new)
    old = RollupBuffer(tmp_path / "old.sqlite", keep_hours=12)
    hour = int(H.timestamp())
    with sqlite3.connect(old.path) as conn:  # the hour's series table as it was made before
        conn.execute(f"CREATE TABLE series_{hour} (key INTEGER PRIMARY KEY, head TEXT, "
                     "chunk INTEGER, names TEXT, UNIQUE (head, chunk))")
    grid_hour(old)
    assert old._grouped(hour) == []  # no group columns: every level is summed in Python
    assert rolled_up_levels(old, "jobs") == rolled_up_levels(new, "jobs")
    assert rolled_up_levels(old, "suspicious") == rolled_up_levels(new, "suspicious")


def group_rows(buffer):
    """The hour's groups and which group each series row names, per level column."""
    hour = int(H.timestamp())
    with sqlite3.connect(buffer.path) as conn:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info(series_{hour})")
                   if row[1].startswith("g_")]
        return (sorted(conn.execute(f"SELECT id, grp FROM groups_{hour}")),
                sorted(conn.execute(f"SELECT key, {', '.join(columns)} FROM series_{hour}")))


def test_the_groups_are_json_data(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    grid_hour(buffer)
    groups, _ = group_rows(buffer)
    texts = [text for _, text in groups]
    assert '[["cloud","DE"],["prod_source","managed"],["state","running"]]' in texts
    assert '[["cloud","FR"],["state","running"]]' in texts  # C lacks prod_source
    assert all(group_id == stable_id(text) for group_id, text in groups)


def as_the_version_before(path):
    """Rewrite every hour's groups the way the version before kept them: repr() text, ids of
    that text, with its buffer's meta lacking the groups format."""
    with sqlite3.connect(path) as conn:
        hours = [name[len("groups_"):] for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'groups_%'")]
        for hour in hours:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info(series_{hour})")
                       if row[1].startswith("g_")]
            for group_id, text in conn.execute(f"SELECT id, grp FROM groups_{hour}").fetchall():
                group = tuple(tuple(pair) for pair in json.loads(text))
                old = stable_id(repr(group))
                conn.execute(f"UPDATE groups_{hour} SET id = ?, grp = ? WHERE id = ?",
                             (old, repr(group), group_id))
                for column in columns:
                    conn.execute(f"UPDATE series_{hour} SET {column} = ? WHERE {column} = ?",
                                 (old, group_id))
        conn.execute("DELETE FROM meta WHERE key = 'groups'")


def test_groups_kept_as_repr_text_are_converted_once_when_opened(tmp_path, caplog):
    new = RollupBuffer(tmp_path / "new.sqlite", keep_hours=12)
    grid_hour(new)
    before = RollupBuffer(tmp_path / "old.sqlite", keep_hours=12)
    grid_hour(before)
    before.close()
    as_the_version_before(before.path)
    assert group_rows(before)[0][0][1].startswith("((")
    caplog.set_level(logging.INFO)
    opened = RollupBuffer(before.path, keep_hours=12)
    assert opened.covers("jobs", H, H + HOUR)  # the hour is still read from the buffer
    assert caplog.text.count("the level groups of 2 hour(s) converted from repr() text to "
                             "JSON") == 1  # 09:50 and 10:00-10:20
    assert group_rows(opened) == group_rows(new)  # the same ids and JSON as written anew
    assert rolled_up_levels(opened, "jobs") == rolled_up_levels(new, "jobs")
    assert rolled_up_levels(opened, "suspicious") == rolled_up_levels(new, "suspicious")
    opened.close()
    RollupBuffer(before.path, keep_hours=12).covers("jobs", H, H + HOUR)  # opened again
    assert caplog.text.count("converted from repr() text") == 1  # once


def test_a_group_that_is_not_json_sends_the_window_to_the_store(tmp_path):
    buffer = RollupBuffer(tmp_path / "b.sqlite", keep_hours=12)
    grid_hour(buffer)
    hour = int(H.timestamp())
    with sqlite3.connect(buffer.path) as conn:  # an old version's process still running
        conn.execute(f"UPDATE groups_{hour} SET grp = ? WHERE grp = ?",
                     ("(('cloud', 'FR'), ('state', 'running'))",
                      '[["cloud","FR"],["state","running"]]'))
    with pytest.raises(sqlite3.DataError) as raised:
        rolled_up_levels(buffer, "jobs")
    assert str(raised.value) == (
        f"groups_{hour}: group \"(('cloud', 'FR'), ('state', 'running'))\" is not JSON pairs "
        "(Expecting value: line 1 column 1 (char 0))")
