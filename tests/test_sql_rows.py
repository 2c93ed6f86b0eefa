"""The bulk row writes of the embedded store, on SQLite and on MariaDB: every row in, a row
whose key exists replaced (or kept), and a list of values that is not whole rows refused."""

import pytest
from sqlalchemy import select

from qmonit.stores.sql import ROWS_PER_INSERT, replace_flat, replace_rows
from qmonit.stores.timeseries.ts_tables import metadata, ts_points, ts_series


def point(n, value):
    return ("10m", "jobs", 600 * (n // 7), n, "jobs", value, None)


def test_flat_values_go_in_as_rows_and_replace_rows_with_the_same_key(state_engine):
    metadata.create_all(state_engine)
    count = 2 * ROWS_PER_INSERT + 50  # two full statements and the rest one row each
    with state_engine.begin() as conn:
        replace_flat(conn, ts_points, [v for n in range(count) for v in point(n, float(n))])
    with state_engine.begin() as conn:  # a re-run of the first three rows
        replace_flat(conn, ts_points, [v for n in range(3) for v in point(n, -1.0)])
    with state_engine.connect() as conn:
        rows = conn.execute(select(ts_points.c.series_id, ts_points.c.time, ts_points.c.value)
                            .order_by(ts_points.c.series_id)).all()
    assert [tuple(r) for r in rows] == [
        (n, 600 * (n // 7), -1.0 if n < 3 else float(n)) for n in range(count)]


def test_kept_rows_stay_as_they_were(state_engine):
    metadata.create_all(state_engine)
    with state_engine.begin() as conn:
        replace_rows(conn, ts_series, [(1, "jobs", "first"), (2, "jobs", "first")])
        replace_rows(conn, ts_series, [(2, "jobs", "second"), (3, "jobs", "second")],
                     keep_existing=True)
    with state_engine.connect() as conn:
        rows = conn.execute(select(ts_series).order_by(ts_series.c.series_id)).all()
    assert [tuple(r) for r in rows] == [(1, "jobs", "first"), (2, "jobs", "first"),
                                        (3, "jobs", "second")]


def test_values_that_are_not_whole_rows_are_refused(state_engine):
    metadata.create_all(state_engine)
    with state_engine.begin() as conn, pytest.raises(ValueError) as raised:
        replace_flat(conn, ts_points, list(point(0, 1.0)) + ["10m", "jobs"])
    assert str(raised.value) == "ts_points: 9 values are not rows of 7 columns"


def test_the_one_utc_conversion_at_the_sql_boundary():
    from datetime import UTC, datetime, timedelta, timezone

    from qmonit.stores.sql import naive, utc

    paris = datetime(2026, 11, 21, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert naive(paris) == datetime(2026, 11, 21, 10, 0)  # converted, not just stripped
    assert naive(datetime(2026, 11, 21, 10, 0)) == datetime(2026, 11, 21, 10, 0)
    assert utc(datetime(2026, 11, 21, 10, 0)) == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    assert (naive(None), utc(None)) == (None, None)
