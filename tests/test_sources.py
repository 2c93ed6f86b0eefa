import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qmonit.collect.enrich import enrich_jobs
from qmonit.core import config
from qmonit.simulation.grid import SimulatedGrid, SimulatedJobStats
from qmonit.sources.base import SourceError
from qmonit.sources.cric import CricTopology, parse_pandaqueues
from qmonit.sources.panda import PATHS, PandaJobStats, parse_job_stats
from qmonit.stores.timeseries.lineprotocol import encode
from tests.conftest import DATA, SHARED_SAMPLES
from tests.servers import Reply

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "golden" / "panda_jobs.lp"
V1 = (DATA / "panda_job_stats_v1.json").read_text()
CRIC = (DATA / "cric_pandaqueue.json").read_text()


def settings(section, url, **extra):
    cfg = config.defaults({section: {"url": url, "timeout_s": "0.5", **extra},
                           "sources": {"enabled": "simulated"}})
    return getattr(cfg.settings, section)


def panda(url, **extra):
    return PandaJobStats(settings("panda", url, **extra))


def cric(url, tmp_path, **extra):
    return CricTopology(settings("cric", url, **extra), tmp_path / "cric.json")


@pytest.mark.parametrize("api, body", [
    ("v1", V1),
    ("legacy", json.dumps(json.loads(V1)["data"])),
])
def test_panda_and_cric_give_the_golden_line_protocol(http, tmp_path, api, body):
    http.route(PATHS[api], Reply(200, body))
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC))
    collection = panda(http.url, api=api, time_window="720").collect(T)
    topology = cric(http.url, tmp_path).load()
    lines = sorted(encode(s) for s in enrich_jobs(collection.samples, topology).samples)
    assert lines == GOLDEN.read_text().splitlines()
    assert collection.problems == []
    assert http.hits(PATHS[api])[0].query == {"time_window": ["720"]}


def test_panda_token_is_sent_as_bearer(http):
    http.route(PATHS["v1"], Reply(200, V1))
    panda(http.url, token="tok-abc").collect(T)
    assert http.hits(PATHS["v1"])[0].headers["Authorization"] == "Bearer tok-abc"


@pytest.mark.parametrize("reply, message", [
    (Reply(500, "Internal Server Error"), "HTTP 500: Internal Server Error"),
    (Reply(200, V1, delay=1.5), "timed out: no complete answer within 0.5 s (raise timeout_s if "
                                "the server is only slow)"),
    (Reply(200, '{"success": true, "data": {"Q": '), "response is not valid JSON "
                                                     "(Expecting value: line 1 column 33 "
                                                     "(char 32))"),
    (Reply(200, '{"success": false, "message": "DB connection lost", "data": {}}'),
     "the server reported failure: DB connection lost"),
    (Reply(200, '{"success": true, "message": "", "data": {}}'),
     "empty statistics (the server failed); nothing written"),
    (Reply(200, '[1, 2]'), "not a PanDA API v1 response (no 'success' key)"),
])
def test_panda_failures_raise_a_clear_error(http, reply, message):
    http.route(PATHS["v1"], reply)
    source = panda(http.url)
    with pytest.raises(SourceError) as caught:
        source.collect(T)
    assert str(caught.value) == f"PanDA {http.url}{PATHS['v1']}: {message}"


def test_legacy_empty_dict_is_an_error(http):
    http.route(PATHS["legacy"], Reply(200, "{}"))
    with pytest.raises(SourceError, match="empty statistics"):
        panda(http.url, api="legacy").collect(T)


def test_malformed_records_are_reported_and_skipped_the_rest_goes_through():
    data = {"Q1": {"managed": {"SCORE": {"running": 5, "failed": "many", "activated": -1}}},
            "Q2": ["not", "a", "dict"],
            "Q3": {"user": {"SCORE": {"running": True, "finished": 2}}}}
    collection = parse_job_stats(data, T, "PanDA test")
    assert [(s.tag("panda_queue"), s.tag("job_status"), s.field("jobs"))
            for s in collection.samples] == [("Q1", "running", 5.0),
                                             ("Q3", "finished", 2.0)]
    assert collection.problems == [
        "PanDA test: Q1/managed/SCORE/failed: count 'many' is not a number; skipped",
        "PanDA test: Q1/managed/SCORE/activated: count -1 is negative; skipped",
        "PanDA test: Q2: expected an object of prod_source labels, got list; skipped",
        "PanDA test: Q3/user/SCORE/running: count True is not a number; skipped",
    ]


