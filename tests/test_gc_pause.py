"""gc_paused: no automatic collection inside a cycle, its cyclic garbage freed at the end."""

import gc
import weakref
from datetime import UTC, datetime

from qmonit.support.gc_pause import gc_paused


class Node:
    pass


def test_collection_is_paused_inside_and_the_cycle_garbage_freed_on_the_way_out():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        node = Node()
        node.me = node  # a reference cycle: only the cyclic collector frees it
        alive = weakref.ref(node)
        del node
        assert alive() is not None
    assert gc.isenabled()
    assert alive() is None


def test_a_pause_inside_a_pause_leaves_it_to_the_outer_one():
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_when_the_cycle_raises():
    try:
        with gc_paused():
            raise RuntimeError("a cycle that failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_a_collect_and_a_derive_run_paused_and_leave_it_running(make_config, monkeypatch):
    import qmonit.collect.cycle
    import qmonit.derive.job
    from qmonit.collect.components import build
    from qmonit.stores.state import schema
    cfg = make_config({"influxdb": {}, "sources": {"enabled": "simulated"},
                       "logging": {"level": "ERROR"}})
    parts = build(cfg)
    schema.create_tables(parts.engine)
    parts.store.init({})
    enabled = []
    levels, gather = qmonit.collect.cycle.aggregate, qmonit.derive.job.gather
    monkeypatch.setattr(qmonit.collect.cycle, "aggregate",
                        lambda data: enabled.append(("collect", gc.isenabled())) or levels(data))
    monkeypatch.setattr(qmonit.derive.job, "gather", lambda *a, **k:
                        enabled.append(("derive", gc.isenabled())) or gather(*a, **k))
    slot = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    qmonit.collect.cycle.collect(parts, slot)
    qmonit.derive.job.derive(parts, slot)
    assert enabled == [("collect", False), ("derive", False)]
    assert gc.isenabled()
