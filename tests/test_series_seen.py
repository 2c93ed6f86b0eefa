"""Which series vanished: each cycle in turn (the fast path), re-runs and backfills (the
full comparison), on SQLite and on MariaDB."""

from datetime import UTC, datetime, timedelta

from qmonit.core.sample import Sample, series_id
from qmonit.stores.state import series

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
HORIZON = timedelta(hours=1)


def jobs(queue: str, count: float = 1.0) -> Sample:
    return Sample("jobs", (("job_status", "running"), ("panda_queue", queue)),
                  (("count", count),), T)


A, B, C = jobs("A"), jobs("B"), jobs("C")


def shape_reads(engine):
    """The statements run on `engine` from now on, and a count of those that read
    series_shapes since it was last asked."""
    from sqlalchemy import event

    statements = []
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql))

    def reads():
        shapes = [s for s in statements if "FROM series_shapes" in s]
        statements.clear()
        return len(shapes)
    return statements, reads


def seen(state_engine, samples, slot):
    vanished = series.seen_and_vanished(state_engine, "panda", {series_id(s): s for s in samples},
                                       slot, HORIZON)
    return sorted(dict(s.tags)["panda_queue"] for s in vanished)


def test_each_cycle_in_turn_returns_what_vanished_within_the_horizon(state_engine):
    assert seen(state_engine, [A, B, C], T) == []
    assert seen(state_engine, [A], T + SLOT) == ["B", "C"]
    assert seen(state_engine, [A, C], T + 2 * SLOT) == ["B"]  # C is back
    assert seen(state_engine, [A], T + 7 * SLOT) == ["C"]  # B last seen 70 min before: past
    assert seen(state_engine, [A, B], T + 8 * SLOT) == ["C"]  # B returns as a new streak
    [shape] = series.seen_and_vanished(state_engine, "panda", {series_id(A): A}, T + 9 * SLOT,
                                      HORIZON)[:1]
    assert (shape.measurement, shape.tags, shape.fields) == ("jobs", B.tags, ("count",))


def test_a_rerun_of_the_slot_zero_fills_what_the_rerun_lacks(state_engine):
    seen(state_engine, [A, B], T)
    assert seen(state_engine, [A, B], T + SLOT) == []
    assert seen(state_engine, [A], T + SLOT) == ["B"]  # re-run: B was there the first time


def test_an_older_slot_after_newer_ones_compares_every_series(state_engine):
    d = jobs("D")
    seen(state_engine, [A, B], T)
    seen(state_engine, [A, B, d], T + 3 * SLOT)
    # a backfill of T + SLOT: B absent then, C reported for the first time then; D was
    # first seen later, so it is no zero at T + SLOT
    assert seen(state_engine, [A, C], T + SLOT) == ["B"]
    # C now counts from T + SLOT; A and B were not moved back
    assert seen(state_engine, [A], T + 4 * SLOT) == ["B", "C", "D"]
    assert seen(state_engine, [A, B], T + 2 * SLOT) == ["C"]  # D not yet; C seen at T + SLOT


def test_a_running_process_reads_a_vanished_shape_once_and_a_fresh_one_reads_it(state_engine):
    """From a source's second cycle in the process on, the shapes of the vanished are kept
    (read once, not every cycle of the horizon); a series written anew with other fields is
    read again; another engine (another process) reads them from series_shapes."""
    from sqlalchemy import create_engine

    statements, reads = shape_reads(state_engine)
    seen(state_engine, [A, B, C], T)
    assert seen(state_engine, [A], T + SLOT) == ["B", "C"] and reads() == 1  # kept now
    assert seen(state_engine, [A], T + 2 * SLOT) == ["B", "C"] and reads() == 0
    with state_engine.begin() as conn:  # B forgotten, then back with another field set
        conn.exec_driver_sql(f"DELETE FROM series_seen WHERE series_id = {series_id(B)}")
    wider = Sample("jobs", B.tags, (("cores", 8.0), ("count", 1.0)), T)
    assert seen(state_engine, [A, wider], T + 3 * SLOT) == ["C"]
    statements.clear()
    vanished = series.seen_and_vanished(state_engine, "panda", {series_id(A): A},
                                       T + 4 * SLOT, HORIZON)
    assert sorted((dict(v.tags)["panda_queue"], v.fields) for v in vanished) == [
        ("B", ("cores", "count")), ("C", ("count",))]
    assert reads() == 1  # B's new shape; C's kept
    other = create_engine(state_engine.url)  # another process: nothing of it remembered
    vanished = series.seen_and_vanished(other, "panda", {series_id(A): A}, T + 5 * SLOT,
                                       HORIZON)
    assert sorted((dict(v.tags)["panda_queue"], v.fields) for v in vanished) == [
        ("B", ("cores", "count")), ("C", ("count",))]
    assert series._SHAPES[other].known == {}  # its first cycle (a cron run's only): none kept
    other.dispose()


def test_past_the_bound_the_shapes_of_the_cycle_s_own_vanished_stay(state_engine, monkeypatch):
    """Over SHAPES_KEPT, the memory keeps what the cycle asked for (the next asks for nearly
    the same) instead of forgetting everything and reading it all again."""
    d, e = jobs("D"), jobs("E")
    _, reads = shape_reads(state_engine)
    monkeypatch.setattr(series, "SHAPES_KEPT", 2)
    seen(state_engine, [A, B, C, d, e], T)
    assert seen(state_engine, [A, B, C], T + SLOT) == ["D", "E"] and reads() == 1
    assert set(series._SHAPES[state_engine].known) == {series_id(d), series_id(e)}
    assert seen(state_engine, [A], T + 2 * SLOT) == ["B", "C", "D", "E"] and reads() == 1
    # four asked for, two kept: the bound holds, and they are this cycle's
    known = series._SHAPES[state_engine].known
    assert len(known) == 2 and set(known) <= {series_id(s) for s in (B, C, d, e)}
    assert seen(state_engine, [A, B, C], T + 3 * SLOT) == ["D", "E"]
    assert series._SHAPES[state_engine].known.keys() <= {series_id(s) for s in (B, C, d, e)}