def test_cric_down_uses_the_last_snapshot_and_says_so(http, tmp_path, caplog):
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC), Reply(503, "maintenance"))
    source = cric(http.url, tmp_path)
    fresh = source.load()
    assert (fresh.status, sorted(fresh.queues)) == ("fresh", ["AGLT2_UCORE", "SLAC_ES-lsf"])
    cached = source.load()
    assert cached.status == "cached"
    assert cached.queues == fresh.queues
    assert cached.message.startswith(f"CRIC {http.url}/api/atlas/pandaqueue/query/: HTTP 503: "
                                     f"maintenance; using the cached snapshot of ")
    assert "h old, 2 queues)" in cached.message
    assert cached.message in caplog.text


def test_cric_down_without_snapshot_tags_unknown(http, tmp_path):
    http.route("/api/atlas/pandaqueue/query/", Reply(500))
    topology = cric(http.url, tmp_path).load()
    assert (topology.status, topology.queues) == ("missing", {})
    assert topology.message.endswith("no cached snapshot yet: every queue is tagged unknown")


def test_old_snapshot_is_flagged(http, tmp_path):
    http.route("/api/atlas/pandaqueue/query/", Reply(200, CRIC), Reply(500))
    source = cric(http.url, tmp_path, max_snapshot_age_h="1")
    source.load()
    snapshot = json.loads(source.cache_path.read_text())
    snapshot["fetched_at"] = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    source.cache_path.write_text(json.dumps(snapshot))
    assert "older than [cric] max_snapshot_age_h = 1" in source.load().message


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="../shared/samples not present")
def test_real_cric_sample_parses():
    path = SHARED_SAMPLES / "eschanet+QMonit__test_references_test_input_agis_pandaqueue.json"
    queues, problems = parse_pandaqueues(json.loads(path.read_text()), "sample")
    assert problems == ["sample: queue 'hans': empty or not an object; skipped"]
    slac = queues["SLAC_ES-lsf"]
    assert (slac.panda_resource, slac.atlas_site, slac.queue_status, slac.site_state,
            slac.corecount, slac.corepower, slac.tier) == \
        ("SLAC_ES", "WT2", "offline", "ACTIVE", 4, 12.49, "T3D")  # CRIC status, site_state
    assert queues["AGLT2_HOSPITAL"].datadisks[0] == "BNL-OSG2_DATADISK"


def test_simulated_grid_is_deterministic_and_shaped_like_panda():
    T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # outside the daily outage
    one, two = SimulatedGrid(seed=5), SimulatedGrid(seed=5)
    assert one.job_stats(T) == two.job_stats(T)
    assert one.pandaqueues(T) == two.pandaqueues(T)
    assert SimulatedGrid(seed=6).job_stats(T) != one.job_stats(T)
    stats = one.job_stats(T)
    assert len(one.queues) >= 150
    assert len({q.record["cloud"] for q in one.queues.values()}) == 11
    for by_label in stats.values():
        for by_resource in by_label.values():
            for counts in by_resource.values():
                assert {"assigned", "activated", "running", "finished", "failed"} <= set(counts)


