import random

import pytest

from qmonit.support.retry import RetriesExhausted, Retry, Retryable


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def make(deadline=10.0):
    clock = FakeClock()
    return Retry(deadline_s=deadline, initial_s=1, max_s=4, sleep=clock.sleep, clock=clock,
                 rng=random.Random(7)), clock


def test_succeeds_after_retryable_failures_with_growing_jittered_backoff():
    retry, clock = make()
    outcomes = iter([Retryable("503"), Retryable("503"), Retryable("503"), "ok"])

    def attempt():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry.call(attempt) == "ok"
    assert len(clock.sleeps) == 3
    for n, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= min(4, 2**n)
    assert clock.sleeps == [Retry(rng=random.Random(7), initial_s=1, max_s=4).backoff(0),
                            *clock.sleeps[1:]]


def test_gives_up_at_deadline_with_last_reason():
    retry, clock = make(deadline=3)

    def attempt():
        raise Retryable("HTTP 500 boom")

    with pytest.raises(RetriesExhausted, match=r"HTTP 500 boom \(gave up after \d+ attempts "
                                               r"within 3 s\)"):
        retry.call(attempt)
    assert clock.now <= 3


def test_retry_after_is_honoured():
    retry, clock = make()
    calls = []

    def attempt():
        calls.append(1)
        if len(calls) == 1:
            raise Retryable("429", retry_after=2.0)
        return "done"

    assert retry.call(attempt) == "done"
    assert clock.sleeps == [2.0]


def test_other_exceptions_are_not_retried():
    retry, clock = make()

    def attempt():
        raise KeyError("x")

    with pytest.raises(KeyError):
        retry.call(attempt)
    assert clock.sleeps == []
