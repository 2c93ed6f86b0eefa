"""InfluxDB through the v1 HTTP API (/write, /query), which InfluxDB 1.x, 2.x and 3.x accept.

Write errors are sorted the way Telegraf sorts them: timeouts, connection errors,
5xx and 429 are retried within a deadline and then handed back for the spool;
401/403/404/413 cannot succeed by retrying now but the points are good, so they
go to the spool at once; any other 4xx (bad line, field type conflict, point
beyond retention) is a rejection: reported with the first offending line, not
retried, never silently dropped.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from itertools import islice
from typing import Any

import requests

from qmonit.core.levels import Choice
from qmonit.core.rollup_spec import ROLLUP, RollupSpec, Window
from qmonit.core.sample import Sample, from_epoch
from qmonit.core.settings import InfluxdbSection
from qmonit.stores.timeseries.aggregate import GroupedQuery, Key, Stats, influxql, stats_from_influx
from qmonit.stores.timeseries.base import (
    RETENTION_POLICIES,
    Rejection,
    StoreUnavailable,
    WriteResult,
)
from qmonit.stores.timeseries.lineprotocol import encode
from qmonit.support.http import (
    DEFAULT_MAX_RESPONSE_MB,
    Session,
    body_summary,
    describe_failure,
    make_session,
    safe_url,
)
from qmonit.support.redact import brief
from qmonit.support.retry import RetriesExhausted, Retry, Retryable

log = logging.getLogger(__name__)

META_RP = "meta"  # kept forever: what Grafana needs to know about the data
RP_CONFIG = "rp_config"
LEVELS = "levels"

_SPOOL_NOW = {401: "authentication failed", 403: "not authorised to write",
              404: "database not found (run `qmonit init`)",
              413: "request too large (lower [influxdb] batch_size)"}


class InfluxQueryError(Exception):
    """A /query that InfluxDB answered with an error."""


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes (retention policy names like 10m need it)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_string(value: str) -> str:
    """The inside of an InfluxQL single-quoted string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _offending_lines(body: str, lines: Sequence[str], dropped: int | None) -> list[str]:
    """The lines of a batch InfluxDB refused, from what its error says: every unparsable
    line it quotes; for a field type conflict, the lines of that measurement whose field
    has the refused type; for points beyond the retention policy, the `dropped` oldest;
    otherwise (it does not say which) the whole batch."""
    unparsable = re.findall(r"unable to parse '(.*?)': ", body)
    if unparsable:
        return unparsable
    conflict = re.search(r'input field \\?"(.+?)\\?" on measurement \\?"(.+?)\\?" is type '
                         r"(\w+)", body)
    if conflict:
        field_name, measurement, kind = conflict.groups()
        refused = [line for line in lines
                   if line.startswith((measurement + ",", measurement + " "))
                   and _field_type(line, field_name) == kind]
        return refused[:dropped] if dropped else refused
    if "beyond retention" in body and dropped:
        return sorted(lines, key=lambda line: int(line.rsplit(" ", 1)[1]))[:dropped]
    return list(lines)


def _field_type(line: str, name: str) -> str | None:
    """The line protocol type of field `name` in `line` (None: not found)."""
    for marker in (f" {name}=", f",{name}="):
        at = line.find(marker)
        if at >= 0:
            value = line[at + len(marker):]
            if value.startswith('"'):
                return "string"
            token = re.split(r"[ ,]", value, maxsplit=1)[0]
            if token in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False",
                         "FALSE"):
                return "boolean"
            return "integer" if token.endswith("i") else "float"
    return None


