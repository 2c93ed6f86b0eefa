"""CRIC PanDA-queue topology, cached on disk; the last good snapshot is used when CRIC fails.

GET {cric}/api/atlas/pandaqueue/query/?json -> {queue_name: {panda_resource, atlas_site,
cloud, country, tier, status, type, resource_type, corecount, corepower, ...}}.
The key and panda_resource can differ (SLAC_ES-lsf / SLAC_ES); records can be empty. An
answer that is not such an object of queue records is refused (qmonit/sources/kinds.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import requests

from qmonit.core.bounds import MAX_CORECOUNT, MAX_COREPOWER, number_problem
from qmonit.core.sample import shown
from qmonit.core.settings import CricSection
from qmonit.sources.base import PARSE_ERRORS, SourceError, json_answer
from qmonit.sources.kinds import check_answer
from qmonit.support.clock import Clock, SystemClock
from qmonit.support.files import write_text_atomic
from qmonit.support.http import DEFAULT_MAX_RESPONSE_MB, make_session, safe_url

log = logging.getLogger(__name__)

PATH = "/api/atlas/pandaqueue/query/"


@dataclass(frozen=True)
class QueueInfo:
    panda_queue: str
    panda_resource: str | None = None
    atlas_site: str | None = None
    cloud: str | None = None
    country: str | None = None
    tier: str | None = None
    queue_status: str | None = None  # CRIC `status`: online, brokeroff, offline, test
    site_state: str | None = None  # CRIC `site_state`: ACTIVE, ...
    queue_type: str | None = None
    resource_type: str | None = None
    corecount: int | None = None
    corepower: float | None = None
    pilot_manager: str | None = None
    harvester: str | None = None
    rc: str | None = None
    datadisks: tuple[str, ...] = ()


@dataclass
class Topology:
    """Queues by name (and by panda_resource), plus where this snapshot came from."""

    queues: dict[str, QueueInfo] = field(default_factory=dict)
    status: str = "fresh"  # fresh | cached | missing
    fetched_at: datetime | None = None
    message: str = ""

    def __post_init__(self) -> None:
        self._by_resource = {q.panda_resource: q for q in self.queues.values() if q.panda_resource}

    def lookup(self, panda_queue: str) -> QueueInfo | None:
        return self.queues.get(panda_queue) or self._by_resource.get(panda_queue)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _number(value: Any, kind: type, limit: float, where: str, problems: list[str]) -> Any:
    """A positive number no larger than `limit`, or None; a value that is not finite,
    negative or above the limit (`corecount: 1e30`, `Infinity`) is reported under `where`
    and left unknown (the queue is kept: its tags are good)."""
    if isinstance(value, bool) or value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    problem = number_problem(value, limit)
    if problem is not None:
        problems.append(f"{where}: {problem}; left unknown")
        return None
    number = kind(value)
    return number if number > 0 else None


def parse_pandaqueues(data: Any, origin: str) -> tuple[dict[str, QueueInfo], list[str]]:
    """The CRIC answer -> QueueInfo by queue name; empty or broken records reported, skipped.
    An answer of another kind (a Slurm or PanDA answer at the CRIC URL) is a SourceError:
    read as it is, its top-level keys would become queues."""
    if not isinstance(data, dict) or not data:
        raise SourceError(f"{origin}: expected a non-empty JSON object of PanDA queues")
    check_answer("cric query", data, origin)
    queues, problems = {}, []
    for name, record in data.items():
        if not isinstance(record, dict) or not record:
            problems.append(f"{origin}: queue {name!r}: empty or not an object; skipped")
            continue
        storages = record.get("astorages") or {}
        read_lan = storages.get("read_lan") if isinstance(storages, dict) else None
        queues[name] = QueueInfo(
            panda_queue=name,
            panda_resource=_text(record.get("panda_resource")),
            atlas_site=_text(record.get("atlas_site")),
            cloud=_text(record.get("cloud")),
            country=_text(record.get("country")),
            tier=_text(record.get("tier")),
            queue_status=_text(record.get("status")),
            site_state=_text(record.get("site_state")),
            queue_type=_text(record.get("type")),
            resource_type=_text(record.get("resource_type")),
            corecount=_number(record.get("corecount"), int, MAX_CORECOUNT,
                              f"{origin}: queue {shown(name)}: corecount", problems),
            corepower=_number(record.get("corepower"), float, MAX_COREPOWER,
                              f"{origin}: queue {shown(name)}: corepower", problems),
            pilot_manager=_text(record.get("pilot_manager")),
            harvester=_text(record.get("harvester")),
            rc=_text(record.get("rc")),
            # the disks analysis reads: *DATADISK only (read_lan also lists tape and
            # scratch endpoints)
            datadisks=tuple(str(d) for d in read_lan or () if str(d).endswith("DATADISK")),
        )
    return queues, problems


class CricTopology:
    """Fetch the topology; on failure fall back to the snapshot cached at `cache_path`."""

    name = "cric"

    def __init__(self, settings: CricSection, cache_path: Path,
                 session: requests.Session | None = None,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB, clock: Clock | None = None):
        self.clock = clock or SystemClock()  # when the snapshot was fetched, how old it is
        self.url = settings.url.rstrip("/") + PATH
        self.timeout = settings.timeout_s
        self.max_age_h = settings.max_snapshot_age_h
        self.cache_path = Path(cache_path)
        self.session = session or make_session(settings.client(max_response_mb))

    @property
    def origin(self) -> str:
        return f"CRIC {safe_url(self.url)}"

    def fetch(self) -> Any:
        return json_answer(
            lambda: self.session.get(self.url, params={"json": ""}, timeout=self.timeout),
            self.origin, self.timeout)

    def probe(self) -> str:
        """What CRIC answers now, never the snapshot (`qmonit check`); a SourceError when
        it does not answer with PanDA queues."""
        queues, problems = parse_pandaqueues(self.fetch(), self.origin)
        return f"answers, {len(queues)} PanDA queues ({len(problems)} empty records)"

    def load(self, slot: datetime | None = None) -> Topology:
        """The topology now (`slot` is for simulated sources; CRIC has only the present)."""
        now = self.clock.now()
        try:
            queues, problems = parse_pandaqueues(self.fetch(), self.origin)
        except SourceError as exc:
            return self._fallback(str(exc), now)
        except PARSE_ERRORS as exc:  # a record no parser could take: the snapshot serves
            log.error("%s: the answer could not be parsed", self.origin, exc_info=True)
            return self._fallback(f"{self.origin}: the answer could not be parsed "
                                  f"({type(exc).__name__}: {exc})", now)
        for problem in problems:
            log.warning(problem)
        message = f"{len(queues)} queues from {self.origin}"
        unsaved = self._save(queues, now)
        if unsaved:
            message += f"; {unsaved}"
        return Topology(queues, "fresh", now, message)

    def _save(self, queues: dict[str, QueueInfo], now: datetime) -> str | None:
        """Cache the snapshot; a disk that cannot take it (full, read-only) costs only the
        fallback: the fresh topology is used all the same. Returns what went wrong."""
        payload = {"fetched_at": now.isoformat(),
                   "queues": {name: asdict(q) for name, q in queues.items()}}
        try:
            write_text_atomic(self.cache_path, json.dumps(payload))
        except OSError as exc:
            problem = (f"the snapshot could not be cached in {self.cache_path} ({exc}); the "
                       "last one cached stays the fallback")
            log.error("CRIC: %s", problem)
            return problem
        return None

    def _fallback(self, error: str, now: datetime) -> Topology:
        try:
            with open(self.cache_path, encoding="utf-8") as handle:
                payload = json.load(handle)
            fetched_at = datetime.fromisoformat(payload["fetched_at"])
            checked: list[str] = []  # a snapshot an older qmonit wrote may hold 1e30 cores
            where = f"CRIC snapshot {self.cache_path}: queue"
            queues = {name: QueueInfo(**{
                **q, "datadisks": tuple(q["datadisks"]),
                "corecount": _number(q.get("corecount"), int, MAX_CORECOUNT,
                                     f"{where} {shown(name)}: corecount", checked),
                "corepower": _number(q.get("corepower"), float, MAX_COREPOWER,
                                     f"{where} {shown(name)}: corepower", checked)})
                for name, q in payload["queues"].items()}
            for problem in checked:
                log.warning(problem)
        except FileNotFoundError:
            message = f"{error}; no cached snapshot yet: every queue is tagged unknown"
            log.error(message)
            return Topology({}, "missing", None, message)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            message = f"{error}; cached snapshot {self.cache_path} unreadable ({exc}): " \
                      f"every queue is tagged unknown"
            log.error(message)
            return Topology({}, "missing", None, message)
        age_h = (now - fetched_at).total_seconds() / 3600
        message = (f"{error}; using the cached snapshot of {fetched_at:%Y-%m-%d %H:%M} UTC "
                   f"({age_h:.1f} h old, {len(queues)} queues)")
        if age_h > self.max_age_h:
            message += f", older than [cric] max_snapshot_age_h = {self.max_age_h:g}"
        log.warning(message)
        return Topology(queues, "cached", fetched_at, message)


class TopologySource(Protocol):
    """Where the PanDA queues' sites and clouds come from (CRIC, its snapshot, or simulated):
    the collect cycle and the datadisk job tag with what `load` gives."""

    name: str

    @property
    def origin(self) -> str:
        """Where it asks ("" when there is nothing to ask: none configured, simulated)."""

    def probe(self) -> str:
        """The server's answer now, for `qmonit check`: never a cached copy; raises
        SourceError when it does not answer."""

    def load(self, slot: datetime) -> Topology:
        """The queues known at `slot`, with how fresh they are; never raises."""


class NoTopology:
    """No CRIC configured: every queue is tagged unknown, which is said once per run."""

    name = "cric"
    origin = ""  # nothing to ask

    def probe(self) -> str:
        return "no [cric] url configured"

    def load(self, slot: datetime | None = None) -> Topology:
        return Topology({}, "unconfigured", None, "no [cric] url configured")