def test_scenario_incidents_shape_only_their_own_queues():
    """The detection replay's scenarios: a sharp drain at 2 %, a slow one 0.55 of its level
    half-way down its ramp, a noisy queue 45 % off its level either way, a rhythmic one 35 %
    above at 15:00 and below at 03:00, and one drained to 40 % on top of it, on its day
    only when one is given; every other queue answers as the plain grid does."""
    plain, replay = SimulatedGrid(seed=1), SimulatedGrid(seed=1)
    sharp, slow, noisy, rhythmic, _, drained, *_ = extra = replay.scenario_incidents()
    replay.incidents += extra
    assert {i.panda_queue for i in extra}.isdisjoint(i.panda_queue for i in plain.incidents)
    day = datetime(2026, 11, 21, tzinfo=UTC)

    def running(grid, slot, queue):
        return sum(c["running"] for r in grid.job_stats(slot)[queue].values() for c in r.values())

    for incident, hours_in, low, high in ((sharp, 1.0, 0.0, 0.05), (slow, 0.5, 0.45, 0.65)):
        at = day + timedelta(hours=incident.start_h + hours_in)
        share = running(replay, at, incident.panda_queue) / running(plain, at,
                                                                    incident.panda_queue)
        assert low <= share <= high, (incident.kind, share)
    at = day + timedelta(hours=5)
    shares = sorted(round(running(replay, at + n * timedelta(minutes=10), noisy.panda_queue)
                          / running(plain, at + n * timedelta(minutes=10), noisy.panda_queue), 1)
                    for n in range(12))
    assert all(share < 0.75 or share > 1.25 for share in shares) and shares[0] < 1 < shares[-1]
    peak, night = day + timedelta(hours=15), day + timedelta(hours=3)  # sin(±π/2): ±35 %
    assert 1.25 <= running(replay, peak, rhythmic.panda_queue) / running(
        plain, peak, rhythmic.panda_queue) <= 1.45
    assert 0.55 <= running(replay, night, rhythmic.panda_queue) / running(
        plain, night, rhythmic.panda_queue) <= 0.75
    assert 0.5 <= running(replay, peak, drained.panda_queue) / running(
        plain, peak, drained.panda_queue) <= 0.6  # 1.35 x 0.4
    judged = replace(drained, only_on=(day + timedelta(days=1)).date())
    assert judged.active(peak + timedelta(days=1)) and not judged.active(peak)
    at = day + timedelta(hours=3, minutes=30)
    touched = {i.panda_queue for i in extra}
    assert {q: v for q, v in replay.job_stats(at).items() if q not in touched} == \
        {q: v for q, v in plain.job_stats(at).items() if q not in touched}


def test_a_staged_replay_makes_each_layer_fail_on_its_own_on_the_judged_day():
    """stage_replay: the scenarios on the judged day only (but a queue's nature, its noise
    and rhythm, every day); PanDA brokers no work (nothing activated or assigned), assigned
    jobs pile up 20 times, transferring 50 times; a Harvester queue's workers fail, or wait
    in the batch system, while jobs wait for them; a unified queue's jobs move to
    its _HIMEM twin (the total stays). The day before, every such queue runs as it does plainly."""
    from qmonit.simulation.batch import SimulatedHarvester

    plain, replay = SimulatedGrid(seed=1), SimulatedGrid(seed=1)
    judged = datetime(2026, 11, 22, tzinfo=UTC)
    replay.stage_replay(judged.date())
    kinds = {i.kind: i for i in replay.incidents}
    assert {i.kind for i in replay.incidents if i.only_on is None} == {"noisy", "rhythmic"}
    assert kinds["drain"].only_on == judged.date() == kinds["resource_shift"].only_on
    layered = [kinds[k] for k in ("no_work", "assigned_backlog", "transfer_backlog",
                                  "pilots_failing", "pilots_queued", "resource_shift")]
    queues = {i.panda_queue for i in layered}
    assert len(queues) == 6 and queues <= set(replay.harvester_queues) - set(replay.apf_queues)
    shifted = kinds["resource_shift"].panda_queue
    [resource] = plain.queues[shifted].resources
    assert replay.queues[shifted].resources == (resource, f"{resource}_HIMEM")

    def counts(grid, incident, status, day=judged, hours_in=1.0):
        at = day + timedelta(hours=incident.start_h + hours_in)
        return sum(c.get(status, 0) for r in grid.job_stats(at)[incident.panda_queue].values()
                   for c in r.values())

    no_work = kinds["no_work"]
    assert counts(replay, no_work, "activated") == counts(replay, no_work, "assigned") == 0
    assert counts(replay, no_work, "running") < 0.15 * counts(plain, no_work, "running")
    for kind, status, low, high in (("assigned_backlog", "assigned", 12, 30),
                                    ("transfer_backlog", "transferring", 30, 80)):
        ratio = counts(replay, kinds[kind], status) / counts(plain, kinds[kind], status)
        assert low <= ratio <= high, (kind, ratio)
    score = counts(replay, kinds["resource_shift"], "running")
    at = judged + timedelta(hours=kinds["resource_shift"].start_h + 1)
    split = {r: c["running"] for r, c in replay.job_stats(at)[shifted]["managed"].items()}
    assert split[resource] < 0.3 * split[f"{resource}_HIMEM"]
    assert 0.85 <= score / counts(plain, kinds["resource_shift"], "running") <= 1.15

    harvester = SimulatedHarvester(replay, None)

    def workers(incident, day=judged):
        at = day + timedelta(hours=incident.start_h + 1)
        out: dict[str, int] = {}
        for by_type in harvester.worker_stats(at)[incident.panda_queue].values():
            for by_resource in by_type.values():
                for statuses in by_resource.values():
                    for status, n in statuses.items():
                        out[status] = out.get(status, 0) + n
        return out

    failing, queued = workers(kinds["pilots_failing"]), workers(kinds["pilots_queued"])
    assert "running" not in failing and failing["failed"] > 5 * failing.get("finished", 0) > 0
    assert queued["submitted"] > 10 * queued["running"]
    assert counts(replay, kinds["pilots_queued"], "activated") > 20 * counts(
        replay, kinds["pilots_queued"], "running")
    day_before = judged - timedelta(days=1)
    for incident in layered:
        at = day_before + timedelta(hours=incident.start_h + 1)
        if incident.kind != "resource_shift":
            assert replay.job_stats(at)[incident.panda_queue] == \
                plain.job_stats(at)[incident.panda_queue]
    assert workers(kinds["pilots_failing"], day_before)["running"] > 0


