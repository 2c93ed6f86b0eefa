"""HTCondor ads for the tests, parsed by the real classad2 from the real text formats, and a
pool that answers queries from them as a schedd would (constraint, then projection)."""

from __future__ import annotations

from collections.abc import Sequence

import classad2

from qmonit.sources.condor_files import parse_json, parse_long  # noqa: F401


def _matches(constraint: str, ad: classad2.ClassAd) -> bool:
    result = classad2.ExprTree(constraint).eval(ad)
    return result is True


def _project(ad: classad2.ClassAd, projection: Sequence[str]) -> classad2.ClassAd:
    out = classad2.ClassAd()
    for name in projection:
        if name in ad:
            out[name] = ad.lookup(name)
    return out


class AdSchedd:
    def __init__(self, name: str, ads: list, history: list | None = None):
        self.name = name
        self.ads = ads
        self.ended = history or []
        self.queries: list[tuple[str, tuple[str, ...]]] = []

    def query(self, constraint: str, projection: Sequence[str]) -> list:
        self.queries.append((constraint, tuple(projection)))
        return [_project(ad, projection) for ad in self.ads if _matches(constraint, ad)]

    def history(self, constraint: str, projection: Sequence[str]) -> list:
        return [_project(ad, projection) for ad in self.ended if _matches(constraint, ad)]


class AdPool:
    def __init__(self, schedds: list, slots: list, daemons: dict | None = None):
        self._schedds = schedds
        self._slots = slots
        self.daemons = daemons or {}  # "schedd" / "negotiator" -> their ads

    def schedds(self) -> list:
        return self._schedds

    def slots(self, projection: Sequence[str]) -> list:
        return [_project(ad, projection) for ad in self._slots]

    def daemon_ads(self, daemon: str, projection: Sequence[str]) -> list:
        return [_project(ad, projection) for ad in self.daemons.get(daemon, [])]
