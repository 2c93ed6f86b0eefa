"""Write-time aggregates: every level point is the sum of its per-queue points, at every
resolution, after re-runs, zero-fill, a store outage replayed from the spool and the roll-ups,
on every roll-up path of InfluxDB and on the embedded store."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from qmonit.collect.components import build
from qmonit.collect.cycle import collect
from qmonit.core.levels import (
    ALL,
    ANY,
    CHOICES,
    LEVELS,
    Level,
    aggregate,
    choice,
    choose,
    combined,
    levels_of,
)
from qmonit.core.sample import make_sample
from qmonit.derive.job import derive
from qmonit.rollup.downsample import rollup
from qmonit.stores.state import schema
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.lineprotocol import series_head, split_head
from qmonit.stores.timeseries.ts_tables import ts_points, ts_series

T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SLOT = timedelta(minutes=10)
DAY = datetime(2026, 11, 21, tzinfo=UTC)
# 00:40 to 01:30: the simulated offline incident starts at 01:00 (its queue is zero-filled)
SLOTS = [DAY + timedelta(minutes=40) + SLOT * n for n in range(6)]
DOWN = SLOTS[3]  # the store is down at 01:10; 01:20 replays it from the spool


# -- the sums, by hand -------------------------------------------------------------------------

def test_a_level_point_is_the_sum_of_its_group_per_time_and_field():
    level = Level("jobs_by_cloud", "jobs", ("cloud", "state"))
    samples = [
        make_sample("jobs", {"cloud": "DE", "state": "running", "q": "A"},
                    {"jobs": 3, "cores": 24, "note": "text is not summed"}, T),
        make_sample("jobs", {"cloud": "DE", "state": "running", "q": "B"}, {"jobs": 0.0}, T),
        make_sample("jobs", {"cloud": "DE", "state": "running", "q": "C"},
                    {"jobs": 5, "cores": 5}, T),
        make_sample("jobs", {"cloud": "DE", "state": "running", "q": "A"},
                    {"jobs": 7, "cores": 56}, T + SLOT),
        make_sample("jobs", {"state": "running", "q": "D"}, {"jobs": 1}, T),  # no cloud tag
        make_sample("workers", {"cloud": "DE", "state": "running"}, {"workers": 9}, T),
    ]
    from qmonit.core.levels import Aggregator

    got = sorted(Aggregator([level]).add_samples(samples).samples())
    assert got == sorted([
        make_sample("jobs_by_cloud", {"cloud": "DE", "state": "running"},
                    {"jobs": 8, "cores": 29}, T),
        make_sample("jobs_by_cloud", {"cloud": "DE", "state": "running"},
                    {"jobs": 7, "cores": 56}, T + SLOT),
        make_sample("jobs_by_cloud", {"state": "running"}, {"jobs": 1}, T),
    ])


def test_every_level_keeps_only_tags_of_its_base_and_is_not_rolled_up_itself():
    bases = {"jobs": {"panda_queue", "atlas_site", "cloud", "country", "tier", "site_state",
                      "queue_type", "resource_type", "prod_source", "resource", "job_status",
                      "state"},
             "workers": {"factory", "factory_type", "panda_queue", "atlas_site", "cloud",
                         "job_type", "resource_type", "worker_status", "state"},
             "batch_jobs": {"cluster", "scheduler", "partition", "owner", "group", "state",
                            "native_state", "reason"},
             "suspicious": {"panda_queue", "atlas_site", "cloud", "prod_source", "resource",
                            "rule", "severity"}}
    for level in LEVELS:
        assert set(level.tags) <= bases[level.base], level.measurement
        assert (set(level.tags) < bases[level.base]) == (level.above is None)
        assert level.measurement.startswith(f"{level.base}_"), level.measurement
    assert aggregate(aggregate([make_sample("jobs", {"cloud": "DE", "state": "running"},
                                            {"jobs": 1}, T)])) == []


def test_levels_summed_per_answer_then_combined_equal_the_levels_of_all_samples():
    """collect sums each source's answer as it comes and the zeros it adds apart: combined,
    they are exactly aggregate() of everything (fractional HS06, a zero carrying a field the
    group's answered members lack, a group of zeros only)."""
    def jobs(queue, cloud, status, time=T, **fields):
        return make_sample("jobs", {"panda_queue": queue, "atlas_site": queue[:2], "cloud": cloud,
                                    "tier": "T2", "state": "run", "job_status": status,
                                    "prod_source": "managed", "resource_type": "SCORE"},
                           fields, time)

    answered = [jobs("DE1", "DE", "running", jobs=3, hs06=0.1),
                jobs("DE2", "DE", "running", jobs=5, hs06=0.2),
                jobs("DE3", "DE", "running", jobs=1, hs06=0.7),
                jobs("FR1", "FR", "failed", jobs=2, hs06=1 / 3),
                jobs("FR1", "FR", "failed", time=T + SLOT, jobs=4)]
    zeros = [jobs("DE4", "DE", "running", jobs=0.0, hs06=0.0, cores=0.0),
             jobs("US1", "US", "finished", jobs=0.0)]
    workers = [make_sample("workers", {"factory": "h1", "factory_type": "harvester",
                                       "cloud": "DE", "worker_status": "running",
                                       "state": "run", "panda_queue": "DE1"},
                           {"workers": 4}, T)]
    together = aggregate(answered + zeros + workers)
    apart = combined([aggregate(answered), aggregate(zeros), aggregate(workers)])
    assert sorted(apart) == sorted(together)
    # by queue 7 (DE1-4, FR1 twice, US1); by status, by state, grid 4 each (DE, FR twice,
    # US); workers 1
    assert len(together) == 20
    [de] = [p for p in apart if p.measurement == "jobs_grid" and p.time == T
            and p.tag("job_status") == "running"]
    assert de.fields == (("cores", 0.0), ("hs06", 0.1 + 0.2 + 0.7), ("jobs", 9.0))


def test_series_keys_read_back_as_influxdb_reads_them():
    for measurement, tags in [("jobs", (("a", "x y"), ("b", "c,d=e"))), ("m x,y", ()),
                              ("jobs", (("k", "a\\,b"), ("n", "line\nbreak")))]:
        head = series_head(measurement, tags)
        back = split_head(head)
        # InfluxDB keeps \n as the two characters it was written as
        assert back == (measurement, tuple((k, v.replace("\n", "\\n")) for k, v in tags))


# -- what the hidden variables choose ----------------------------------------------------------

def test_the_cheapest_level_that_has_every_narrowed_tag_is_chosen():
    everything: dict[str, bool] = {}
    assert choose("jobs_m", everything) == "jobs_grid"
    assert choose("jobs_m", {"prod_source": False, "state": False}) == "jobs_grid"
    assert choose("jobs_m", {"cloud": False, "prod_source": False}) == "jobs_by_state"
    assert choose("jobs_m", {"site": False}) == "jobs_by_queue"
    assert choose("jobs_m", {"queue": False}) == "jobs_by_queue"
    assert choose("jobs_m", {"site": False, "prod_source": False}) == "jobs"
    assert choose("jobs_split_m", everything, "cloud") == "jobs_by_state"
    assert choose("jobs_split_m", everything, "atlas_site") == "jobs_by_queue"
    assert choose("jobs_split_m", everything, "panda_queue") == "jobs_by_queue"
    assert choose("jobs_split_m", everything, "job_status") == "jobs_grid"
    assert choose("jobs_split_m", everything, "prod_source") == "jobs_grid"
    assert choose("jobs_split_m", {"cloud": False}, "job_status") == "jobs_by_status"
    assert choose("jobs_split_m", {"tier": False}, "job_status") == "jobs"
    assert choose("jobs_status_m", everything) == "jobs_grid"
    assert choose("jobs_status_m", {"cloud": False}) == "jobs_by_status"
    assert choose("jobs_status_m", {"queue": False}) == "jobs"
    assert choose("workers_m", everything) == "workers_by_cloud"
    assert choose("workers_m", {"queue": False}) == "workers"
    assert choose("batch_jobs_m", {"partition": False}) == "batch_jobs_by_partition"
    assert choose("batch_jobs_m", {"owner": False}) == "batch_jobs"


def test_meta_rows_mark_the_filters_a_level_cannot_answer():
    rows = list(choice("jobs_m").rows())
    assert [(order, measurement) for order, _, measurement in rows] == [
        (0, "jobs"), (1, "jobs_by_queue"), (2, "jobs_by_status"), (3, "jobs_by_state"),
        (4, "jobs_grid")]
    by_queue = rows[1][1]
    assert by_queue == {"choice": "jobs_m", "group_by": "state", "cloud": ANY, "tier": ANY,
                        "site": ANY, "queue": ANY, "prod_source": ALL, "resource_type": ALL,
                        "state": ANY}
    assert all(value == ANY for key, value in rows[0][1].items()
               if key not in ("choice", "group_by"))


def test_the_variables_resolve_in_influxdb_as_in_python(influx_store):
    """The meta.levels table and each variable's query, on a real InfluxDB, for All, one value
    and several values of every filter."""
    influx_store.write_levels(CHOICES)
    for one in CHOICES:
        for narrowed in [None, *(variable for variable, _ in one.filters)]:
            for value in (".*", "DE", "(DE|FR)"):
                if narrowed is None and value != ".*":
                    continue
                query = one.query().replace("$group_by", "panda_queue")
                for variable, _ in one.filters:
                    query = query.replace(f"${variable}$",
                                          (value if variable == narrowed else ".*") + "$")
                got = influx_store.rows(query)
                split = "panda_queue" if one.split == "$group_by" else one.split
                expected = choose(one.name, {narrowed: value == ".*"} if narrowed else {},
                                  split)
                assert [row["last"] for row in got] == [expected], (one.name, narrowed, value)


# -- the sums in the stores --------------------------------------------------------------------

@pytest.fixture(params=["buffer", "server", "client", "embedded"])
def grid(request, make_config):
    influx = {} if request.param == "embedded" else request.getfixturevalue("influx_db")
    cfg = make_config({
        "influxdb": influx,
        "sources": {"enabled": "simulated, simulated_batch"},
        "downsample": {"mode": "client" if request.param == "client" else "auto",
                       "buffer": "true" if request.param == "buffer" else "false"},
        "logging": {"level": "ERROR"},
    })
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    parts.path = request.param
    return parts


def points(parts, rp: str, measurement: str) -> dict[tuple, dict[str, float]]:
    """{(tags, time): numeric fields} of every point of a measurement in a retention policy."""
    out: dict[tuple, dict[str, float]] = {}
    if isinstance(parts.store, EmbeddedStore):
        query = (select(ts_series.c.series_key, ts_points.c.time, ts_points.c.field,
                        ts_points.c.value)
                 .select_from(ts_points.join(ts_series,
                                             ts_series.c.series_id == ts_points.c.series_id))
                 .where(ts_points.c.rp == rp, ts_series.c.measurement == measurement,
                        ts_points.c.value.is_not(None)))
        with parts.engine.connect() as conn:
            for key, when, name, value in conn.execute(query):
                tags = tuple(map(tuple, json.loads(key)[1]))
                out.setdefault((tags, when), {})[name] = value
        return out
    for series in parts.store.query(f'SELECT * FROM "{rp}"."{measurement}" GROUP BY *'):
        tags = tuple(sorted((k, v) for k, v in (series.get("tags") or {}).items() if v))
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            when = row.pop("time")
            out[(tags, when)] = {k: v for k, v in row.items() if v is not None}
    return out


def summed(base: dict[tuple, dict[str, float]], level: Level) -> dict[tuple, dict[str, float]]:
    """The level's points computed from the base's points, by hand."""
    out: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (tags, when), fields in base.items():
        if level.above and not fields.get(level.above[0], 0) > level.above[1]:
            continue
        key = tuple((k, v) for k, v in tags if k in level.tags)
        for name, value in fields.items():
            out[(key, when)][name] += value
    return {key: dict(fields) for key, fields in out.items()}


def assert_same(got: dict, expected: dict, what: str, means: bool) -> None:
    """Counts and their maxima exactly; HS06 and (rolled up) means are sums of non-integers,
    equal but for the order of adding."""
    assert got.keys() == expected.keys(), what
    for key, fields in expected.items():
        assert got[key].keys() == fields.keys(), (what, key)
        for name, value in fields.items():
            if not name.startswith("hs06") and (name.endswith("_max") or not means):
                assert got[key][name] == value, (what, key, name)
            else:
                assert got[key][name] == pytest.approx(value, rel=1e-12), (what, key, name)


def take_store_down(parts):
    """A real outage: InfluxDB on a closed port, or the embedded store's table gone."""
    if isinstance(parts.store, EmbeddedStore):
        with parts.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ts_points RENAME TO ts_points_away"))
        return lambda: _rename_back(parts)
    url = parts.store.url
    parts.store.url = "http://127.0.0.1:9"

    def back():
        parts.store.url = url
    return back


def _rename_back(parts):
    with parts.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ts_points_away RENAME TO ts_points"))


def test_levels_equal_the_per_queue_sums_at_every_resolution(grid):
    parts = grid
    reports = []
    for slot in SLOTS:
        if slot == DOWN:
            back = take_store_down(parts)
            reports.append(collect(parts, slot))
            derive(parts, slot)
            back()
        else:
            reports.append(collect(parts, slot))
            derive(parts, slot)
    reports.append(collect(parts, SLOTS[1]))  # a re-run of 00:50
    assert reports[3].delivery.spooled > 0 and reports[4].replay.points > 0
    assert parts.spool.files() == []
    assert sum(s.zero_filled for r in reports for s in r.sources) > 0
    assert all(r.levels > 0 for r in reports)

    hourly = rollup(parts, "hourly", DAY + timedelta(hours=2, minutes=5), progress=False)
    daily = rollup(parts, "daily", DAY + timedelta(days=1, minutes=5), progress=False)
    assert hourly.errors == [] and daily.errors == []
    # the buffer holds 01:00 of every measurement (00:00: it began within the hour)
    assert hourly.buffered == (len(hourly.done) if parts.path == "buffer" else 0)
    assert not set(hourly.done) & {level.measurement for level in LEVELS}

    for base in ("jobs", "workers", "batch_jobs", "suspicious"):
        for rp in ("10m", "1h", "1d"):
            base_points = points(parts, rp, base)
            assert base_points, (base, rp)
            for level in levels_of(base):
                assert_same(points(parts, rp, level.measurement), summed(base_points, level),
                            f"{parts.path} {rp} {level.measurement}", means=rp != "10m")
    flagged = points(parts, "10m", "suspicious_flagged")
    assert flagged and all(fields["flagged"] == 1.0 for fields in flagged.values())
    # the daily level is the sum of the daily per-series means: one point per group and day
    assert {when for _, when in points(parts, "1d", "jobs_by_state")} == {DAY.timestamp()}