def test_simulated_incidents_happen():
    grid = SimulatedGrid(seed=1)
    day = datetime(2026, 11, 21, tzinfo=UTC)
    drain = grid.incident("drain")
    during = day + timedelta(hours=drain.start_h + 2)
    before = day + timedelta(hours=drain.start_h - 2)

    def running(slot, queue):
        return sum(c["running"] for r in grid.job_stats(slot)[queue].values() for c in r.values())

    assert running(during, drain.panda_queue) < 0.2 * running(before, drain.panda_queue)
    offline = grid.incident("offline")
    at = day + timedelta(hours=offline.start_h + 1)
    assert offline.panda_queue not in grid.job_stats(at)
    assert grid.pandaqueues(at)[offline.panda_queue]["status"] == "offline"
    outage = day + timedelta(hours=grid.incident("outage").start_h)
    with pytest.raises(SourceError, match="simulated outage"):
        SimulatedJobStats(grid).collect(outage)


def test_simulated_factories_and_cluster_go_through_the_real_parsers():
    from qmonit.collect.components import build

    cfg = config.defaults({"sources": {"enabled": "simulated_batch"}})
    sources = {s.name: s for s in build(cfg).sources}
    assert sorted(sources) == ["harvester", "htcondor", "slurm"]
    when = datetime(2026, 11, 21, 3, 10, tzinfo=UTC)
    for name, source in sources.items():
        collection = source.collect(when)
        assert collection.problems == [], name
        measurements = {s.measurement for s in collection.samples}
        assert measurements == {"harvester": {"workers"},
                                "slurm": {"batch_jobs", "batch_nodes", "batch_partitions",
                                          "batch_scheduler"},
                                "htcondor": {"workers", "batch_jobs", "batch_scheduler"}}[name]
    slurm = sources["slurm"]
    before = {j.job_id: j.native_state for j in slurm.collect(when).jobs}
    after = {j.job_id: j.native_state
             for j in slurm.collect(when + timedelta(minutes=10)).jobs}
    # the same jobs live on from one cycle to the next: some start, some leave, most stay
    assert len(before.keys() & after.keys()) > len(before) / 2
    assert any(before[k] == "PENDING" and after[k] == "RUNNING" for k in before.keys() & after)
    assert before.keys() - after.keys()

    # the factory's pilots too, as a schedd keeps them: one id from submission to the end
    factory = sources["htcondor"]
    pilots_before = {j.job_id: j.native_state for j in factory.collect(when).jobs}
    pilots_after = {j.job_id: j.native_state
                    for j in factory.collect(when + timedelta(minutes=10)).jobs}
    stayed = pilots_before.keys() & pilots_after.keys()
    assert len(stayed) > 0.6 * len(pilots_before)
    assert any(pilots_before[k] == "Idle" and pilots_after[k] == "Running" for k in stayed)
    assert not any(pilots_before[k] == "Running" and pilots_after[k] != "Running"
                   for k in stayed)  # a running pilot runs on until it leaves the queue


