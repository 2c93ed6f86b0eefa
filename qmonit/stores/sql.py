"""SQLAlchemy engine creation and the dialect-aware bulk upsert shared by every SQL table."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

_log = logging.getLogger(__name__)
UPSERT_CHUNK = 2000
ROWS_PER_INSERT = 100  # SQLite: 100 rows of up to 7 columns, well under its 32,766 variables


def make_engine(url: str, password: str = "") -> Engine:
    """An engine for a state or embedded store URL; SQLite gets WAL and a created directory."""
    parsed = make_url(url)
    if password:
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True)


def describe_db_error(exc: Exception) -> str:
    """The driver's own message (no SQL statement, no parameters, no password)."""
    detail = getattr(exc, "orig", None) or str(exc).splitlines()[0]
    text = f"{type(exc).__name__}: {detail}"
    if "no such table" in text or re.search(r"Table '.*' doesn't exist", text):
        text += " (the tables are missing: run `qmonit init` first)"
    return text


def safe_db_url(engine_or_url: Engine | str) -> str:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.render_as_string(hide_password=True)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Iterable[str],
) -> None:
    """Insert rows, or update every non-key column where the key exists (SQLite, MySQL/MariaDB).

    The columns are those of the first row. One statement, written once, runs through the
    driver's executemany with each value passed through its column type's bind processor
    (SQLite's datetimes become SQLAlchemy's own strings, as a query compares them): none of
    SQLAlchemy's per-row work, a third of the time for the thousands of rows a cycle."""
    if not rows:
        return
    key = set(key)
    columns = [c for c in table.columns if c.name in rows[0]]
    names = [c.name for c in columns]
    update_cols = [n for n in names if n not in key]
    quote = conn.dialect.identifier_preparer.quote
    listed = ", ".join(quote(n) for n in names)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        marks = ", ".join("?" * len(names))
        action = ("DO UPDATE SET " + ", ".join(f"{quote(n)} = excluded.{quote(n)}"
                                               for n in update_cols)) if update_cols \
            else "DO NOTHING"
        statement = (f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks}) "
                     f"ON CONFLICT ({', '.join(quote(n) for n in sorted(key))}) {action}")
    elif dialect in ("mysql", "mariadb"):
        marks = ", ".join(["%s"] * len(names))
        update = ", ".join(f"{quote(n)} = VALUES({quote(n)})"
                           for n in (update_cols or sorted(key)[:1]))
        statement = (f"INSERT INTO {quote(table.name)} ({listed}) VALUES ({marks}) "
                     f"ON DUPLICATE KEY UPDATE {update}")
    else:
        raise NotImplementedError(f"upsert is not implemented for the {dialect} dialect")
    dialect_types = [c.type.dialect_impl(conn.dialect) for c in columns]
    convert = [(n, proc) for n, proc in enumerate(t.bind_processor(conn.dialect)
                                                  for t in dialect_types) if proc]
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = [[row[name] for name in names] for row in rows[start : start + UPSERT_CHUNK]]
        for values in chunk:
            for n, proc in convert:
                values[n] = proc(values[n])
        conn.exec_driver_sql(statement, [tuple(values) for values in chunk])


def replace_rows(conn: Connection, table: Table, rows: Sequence[tuple],
                 keep_existing: bool = False) -> None:
    """Insert rows of every column in table order, replacing a row whose key exists (or,
    with `keep_existing`, leaving it as it is): one prepared statement run through the
    driver's executemany, none of SQLAlchemy's per-row work (the embedded store writes
    tens of thousands of rows a cycle)."""
    if conn.dialect.name == "sqlite":
        replace_flat(conn, table, [value for row in rows for value in row], keep_existing)
    else:
        _replace_each(conn, table, list(rows), keep_existing)


