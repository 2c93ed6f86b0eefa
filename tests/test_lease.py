"""The lease rows on SQLite and MariaDB: held until it lapses, claims only forward."""


from qmonit.stores.state import lease


def test_one_holder_until_the_lease_lapses(state_engine):
    assert lease.acquire(state_engine, "cycle", "a", 1000, 60)
    assert not lease.acquire(state_engine, "cycle", "b", 1030, 60)
    assert lease.acquire(state_engine, "cycle", "a", 1030, 60)  # renewed: until 1090
    assert not lease.acquire(state_engine, "cycle", "b", 1090, 60)
    assert lease.acquire(state_engine, "cycle", "b", 1091, 60)
    assert not lease.acquire(state_engine, "cycle", "a", 1100, 60)
    assert [(one.job, one.holder, one.expires_at) for one in lease.held(state_engine)] == [
        ("cycle", "b", 1151)]


def test_a_slot_is_claimed_once_and_only_by_the_live_holder(state_engine):
    lease.acquire(state_engine, "cycle", "a", 1000, 60)
    assert lease.claim(state_engine, "cycle", "a", 600, 1000)
    assert not lease.claim(state_engine, "cycle", "a", 600, 1001)  # the same slot again
    assert not lease.claim(state_engine, "cycle", "b", 1200, 1001)  # not the holder
    assert not lease.claim(state_engine, "cycle", "a", 1200, 1061)  # lapsed
    lease.acquire(state_engine, "cycle", "b", 1100, 60)
    assert not lease.claim(state_engine, "cycle", "b", 600, 1100)  # a took it before
    assert lease.claim(state_engine, "cycle", "b", 1200, 1100)


def test_release_lets_the_standby_in_at_once(state_engine):
    lease.acquire(state_engine, "cycle", "a", 1000, 60)
    lease.acquire(state_engine, "hourly", "a", 1000, 60)
    lease.release(state_engine, "a")
    assert lease.acquire(state_engine, "cycle", "b", 1001, 60)
    assert lease.acquire(state_engine, "hourly", "b", 1001, 60)