def test_a_simulated_pilot_is_idle_then_runs_then_goes_to_the_history_with_its_id():
    from qmonit.simulation.batch import HISTORY_SLOTS, _FactoryPool, _submitted

    grid = SimulatedGrid(seed=1)
    pool = _FactoryPool(grid)
    start = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    number = next(n for n, q in enumerate(grid.apf_queues)
                  if not any(i.panda_queue == q for i in grid.incidents))
    queue = grid.apf_queues[number]
    slot_number = int(start.timestamp()) // 600
    wait, run, end, code = _submitted(queue, slot_number)[0]
    cluster = slot_number * len(grid.apf_queues) + number
    seen = []
    for age in range(wait + run + HISTORY_SLOTS + 1):
        pool.slot = start + timedelta(minutes=10 * age)
        listed = [(ad["JobStatus"], ad["ExitCode"]) for ad in pool.query("true", [])
                  if (ad["ClusterId"], ad["ProcId"]) == (cluster, 0)]
        ended = [(ad["JobStatus"], ad["ExitCode"]) for ad in pool.history("", [])
                 if (ad["ClusterId"], ad["ProcId"]) == (cluster, 0)]
        seen.append((listed, ended))
    running = 5 if end == 5 else 2  # a pilot to be held is held where it would run
    assert seen == ([([(1, None)], [])] * wait + [([(running, None)], [])] * run
                    + [([], [(4 if end == 4 else 3, code)])] * HISTORY_SLOTS + [([], [])])


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="../shared/samples is absent")
def test_a_real_cric_record_lists_only_its_datadisk():
    from qmonit.sources.cric import parse_pandaqueues

    record = json.loads((SHARED_SAMPLES / "PanDAWMS+pilot3__queuedata.json").read_text())
    queues, problems = parse_pandaqueues({"CERN-PROD": record}, "CRIC")
    assert problems == []
    assert queues["CERN-PROD"].datadisks == ("CERN-PROD_DATADISK",)  # not DATATAPE, MCTAPE


def test_a_null_key_from_panda_is_unknown_not_the_text_null():
    from qmonit.sources.panda import parse_job_stats

    parsed = parse_job_stats({"Q": {"null": {"None": {"running": 3}}}}, T, "PanDA")
    assert [dict(s.tags) for s in parsed.samples] == [
        {"panda_queue": "Q", "prod_source": "unknown", "resource": "unknown",
         "job_status": "running"}]


def test_the_batch_layer_s_own_failures_show_on_the_simulated_slurm():
    """The replay's stalled controller and mass drain (issue 36 item 4): while each is
    active the simulated Slurm's sdiag says an agent queue of 15,000 and a 310 s backfill
    cycle, or its sinfo has 30 more nodes drained by the health check; their queues' pilots
    wait in the batch system as pilots_queued's; the day before, nothing of it."""
    from qmonit.core.states.rules import load_rules
    from qmonit.simulation.batch import SimulatedHarvester, SimulatedSlurm

    grid = SimulatedGrid(seed=1)
    judged = datetime(2026, 11, 22, tzinfo=UTC)
    grid.stage_replay(judged.date())
    kinds = {i.kind: i for i in grid.incidents}
    slurm = SimulatedSlurm(load_rules("slurm"), load_rules("slurm_nodes"), grid)
    harvester = SimulatedHarvester(grid, None)

    def health(at):
        collection = slurm.collect(at)
        [point] = [s for s in collection.samples if s.measurement == "batch_scheduler"]
        return (point.field("agent_queue_size"), point.field("bf_cycle_last_s"),
                sum(1 for n in collection.nodes if n.reason))

    def waiting(incident, at):
        statuses: dict[str, int] = {}
        for by_type in harvester.worker_stats(at)[incident.panda_queue].values():
            for by_resource in by_type.values():
                for counts in by_resource.values():
                    for status, n in counts.items():
                        statuses[status] = statuses.get(status, 0) + n
        return statuses

    stalled, drained = kinds["controller_stalled"], kinds["mass_drain"]
    at_stall = judged + timedelta(hours=stalled.start_h + 1)
    at_drain = judged + timedelta(hours=drained.start_h + 1)
    assert health(at_stall) == (15000.0, 310.0, 2)
    assert health(at_drain) == (0.0, 0.194289, 32)
    assert health(at_stall - timedelta(days=1)) == (0.0, 0.194289, 2)
    for incident, at in ((stalled, at_stall), (drained, at_drain)):
        statuses = waiting(incident, at)
        assert statuses["submitted"] > 10 * statuses.get("running", 0), incident.kind