def replace_flat(conn: Connection, table: Table, values: list, keep_existing: bool = False
                 ) -> None:
    """replace_rows of rows given one after the other in one flat list of values (the
    embedded store's ~285,000 rows a cycle at ATLAS scale are never made tuples of on
    SQLite, which takes many rows a statement)."""
    width = len(table.columns)
    if len(values) % width:
        raise ValueError(f"{table.name}: {len(values)} values are not rows of {width} columns")
    if not values:
        return
    if conn.dialect.name != "sqlite":
        _replace_each(conn, table, list(zip(*[iter(values)] * width, strict=True)),
                      keep_existing)
        return
    one = f"({', '.join('?' * width)})"  # many rows a statement: a quarter less time
    verb = "INSERT OR IGNORE" if keep_existing else "INSERT OR REPLACE"
    statement = f"{verb} INTO {table.name} ({_names(conn, table)}) VALUES "
    step = ROWS_PER_INSERT * width
    full = len(values) - len(values) % step
    if full:
        conn.exec_driver_sql(statement + ", ".join([one] * ROWS_PER_INSERT),
                             [tuple(values[n:n + step]) for n in range(0, full, step)])
    if full < len(values):
        conn.exec_driver_sql(statement + one, [tuple(values[n:n + width])
                                               for n in range(full, len(values), width)])


def _names(conn: Connection, table: Table) -> str:
    return ", ".join(conn.dialect.identifier_preparer.quote(c.name) for c in table.columns)


def _replace_each(conn: Connection, table: Table, rows: list[tuple],
                  keep_existing: bool) -> None:
    """replace_rows on MySQL/MariaDB: one row a statement, chunks through executemany."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect not in ("mysql", "mariadb"):
        raise NotImplementedError(f"replace_rows is not implemented for the {dialect} dialect")
    columns = [c.name for c in table.columns]
    key = {c.name for c in table.primary_key.columns}
    quote = conn.dialect.identifier_preparer.quote
    update = ", ".join(f"{quote(c)} = VALUES({quote(c)})" for c in columns
                       if c not in key and not keep_existing) or \
        f"{quote(columns[0])} = {quote(columns[0])}"
    statement = (f"INSERT INTO {table.name} ({_names(conn, table)}) VALUES "
                 f"({', '.join(['%s'] * len(columns))}) ON DUPLICATE KEY UPDATE {update}")
    for start in range(0, len(rows), UPSERT_CHUNK):
        conn.exec_driver_sql(statement, rows[start : start + UPSERT_CHUNK])


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...


def utc(moment: datetime | None) -> datetime | None:
    """SQLite and MySQL hand back naive datetimes; they are UTC (None stays None: the
    overloads tell mypy that a NOT NULL column gives a datetime)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@overload
def naive(moment: datetime) -> datetime: ...
@overload
def naive(moment: None) -> None: ...


def naive(moment: datetime | None) -> datetime | None:
    """The other way: an aware time as the naive UTC a DATETIME column keeps (a naive one
    is taken as UTC already). With `utc`, the one conversion at the SQL boundary."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass
class Caught:
    """What `state_errors` caught: "" or `state store: <what the server said>`."""

    error: str = ""


@contextmanager
def state_errors() -> Iterator[Caught]:
    """The one handler of SQL state-store errors: the block's SQLAlchemyError is caught and
    said (describe_db_error: no URL, no password) in `caught.error`; the caller decides what
    the failure costs (a step skipped, a command's exit code, a report's error)."""
    caught = Caught()
    try:
        yield caught
    except SQLAlchemyError as exc:
        caught.error = f"state store: {describe_db_error(exc)}"


@contextmanager
def state_step(errors: list[str], skipped: str = "", log: logging.Logger = _log
               ) -> Iterator[None]:
    """One step of a run on the SQL state: a store error is logged (on `log`, the caller's)
    and added to `errors`, saying what was `skipped`, and the run goes on (a state store
    that refuses must cost its steps, never the points or the other steps)."""
    with state_errors() as caught:
        yield
    if caught.error:
        message = caught.error + (f"; {skipped}" if skipped else "")
        log.error(message)
        errors.append(message)
