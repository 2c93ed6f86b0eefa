"""The roll-up stated once (qmonit/core/rollup_spec.py), run on its four paths over the same raw
points: InfluxDB's SELECT ... INTO (server), the statistics queried and written back
(client), the embedded store's SQL, and the roll-up buffer. Each must write exactly the
points listed here, levels included; a statistic added to the spec reaches all four."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from qmonit.collect.components import build
from qmonit.core.rollup_spec import ROLLUP, Statistic
from qmonit.core.sample import make_sample
from qmonit.rollup.downsample import rollup
from qmonit.stores.state import schema
from qmonit.stores.timeseries.embedded import EmbeddedStore
from qmonit.stores.timeseries.ts_tables import ts_points, ts_series

DAY = datetime(2026, 11, 21, tzinfo=UTC)
SLOT = timedelta(minutes=10)
PATHS = ["server", "client", "embedded", "buffer"]


def at(hh_mm: str) -> datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes)


A = "cloud=DE,panda_queue=A,state=running"
B = "cloud=DE,panda_queue=B,state=running"
D = "cloud=FR,panda_queue=D,state=queued"
DE, FR, RUNNING, QUEUED = "cloud=DE,state=running", "cloud=FR,state=queued", \
    "state=running", "state=queued"
S1, S2 = "panda_queue=A,rule=drop", "panda_queue=B,rule=drop"
NODES = "cluster=c1,state=idle"


def tags_of(text: str) -> dict[str, str]:
    return dict(pair.split("=") for pair in text.split(","))


def raw_points() -> list[list]:
    """The cycles as collect writes them, one write per slot. 09:50 holds only A (the
    roll-up buffer begins there, so its path reads 09:00 from the store); the cycle of
    10:20 failed (absent, not zero); B is zero after 10:00 and has vanished by 11:00; D
    is zero all of 10:00; A carries a text field at 10:00, which is not rolled up."""
    jobs = {"A": {"09:50": 4, "10:00": 10, "10:10": 20, "10:30": 40, "10:40": 50,
                  "10:50": 60, "11:00": 100},
            "B": {"10:00": 6, "10:10": 0, "10:30": 0, "10:40": 3, "10:50": 0},
            "D": {"10:00": 0, "10:10": 0, "10:30": 0, "10:40": 0, "10:50": 0, "11:00": 7,
                  "11:10": 8}}
    flagged = {"10:00": (0, 0.5), "10:10": (1, 2.5), "10:30": (1, 2), "10:40": (0, 0),
               "10:50": (0, 0)}
    nodes = {"10:00": 3, "10:10": 3, "10:30": 2, "10:40": 2, "10:50": 2}
    cycles: dict[str, list] = {}
    for queue, values in jobs.items():
        for when, value in values.items():
            fields = {"jobs": value, **({"note": "text"} if (queue, when) == ("A", "10:00")
                                        else {})}
            cycles.setdefault(when, []).append(
                make_sample("jobs", tags_of({"A": A, "B": B, "D": D}[queue]), fields, at(when)))
    for when, (flag, score) in flagged.items():
        cycles[when] += [
            make_sample("suspicious", tags_of(S1), {"flagged": flag, "score": score}, at(when)),
            make_sample("suspicious", tags_of(S2), {"flagged": 0, "score": 0.25}, at(when))]
        cycles[when].append(make_sample("batch_nodes", tags_of(NODES), {"nodes": nodes[when]},
                                        at(when)))
    return [cycles[when] for when in sorted(cycles)]


def dict_tags(tags: tuple) -> str:
    return ",".join(f"{k}={v}" for k, v in tags)


def point(measurement: str, tags: str, when: datetime, **fields: float) -> tuple:
    return (measurement, tuple(sorted(tags_of(tags).items())), when), \
        {name: float(value) for name, value in fields.items()}


def jobs_hour(when: datetime, a: tuple, b: tuple | None, d: tuple | None) -> list[tuple]:
    """The jobs points of an hour from (mean, max) of A, B and D: each series, its
    jobs_by_queue point, and the sums of its groups in the three coarser levels."""
    series = {A: a, B: b, D: d}
    out = []
    for tags, stats in series.items():
        if stats is not None:
            out += [point("jobs", tags, when, jobs=stats[0], jobs_max=stats[1]),
                    point("jobs_by_queue", tags, when, jobs=stats[0], jobs_max=stats[1])]
    running = [s for s in (a, b) if s is not None]
    for level, de, fr in (("jobs_by_status", DE, FR), ("jobs_by_state", DE, FR),
                          ("jobs_grid", RUNNING, QUEUED)):
        out.append(point(level, de, when, jobs=sum(s[0] for s in running),
                         jobs_max=sum(s[1] for s in running)))
        if d is not None:
            out.append(point(level, fr, when, jobs=d[0], jobs_max=d[1]))
    return out


SUSPICIOUS = [  # 10:00: S1 flagged 0, 1, 1, 0, 0 (mean 0.4 > 0: in the level); S2 never
    point("suspicious", S1, at("10:00"), flagged=2 / 5, flagged_max=1, score=5 / 5,
          score_max=2.5),
    point("suspicious", S2, at("10:00"), flagged=0, flagged_max=0, score=0.25,
          score_max=0.25),
    point("suspicious_flagged", S1, at("10:00"), flagged=2 / 5, flagged_max=1, score=1,
          score_max=2.5),
    point("batch_nodes", NODES, at("10:00"), nodes=12 / 5, nodes_max=3),
]
HOURLY = dict([
    *jobs_hour(at("09:00"), (4, 4), None, None),
    *jobs_hour(at("10:00"), ((10 + 20 + 40 + 50 + 60) / 5, 60), (9 / 5, 6), (0, 0)),
    *jobs_hour(at("11:00"), (100, 100), None, ((7 + 8) / 2, 8)),
    *SUSPICIOUS,
])
DAILY = dict([  # a day's mean is the mean of its cycles: A 7 of them, D 7, B 5
    *jobs_hour(DAY, ((4 + 10 + 20 + 40 + 50 + 60 + 100) / 7, 100), (9 / 5, 6), (15 / 7, 8)),
    *[point(measurement, dict_tags(tags), DAY, **fields)
      for (measurement, tags, _), fields in SUSPICIOUS],
])


@pytest.fixture(params=PATHS)
def parts_on(request, make_config):
    """Components for one path; the raw points written through the writer, as collect
    writes them (with the buffer: to the store and the buffer)."""
    path = request.param
    influx = {} if path == "embedded" else request.getfixturevalue("influx_db")
    parts = build(make_config({
        "influxdb": influx, "sources": {"enabled": "simulated"},
        "downsample": {"mode": "client" if path == "client" else "auto",
                       "buffer": "true" if path == "buffer" else "false"}}))
    schema.create_tables(parts.engine)
    parts.store.init({"10m": "INF", "1h": "INF", "1d": "INF"})
    for cycle in raw_points():
        delivery = parts.writer.write(cycle)
        assert (delivery.written, delivery.rejected) == (len(cycle), 0)
    parts.path = path
    return parts


def rolled_up(parts, rp: str) -> dict[tuple, dict[str, float]]:
    """{(measurement, tags, time): numeric fields} of every point in `rp` but the roll-up
    jobs' own qmonit_run."""
    out: dict[tuple, dict[str, float]] = {}
    if isinstance(parts.store, EmbeddedStore):
        query = (select(ts_series.c.series_key, ts_points.c.time, ts_points.c.field,
                        ts_points.c.value)
                 .select_from(ts_points.join(ts_series,
                                             ts_series.c.series_id == ts_points.c.series_id))
                 .where(ts_points.c.rp == rp, ts_points.c.value.is_not(None)))
        with parts.engine.connect() as conn:
            for key, when, name, value in conn.execute(query):
                measurement, tags = json.loads(key)
                out.setdefault((measurement, tuple(map(tuple, tags)),
                                datetime.fromtimestamp(when, UTC)), {})[name] = value
    else:
        for measurement in [row["name"] for row in parts.store.rows("SHOW MEASUREMENTS")]:
            for series in parts.store.query(f'SELECT * FROM "{rp}"."{measurement}" GROUP BY *'):
                tags = tuple(sorted((k, v) for k, v in (series.get("tags") or {}).items() if v))
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    when = datetime.fromtimestamp(row.pop("time"), UTC)
                    out[(measurement, tags, when)] = {k: v for k, v in row.items()
                                                      if v is not None}
    return {key: fields for key, fields in out.items() if key[0] != "qmonit_run"}