class InfluxStore:
    def __init__(self, settings: InfluxdbSection, retry: Retry | None = None,
                 session: Session | None = None,
                 max_response_mb: float = DEFAULT_MAX_RESPONSE_MB):
        self.url = settings.url.rstrip("/")
        self.database = settings.database
        self.timeout = settings.timeout_s
        self.query_timeout = settings.query_timeout_s
        self.batch_size = settings.batch_size
        self.write_threads = settings.write_threads
        self.gzip = settings.gzip
        self.retry = retry or Retry(
            deadline_s=settings.retry_deadline_s,
            initial_s=settings.retry_initial_s,
            max_s=settings.retry_max_s,
        )
        self.session = session or make_session(settings.client(max_response_mb))
        self._field_keys: dict[tuple[str, str, frozenset[str]], list[str]] = {}
        self.until: float | None = None  # time.monotonic() by which the job must be done
        self.rolls_up_in_server = True  # SELECT ... INTO (InfluxDB 1.x; mode = auto asks)
        self.server: str | None = "influxdb"
        # what `check` can truly say of the credentials once the server has answered a query
        self.credentials = "no credentials configured"
        if settings.token:
            self.session.headers["Authorization"] = f"Token {settings.token}"
            self.credentials = "token accepted"
        elif settings.username:
            self.session.auth = (settings.username, settings.password)
            self.credentials = f"user {settings.username} accepted"

    def location(self) -> str:
        return f"InfluxDB {safe_url(self.url)} database {self.database}"

    def _left_s(self) -> float | None:
        """Seconds left of the job's deadline (`until`); None: the job has none."""
        return None if self.until is None else self.until - time.monotonic()

    def _exchange_s(self) -> float:
        """One write exchange's deadline: timeout_s, or what is left of the job's."""
        left = self._left_s()
        return self.timeout if left is None else max(0.1, min(self.timeout, left))

    def _retry(self) -> Retry:
        """The retry policy, its deadline cut to what is left of the job's."""
        left = self._left_s()
        if left is None:
            return self.retry
        return replace(self.retry, deadline_s=min(self.retry.deadline_s, max(0.0, left)))

    # -- writing ---------------------------------------------------------------------------

    def write(self, samples: Sequence[Sample], retention: str = "10m") -> WriteResult:
        result = WriteResult()
        encoded: list[list[Sample]] = []  # the samples of each batch, by its number

        def batches() -> Iterator[list[str]]:
            """Encoded a batch at a time, so that the first is posted while the rest are
            encoded (InfluxDB works on one while this process makes the next)."""
            lines: list[str] = []
            members: list[Sample] = []
            for sample in samples:
                try:
                    lines.append(encode(sample))
                except ValueError as exc:
                    result.rejected.append(Rejection(str(exc), repr(sample), 1))
                    continue
                members.append(sample)
                if len(lines) == self.batch_size:
                    encoded.append(members)
                    yield lines
                    lines, members = [], []
            if lines:
                encoded.append(members)
                yield lines

        for number in self._post_batches(batches(), retention, result):
            result.unwritten.extend(encoded[number])
        return result

    def write_lines(self, lines: Iterable[str], retention: str) -> WriteResult:
        """Lines encoded already, posted while more are made (the roll-up buffer's):
        `error` says the store failed."""
        result = WriteResult()
        remaining = iter(lines)
        batches = iter(lambda: list(islice(remaining, self.batch_size)), [])
        self._post_batches(batches, retention, result)
        return result

    def _post_batches(self, batches: Iterable[Sequence[str]], retention: str,
                      result: WriteResult) -> list[int]:
        """POST each batch, [influxdb] write_threads at a time; once the store has failed,
        the later batches are not tried. Returns the numbers of the batches not written.
        Batches in flight together may land in either order: no write holds a point twice."""
        failure: list[str] = []

        def post(batch: Sequence[str]) -> tuple[Rejection | None, str | None]:
            if failure:
                return None, failure[0]
            try:
                return self.post_lines(batch, retention), None
            except StoreUnavailable as exc:
                failure.append(str(exc))
                return None, str(exc)

        unwritten: list[int] = []

        def settle(number: int, batch: Sequence[str], outcome: tuple) -> None:
            rejection, error = outcome
            if error:
                unwritten.append(number)
                result.error = result.error or error
            elif rejection:
                result.rejected.append(rejection)
                result.written += max(0, len(batch) - rejection.points)
            else:
                result.written += len(batch)

        if self.write_threads <= 1:
            for number, batch in enumerate(batches):
                settle(number, batch, post(batch))
            return unwritten
        with ThreadPoolExecutor(self.write_threads, thread_name_prefix="influx-write") as pool:
            in_flight: deque = deque()
            for number, batch in enumerate(batches):
                in_flight.append((number, batch, pool.submit(post, batch)))
                if len(in_flight) > 2 * self.write_threads:  # bounded: lines are made lazily
                    done_number, done_batch, future = in_flight.popleft()
                    settle(done_number, done_batch, future.result())
            for done_number, done_batch, future in in_flight:
                settle(done_number, done_batch, future.result())
        return unwritten

    def post_lines(self, lines: Sequence[str], retention: str) -> Rejection | None:
        """POST one batch with retries. Returns a Rejection for a 4xx; raises StoreUnavailable."""
        body = ("\n".join(lines) + "\n").encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.database, "rp": retention, "precision": "s"}

        def attempt() -> Rejection | None:
            try:
                # request(), not post(): deadline_s is qmonit's Session's own keyword
                response = self.session.request("POST", f"{self.url}/write", params=params,
                                                data=body, headers=headers,
                                                timeout=self.timeout,
                                                deadline_s=self._exchange_s())
            except requests.RequestException as exc:
                raise Retryable(f"{self.location()}: {describe_failure(exc, self.timeout)}"
                                ) from None
            if response.status_code < 300:
                return None
            text = brief(response.text, 2000)
            if response.status_code >= 500 or response.status_code == 429:
                retry_after = response.headers.get("Retry-After")
                raise Retryable(
                    f"{self.location()}: HTTP {response.status_code} {body_summary(text)}",
                    float(retry_after) if retry_after and retry_after.isdigit() else None,
                )
            if response.status_code in _SPOOL_NOW:
                raise StoreUnavailable(
                    f"{self.location()}: HTTP {response.status_code} "
                    f"{_SPOOL_NOW[response.status_code]}"
                )
            dropped = re.search(r"dropped=(\d+)", text)
            refused = _offending_lines(response.text, lines,
                                       int(dropped.group(1)) if dropped else None)
            return Rejection(
                reason=f"HTTP {response.status_code}: {_error_text(text)}",
                first_line=refused[0] if refused else (lines[0] if lines else ""),
                points=int(dropped.group(1)) if dropped else len(lines),
                lines=tuple(refused),
            )

        try:
            return self._retry().call(attempt)
        except RetriesExhausted as exc:
            left = self._left_s()
            if left is not None and left <= 0.05:
                raise StoreUnavailable(f"{self.location()}: the job's deadline passed while "
                                       f"writing; the store had said: {exc}") from None
            raise StoreUnavailable(str(exc)) from None

    # -- querying and set-up ---------------------------------------------------------------

    def query(self, influxql: str, *, method: str = "GET", database: bool = True,
              epoch: str = "s", long: bool = False) -> list[dict[str, Any]]:
        """Run InfluxQL; return the series of the first statement (name, tags, columns, values).
        `long`: an aggregation over many series, bounded by query_timeout_s, not timeout_s."""
        params = {"q": influxql, "epoch": epoch}
        if database:
            params["db"] = self.database
        timeout = self.query_timeout if long else self.timeout
        try:
            if method == "POST":
                response = self.session.post(f"{self.url}/query", data=params, timeout=timeout)
            else:
                response = self.session.get(f"{self.url}/query", params=params, timeout=timeout)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"{self.location()}: {describe_failure(exc, timeout)}"
                                   ) from None
        if response.status_code in (401, 403):
            raise StoreUnavailable(f"{self.location()}: HTTP {response.status_code} "
                                   f"{_SPOOL_NOW[response.status_code]}")
        try:
            payload = response.json()
        except ValueError:
            raise InfluxQueryError(
                f"{self.location()}: HTTP {response.status_code}, not JSON: "
                f"{body_summary(response.text)}"
            ) from None
        if "error" in payload:
            raise InfluxQueryError(f"{self.location()}: {payload['error']}")
        results = payload.get("results", [{}])
        first = results[0] if results else {}
        if "error" in first:
            raise InfluxQueryError(f"{self.location()}: {first['error']} (query: {influxql})")
        return first.get("series", [])

    def rows(self, influxql: str, database: bool = True) -> list[dict[str, Any]]:
        """The query's points as dicts, tags included."""
        out = []
        for series in self.query(influxql, database=database):
            for values in series.get("values", []):
                row = dict(series.get("tags") or {})
                row.update(zip(series["columns"], values, strict=True))
                out.append(row)
        return out

    def grouped_stats(self, query: GroupedQuery) -> dict[Key, Stats]:
        return stats_from_influx(self.query(influxql(query), long=True), query.group_by)

    def last_time(self, measurement: str, field: str, tags: dict[str, str],
                  rp: str = "10m") -> datetime | None:
        """The newest time at which a series of `measurement` with these tags has `field`."""
        where = " AND ".join(f"{quote_ident(k)} = '{_quote_string(v)}'"
                             for k, v in sorted(tags.items()))
        rows = self.rows(f"SELECT last({quote_ident(field)}) FROM {quote_ident(rp)}."
                         f"{quote_ident(measurement)}" + (f" WHERE {where}" if where else ""))
        return from_epoch(rows[0]["time"]) if rows else None

    # -- downsampling ------------------------------------------------------------------------

    def version(self) -> str:
        try:
            ping = self.session.get(f"{self.url}/ping", timeout=self.timeout)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"{self.location()}: "
                                   f"{describe_failure(exc, self.timeout)}") from None
        return ping.headers.get("X-Influxdb-Version", "")

    def measurements(self) -> list[str]:
        """Every measurement; a roll-up run starts here, so field keys are read afresh."""
        self._field_keys.clear()
        return [row["name"] for row in self.rows("SHOW MEASUREMENTS")]

    def numeric_fields(self, measurement: str, rp: str,
                       spec: RollupSpec = ROLLUP) -> list[str]:
        """The field keys a roll-up rolls up (of the spec's numeric types), asked once per
        measurement and roll-up run, not per window."""
        key = (measurement, rp, spec.numeric_types)
        if key not in self._field_keys:
            rows = self.rows(f"SHOW FIELD KEYS FROM {quote_ident(rp)}."
                             f"{quote_ident(measurement)}")
            self._field_keys[key] = [r["fieldKey"] for r in rows
                                     if r["fieldType"] in spec.numeric_types]
        return self._field_keys[key]

    def first_time(self, measurement: str, rp: str) -> datetime | None:
        """Per field: a field added later (qmonit_run's `buffered`) must not hide older points.
        Asked only while a measurement has no watermark yet."""
        times = []
        for name in self.numeric_fields(measurement, rp):
            rows = self.rows(f"SELECT first({quote_ident(name)}) FROM {quote_ident(rp)}."
                             f"{quote_ident(measurement)}")
            times += [row["time"] for row in rows]
        return from_epoch(min(times)) if times else None

    def _rollup_select(self, measurement: str, fields: list[str], window: Window,
                       start: datetime, spec: RollupSpec, into: str = "") -> str:
        """The spec's statistics of every field per series, for the window at `start`."""
        columns = ", ".join(f"{statistic.influxql}({quote_ident(name)}) AS "
                            f"{quote_ident(statistic.field(name))}"
                            for name in fields for statistic in spec.statistics)
        return (f"SELECT {columns}{into} FROM {quote_ident(window.source_rp)}."
                f"{quote_ident(measurement)} WHERE {_window_where(window, start)} "
                f"GROUP BY time({window.width_s}s), * fill(none)")

    def window_aggregates(self, measurement: str, window: Window, start: datetime,
                          spec: RollupSpec = ROLLUP) -> list[Sample]:
        """The spec's statistics per series for one window (the client path)."""
        fields = self.numeric_fields(measurement, window.source_rp, spec)
        if not fields:
            return []
        out = []
        for series in self.query(self._rollup_select(measurement, fields, window, start, spec),
                                 long=True):
            tags = tuple(sorted((k, v) for k, v in (series.get("tags") or {}).items() if v))
            for values in series.get("values", []):
                row = dict(zip(series["columns"], values, strict=True))
                point = tuple(sorted((k, float(v)) for k, v in row.items()
                                     if k != "time" and v is not None))
                if point:
                    out.append(Sample(measurement, tags, point, from_epoch(row["time"])))
        return out

    def rollup_into(self, measurement: str, window: Window, start: datetime,
                    spec: RollupSpec = ROLLUP) -> int:
        """The server path (InfluxDB 1.x): SELECT ... INTO; returns the points written."""
        fields = self.numeric_fields(measurement, window.source_rp, spec)
        if not fields:
            return 0
        into = f" INTO {quote_ident(self.database)}.{quote_ident(window.rp)}.:MEASUREMENT"
        try:
            series = self.query(self._rollup_select(measurement, fields, window, start, spec,
                                                    into), method="POST", long=True)
        except InfluxQueryError as exc:
            if "beyond retention policy" in str(exc):
                raise InfluxQueryError(
                    f"{self.location()}: {measurement} {start:%Y-%m-%d %H:%M} UTC is older than "
                    f"the retention policy \"{window.rp}\" keeps: {exc}") from None
            raise
        return int(series[0]["values"][0][1]) if series else 0

    def levels_into(self, base: str, window: Window, start: datetime,
                    spec: RollupSpec = ROLLUP) -> int:
        """The server path's levels of `base`: per level group, the spec's total of each
        rolled-up field of the base's points just written into the window's policy;
        returns the points written."""
        rolled = [name for field in self.numeric_fields(base, window.source_rp, spec)
                  for name in spec.fields(field)]
        if not rolled:
            return 0
        columns = ", ".join(f"{spec.level_total}({quote_ident(name)}) AS {quote_ident(name)}"
                            for name in rolled)
        written = 0
        for level in spec.levels_of(base):
            tags = ", ".join(quote_ident(t) for t in level.tags)
            only = "" if level.above is None else \
                f" AND {quote_ident(level.above[0])} > {level.above[1]!r}"
            series = self.query(
                f"SELECT {columns} INTO {quote_ident(self.database)}.{quote_ident(window.rp)}."
                f"{quote_ident(level.measurement)} FROM {quote_ident(window.rp)}."
                f"{quote_ident(base)} WHERE {_window_where(window, start)}{only} "
                f"GROUP BY time({window.width_s}s), {tags} fill(none)", method="POST", long=True)
            written += int(series[0]["values"][0][1]) if series else 0
        return written

    def init(self, durations: dict[str, str]) -> list[str]:
        done = []
        self.query(f"CREATE DATABASE {quote_ident(self.database)}", method="POST", database=False)
        done.append(f"database {self.database} present")
        existing = {row["name"] for row in self.rows(
            f"SHOW RETENTION POLICIES ON {quote_ident(self.database)}", database=False)}
        for name in RETENTION_POLICIES:
            duration = durations[name]
            default = " DEFAULT" if name == "10m" else ""
            target = f"{quote_ident(name)} ON {quote_ident(self.database)}"
            if name in existing:
                statement = f"ALTER RETENTION POLICY {target} DURATION {duration}{default}"
                done.append(f"retention policy \"{name}\" set to {duration}")
            else:
                statement = (f"CREATE RETENTION POLICY {target} DURATION {duration} "
                             f"REPLICATION 1{default}")
                done.append(f"retention policy \"{name}\" created ({duration})")
            self.query(statement, method="POST", database=False)
        return done

    def write_rp_config(self, up_to: Sequence[tuple[str, float]]) -> str:
        """The table Grafana's $rp variable reads: the finest policy whose range covers the view.

        One point per retention policy in the "meta" policy (kept forever), ordered by
        time, so `first("rp") ... WHERE "max_range_s" >= ${__range_s}` picks the policy.
        """
        self._write_meta(RP_CONFIG, [
            Sample(RP_CONFIG, (), (("max_range_s", min(limit, 1e15)), ("rp", rp)),
                   from_epoch(order)) for order, (rp, limit) in enumerate(up_to)])
        return f"{RP_CONFIG} for Grafana: " + ", ".join(
            f'"{rp}" up to {limit / 86400:g}d' if limit != float("inf") else f'"{rp}" beyond'
            for rp, limit in up_to)

    def write_levels(self, choices: Sequence[Choice]) -> str:
        """The table the dashboards' level variables read (see qmonit/core/levels.py)."""
        samples = [Sample(LEVELS, tuple(sorted(tags.items())), (("measurement", measurement),),
                          from_epoch(order))
                   for one in choices for order, tags, measurement in one.rows()]
        self._write_meta(LEVELS, samples)
        return f"{LEVELS} for Grafana: {len(samples)} choices of {len(choices)} variables"

    def write_grafana_tables(self, up_to: Sequence[tuple[str, float]],
                             choices: Sequence[Choice]) -> list[str]:
        return [self.write_rp_config(up_to), self.write_levels(choices)]

    def create_reader(self, user: str, password: str) -> list[str]:
        """Create (or re-password) the user and grant it READ on the database."""
        create, grant = self.reader_statements(user, password)
        try:
            self.query(create, method="POST", database=False)
        except InfluxQueryError as exc:
            if "user already exists" not in str(exc):
                raise
            self.query(f'SET PASSWORD FOR "{user}" = ' + create.split(" WITH PASSWORD ", 1)[1],
                       method="POST", database=False)
        self.query(grant, method="POST", database=False)
        return [f"InfluxDB reader {user!r}: READ on {self.database!r}"]

    def reader_statements(self, user: str, password: str) -> list[str]:
        return reader_statements(user, password, self.database)

    def _write_meta(self, measurement: str, samples: list[Sample]) -> None:
        """Replace a measurement of the "meta" policy (created when missing)."""
        target = f"{quote_ident(META_RP)} ON {quote_ident(self.database)}"
        if META_RP not in self._policies():
            self.query(f"CREATE RETENTION POLICY {target} DURATION INF REPLICATION 1",
                       method="POST", database=False)
        self.query(f"DROP SERIES FROM {quote_ident(measurement)}", method="POST")
        result = self.write(samples, META_RP)
        if result.unwritten or result.rejected:
            raise InfluxQueryError(f"{self.location()}: {measurement} not written: "
                                   f"{result.error or result.rejected[0].reason}")

    def check(self) -> str:
        try:
            ping = self.session.get(f"{self.url}/ping", timeout=self.timeout)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"{self.location()}: "
                                   f"{describe_failure(exc, self.timeout)}") from None
        version = ping.headers.get("X-Influxdb-Version", "unknown version")
        names = {row["name"] for row in self.rows("SHOW DATABASES", database=False)}
        if self.database not in names:
            return f"answers (InfluxDB {version}), {self.credentials}; database " \
                   f"{self.database} missing: run `qmonit init`"
        present = f"answers (InfluxDB {version}), {self.credentials}, database {self.database} " \
                  "present"
        meta = META_RP in self._policies()
        missing = [name for name in (RP_CONFIG, LEVELS) if not meta or not self.rows(
            f"SELECT count(*) FROM {quote_ident(META_RP)}.{quote_ident(name)}")]
        if missing:  # the dashboards' hidden variables would find nothing
            return f"{present}; Grafana's meta.{' and meta.'.join(missing)} missing: run " \
                   f"`qmonit init`"
        return present

    def _policies(self) -> set[str]:
        return {row["name"] for row in self.rows(
            f"SHOW RETENTION POLICIES ON {quote_ident(self.database)}", database=False)}


def reader_statements(user: str, password: str, database: str) -> list[str]:
    """CREATE USER and GRANT READ, the password quoted for InfluxQL."""
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return [f'CREATE USER "{user}" WITH PASSWORD \'{quoted}\'',
            f'GRANT READ ON "{database}" TO "{user}"']


def _window_where(window: Window, start: datetime) -> str:
    """InfluxQL's condition for the points of the window beginning at `start`."""
    end = start + window.width
    return f"time >= {int(start.timestamp())}s AND time < {int(end.timestamp())}s"


def _error_text(body: str) -> str:
    match = re.search(r'"error"\s*:\s*"(.*)"', body, re.S)
    return brief((match.group(1) if match else body).strip(), 500)
