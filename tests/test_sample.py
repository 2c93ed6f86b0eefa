"""Series ids: stable across processes, and the same when remembered."""

import json
import random
from datetime import UTC, datetime

from qmonit.core.sample import Sample, SeriesIds, make_sample, series_id, stable_id

T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_a_series_id_is_a_hash_of_measurement_and_tags_the_same_in_every_process():
    sample = make_sample("jobs", {"panda_queue": "Q", "job_status": "running"}, {"jobs": 1}, T)
    assert series_id(sample) == -3903421562843474462
    later = sample._replace(fields=(("jobs", 2.0),), time=T.replace(hour=11))
    assert series_id(later) == series_id(sample)
    assert series_id(sample._replace(measurement="workers")) != series_id(sample)


def test_the_direct_text_is_the_json_text_for_every_name_whatever_it_holds():
    """The id was, and must stay, the hash of the compact JSON: ids stored in series_seen
    by earlier versions name the same series. Names drawn from what JSON escapes."""
    letters = 'aZ0_-.:/ ,=[]{}~"\\\x00\x01\t\n\x7f\x80é€\u2028\U0001f600'
    rng = random.Random(7)

    def name(shortest: int) -> str:
        return "".join(rng.choices(letters, k=rng.randint(shortest, 5)))

    for _ in range(20_000):
        tags = tuple((name(1), name(0)) for _ in range(rng.randint(0, 4)))
        sample = Sample(name(1), tags, (("jobs", 1.0),), T)
        expected = stable_id(json.dumps([sample.measurement, tags], separators=(",", ":")))
        assert series_id(sample) == expected, sample


def test_remembered_ids_are_the_same_ids_and_the_memory_is_bounded():
    ids = SeriesIds(limit=2)
    samples = [make_sample("jobs", {"q": name}, {"jobs": 1}, T) for name in "ABC"]
    assert [ids(s) for s in samples] == [series_id(s) for s in samples]
    assert len(ids._known) == 1  # full at the third: forgotten, then C remembered
    assert ids(samples[2]) == series_id(samples[2])


def test_ids_worked_out_elsewhere_are_given_back_for_those_very_samples_until_forgotten():
    ids = SeriesIds()
    a = make_sample("jobs", {"q": "A"}, {"jobs": 1}, T)
    b = make_sample("jobs", {"q": "B"}, {"jobs": 1}, T)
    same_tags_other_measurement = Sample("workers", a.tags, a.fields, T)
    equal_not_same = make_sample("jobs", {"q": "A"}, {"jobs": 2}, T)
    ids.remember([a, b], [11, 22])  # as a fetch in another process hands them over
    assert (ids(a), ids(b)) == (11, 22)
    # only those tag tuples: an equal copy, or another measurement, is worked out
    assert ids(equal_not_same) == series_id(a)
    assert ids(same_tags_other_measurement) == series_id(same_tags_other_measurement)
    ids.forget()
    assert (ids(a), ids(b)) == (series_id(a), series_id(b))


def test_run_sample_is_how_every_job_records_a_run():
    from qmonit.core.sample import run_sample
    from qmonit.support import redact

    slot = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    ok = run_sample("collect", "panda", slot, {"points": 26, "duration_s": 0.5})
    assert (ok.measurement, ok.tags, ok.fields, ok.time) == (
        "qmonit_run", (("job", "collect"), ("source", "panda"), ("status", "ok")),
        (("duration_s", 0.5), ("points", 26.0)), slot)
    redact.register(["s3cret-9"])
    failed = run_sample("derive", "sinks", slot, {"errors": 2},
                        ["InfluxDB down (token s3cret-9)", "x" * 2000])
    assert failed.tag("status") == "failed"
    assert failed.field("message") == ("InfluxDB down (token ***); " + "x" * 2000)[:1000]
    cached = run_sample("collect", "cric", slot, {"errors": 1}, ["HTTP 502"], "cached")
    assert cached.tag("status") == "cached"