def test_the_expected_levels_are_the_sums_by_hand():
    assert HOURLY[("jobs_grid", (("state", "running"),), at("10:00"))] == \
        {"jobs": 37.8, "jobs_max": 66.0}  # A 36 + B 1.8, 60 + 6
    assert DAILY[("jobs_by_state", (("cloud", "FR"), ("state", "queued")), DAY)] == \
        {"jobs": 15 / 7, "jobs_max": 8.0}
    assert (len(HOURLY), len(DAILY)) == (5 + 12 + 10 + 4, 12 + 4)


def test_every_path_writes_the_same_hourly_and_daily_points(parts_on):
    hourly = rollup(parts_on, "hourly", at("12:07"), progress=False)
    assert hourly.errors == []
    assert hourly.done == {"jobs": 3, "suspicious": 2, "batch_nodes": 2}
    # the buffer vouches from 10:00 on: jobs' 09:00 is read from the store
    assert hourly.buffered == (7 - 1 if parts_on.path == "buffer" else 0)
    assert hourly.mode == ("client" if parts_on.path in ("client", "embedded") else "server")
    assert rolled_up(parts_on, "1h") == HOURLY

    daily = rollup(parts_on, "daily", DAY + timedelta(days=1, minutes=30), progress=False)
    assert (daily.errors, daily.done, daily.buffered) == \
        ([], {"jobs": 1, "suspicious": 1, "batch_nodes": 1, "qmonit_run": 1}, 0)
    assert rolled_up(parts_on, "1d") == DAILY


def test_a_statistic_added_to_the_spec_reaches_every_path(parts_on):
    with_min = replace(ROLLUP, statistics=(*ROLLUP.statistics,
                                           Statistic("_min", influxql="min", sql="min")))
    report = rollup(parts_on, "hourly", at("12:07"), progress=False, spec=with_min)
    assert report.errors == []
    assert report.buffered == (6 if parts_on.path == "buffer" else 0)
    got = rolled_up(parts_on, "1h")
    assert got.keys() == HOURLY.keys()
    for key, fields in HOURLY.items():  # every field now has its minimum beside its mean
        means = [name for name in fields if not name.endswith("_max")]
        assert sorted(got[key]) == sorted([*fields, *(f"{name}_min" for name in means)]), key
    ten = at("10:00")
    assert [got[key]["jobs_min"] for key in (
        ("jobs", tuple(sorted(tags_of(A).items())), ten),
        ("jobs", tuple(sorted(tags_of(B).items())), ten),
        ("jobs_by_status", tuple(sorted(tags_of(DE).items())), ten),
        ("jobs_grid", tuple(sorted(tags_of(QUEUED).items())), at("11:00")))] == [10, 0, 10, 7]
    assert got[("suspicious_flagged", tuple(sorted(tags_of(S1).items())), ten)] == {
        "flagged": 0.4, "flagged_max": 1, "flagged_min": 0, "score": 1, "score_max": 2.5,
        "score_min": 0}
