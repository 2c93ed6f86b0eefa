"""Window statistics computed in the database: the same hand-checked numbers on every store."""

from datetime import UTC, datetime, timedelta

import pytest

from qmonit.core.sample import make_sample
from qmonit.stores.sql import make_engine
from qmonit.stores.timeseries.aggregate import GroupedQuery, Stats
from qmonit.stores.timeseries.embedded import EmbeddedStore

T = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)


def points():
    out = []
    for i, value in enumerate([5, 1, 9, 3, 7, 2, 8]):
        when = T + i * SLOT
        # two series of one group: the queue's CRIC status changed, the old one is zero-filled
        out.append(make_sample("jobs", {"q": "A", "state": "online"}, {"jobs": value}, when))
        out.append(make_sample("jobs", {"q": "A", "state": "offline"}, {"jobs": 1}, when))
        if i < 4:
            out.append(make_sample("jobs", {"q": "B", "state": "online"}, {"jobs": 10 * value},
                                   when))
    out.append(make_sample("jobs", {"q": "A", "state": "online"}, {"jobs": 1000}, T + 7 * SLOT))
    out.append(make_sample("jobs", {"q": "A", "state": "online"}, {"jobs": 1000}, T - SLOT))
    return out


EXPECTED = {
    ("A",): Stats(mean=6.0, count=7),  # A per slot (two series summed): 6 2 10 4 8 3 9
    ("B",): Stats(mean=45.0, count=4),  # B per slot: 50 10 90 30
}
QUERY = GroupedQuery("jobs", "jobs", ("q",), "10m", T, T + 7 * SLOT, 600)


@pytest.fixture(params=["influxdb", "sqlite", "mariadb"])
def store(request, tmp_path):
    if request.param == "influxdb":
        return request.getfixturevalue("influx_store")
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ts.sqlite'}")
    else:
        engine = make_engine(request.getfixturevalue("mariadb_url"))
    embedded = EmbeddedStore(engine)
    embedded.init({})
    return embedded


def test_grouped_stats_match_hand_computed_values(store):
    store.write(points())
    store.write([make_sample("jobs", {"q": "A", "state": "online"}, {"jobs": 7}, T)], "1h")
    assert store.grouped_stats(QUERY) == EXPECTED


def test_a_shorter_window(store):
    store.write(points())
    plain = GroupedQuery("jobs", "jobs", ("q",), "10m", T + 4 * SLOT, T + 7 * SLOT, 600)
    assert store.grouped_stats(plain) == {("A",): Stats(mean=(8 + 3 + 9) / 3, count=3)}


def test_last_time(store):
    store.write(points())
    assert store.last_time("jobs", "jobs", {"q": "B"}) == T + 3 * SLOT
    assert store.last_time("jobs", "jobs", {"q": "A", "state": "offline"}) == T + 6 * SLOT
    assert store.last_time("jobs", "jobs", {"q": "nobody's"}) is None


def test_only_some_series(store):
    store.write(points())
    only_b = GroupedQuery("jobs", "jobs", ("q",), "10m", T, T + 7 * SLOT, 600,
                          only=("q", ("B", "it's")))
    assert store.grouped_stats(only_b) == {("B",): EXPECTED[("B",)]}
