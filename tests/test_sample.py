"""Series ids: stable across processes, and the same when remembered."""

from datetime import UTC, datetime

from qmonit.sample import SeriesIds, make_sample, series_id

T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_a_series_id_is_a_hash_of_measurement_and_tags_the_same_in_every_process():
    sample = make_sample("jobs", {"panda_queue": "Q", "job_status": "running"}, {"jobs": 1}, T)
    assert series_id(sample) == -3903421562843474462
    later = sample._replace(fields=(("jobs", 2.0),), time=T.replace(hour=11))
    assert series_id(later) == series_id(sample)
    assert series_id(sample._replace(measurement="workers")) != series_id(sample)


def test_remembered_ids_are_the_same_ids_and_the_memory_is_bounded():
    ids = SeriesIds(limit=2)
    samples = [make_sample("jobs", {"q": name}, {"jobs": 1}, T) for name in "ABC"]
    assert [ids(s) for s in samples] == [series_id(s) for s in samples]
    assert len(ids._known) == 1  # full at the third: forgotten, then C remembered
    assert ids(samples[2]) == series_id(samples[2])
