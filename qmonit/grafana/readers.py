"""Grafana's own reading accounts: what they may read, how `qmonit init` makes them, the check.

Any Grafana viewer can send a statement of their own through the datasource (the query API
takes raw SQL and InfluxQL), so the datasource's account is the real limit: SELECT on the
tables the dashboards read (derived from the dashboards' SQL, `tables_read`) and InfluxDB
READ on the database. Escaping in the dashboards (helpers.py) keeps hostile tag values and
crafted links inside their literals; the account keeps a viewer from writing.

Backslashes: Grafana's `:sqlstring` and the MySQL datasource double a quote and leave a
backslash alone, which is only safe when the session has NO_BACKSLASH_ESCAPES (otherwise
`\\'` ends no literal but `\\` escapes the doubled quote: a value `\\'` breaks out). Grafana's
MySQL datasource has no session-init setting, so the server sets it, for the reader only:
`init_connect` runs a statement at each connection of an account, conditional on
`CURRENT_USER()`. Facts this relies on (checked on MariaDB 10.11 here, `tests/
test_grafana_readers.py`; MariaDB's pages on init_connect, SUPER and CONNECTION ADMIN; MySQL 8
per its manual's init_connect entry, not tried here: no MySQL 8 server can run on this host):
- init_connect is skipped for accounts with SUPER (MariaDB: also CONNECTION ADMIN;
  MySQL 8: CONNECTION_ADMIN or SUPER): harmless, the reader has neither.
- A failing init_connect statement disconnects the client (MariaDB, MySQL 8), so the
  statement is kept simple and tested on the server.
- It is one global for the whole server: `init` sets it only when it is empty or already
  ours, never replacing a DBA's statement (it prints the statements instead).
- It is not persisted by SET GLOBAL on MariaDB (put it in the server's my.cnf too); MySQL 8
  can use SET PERSIST.
`qmonit check` connects as the reader and says whether its session has NO_BACKSLASH_ESCAPES.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from qmonit.core.config import Config
from qmonit.stores.sql import describe_db_error
from qmonit.stores.timeseries.base import StoreUnavailable, TimeSeriesStore
from qmonit.stores.timeseries.influx import InfluxQueryError

# A reader's name goes into statements and init_connect: plain names only.
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+`?(\w+)`?", re.IGNORECASE)


class ReaderSetupError(ValueError):
    pass


def tables_read(queries: Iterable[str]) -> list[str]:
    """The tables named after FROM/JOIN in SQL queries (sub-queries `FROM (` name none)."""
    return sorted({name for query in queries for name in _TABLE.findall(query)})


def sql_queries(model: Any) -> Iterator[str]:
    """Every SQL a dashboard model runs: MySQL targets' rawSql and MySQL variables' queries."""
    if isinstance(model, dict):
        if isinstance(model.get("rawSql"), str):
            yield model["rawSql"]
        source = model.get("datasource")
        if isinstance(source, dict) and source.get("type") == "mysql" and \
                isinstance(model.get("query"), str):
            yield model["query"]
        for value in model.values():
            yield from sql_queries(value)
    elif isinstance(model, list):
        for value in model:
            yield from sql_queries(value)


def dashboard_tables(models: Sequence[Any], alert_sql: Sequence[str]) -> list[str]:
    """The one list of tables Grafana's SQL reader gets SELECT on."""
    return tables_read([q for model in models for q in sql_queries(model)] + list(alert_sql))


def checked_name(name: str, key: str) -> str:
    if not ACCOUNT_NAME.match(name):
        raise ReaderSetupError(f"{key} {name!r}: only letters, digits, _ . - (up to 32)")
    return name


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def init_connect_value(user: str) -> str:
    """The server's init_connect: NO_BACKSLASH_ESCAPES added for `user`'s sessions only."""
    return (f"SET SESSION sql_mode = IF(SUBSTRING_INDEX(CURRENT_USER(), '@', 1) = '{user}', "
            f"CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES'), @@SESSION.sql_mode)")


def sql_statements(user: str, password: str, database: str, tables: Sequence[str]
                   ) -> list[str]:
    """What a DBA runs (or `init` runs) for the SQL reader; the password as given."""
    account = f"'{user}'@'%'"
    return ([f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {_sql_string(password)}"]
            + [f"GRANT SELECT ON `{database}`.`{table}` TO {account}" for table in tables]
            + [f"SET GLOBAL init_connect = {_sql_string(init_connect_value(user))}"])


def create_sql_reader(engine: Engine, user: str, password: str, tables: Sequence[str]
                      ) -> list[str]:
    """Run the SQL reader's statements as qmonit's account; lines saying what was done.
    init_connect is left alone when it holds someone else's statement (ReaderSetupError)."""
    database = make_url(str(engine.url)).database or ""
    statements = sql_statements(user, password, database, tables)
    with engine.begin() as conn:
        current = conn.execute(text("SELECT @@GLOBAL.init_connect")).scalar() or ""
        if current and current != init_connect_value(user):
            raise ReaderSetupError(
                f"the server's init_connect is already set ({current!r}); qmonit will not "
                f"replace it: add NO_BACKSLASH_ESCAPES for {user!r} to it")
        for statement in statements:
            conn.exec_driver_sql(statement)
    return [f"SQL reader {user!r}: SELECT on {', '.join(tables)}; NO_BACKSLASH_ESCAPES "
            f"through init_connect"]


def session_sql_mode(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT @@SESSION.sql_mode")).scalar() or ""


def backslash_status(engine: Engine) -> str:
    """`check`'s line for the reader's session: literal backslashes, or what is wrong."""
    mode = session_sql_mode(engine)
    if "NO_BACKSLASH_ESCAPES" in mode.split(","):
        return "answers, NO_BACKSLASH_ESCAPES in its sessions"
    return ("FAILED: its sessions lack NO_BACKSLASH_ESCAPES: a backslash in a dashboard "
            "variable can end a quoted value (run `qmonit init` or set the server's "
            "init_connect, see README Security)")


def grafana_tables(cfg: Config) -> list[str]:
    """The tables of the configured dashboards' SQL and of the provisioned alert rules."""
    from qmonit.grafana.build import build_all
    from qmonit.grafana.provision import OPEN_FLAGS_SQL, STALE_SQL
    return dashboard_tables([built.model for built in build_all(cfg)],
                            [OPEN_FLAGS_SQL, STALE_SQL])


def setup(cfg: Config, engine: Engine, store: TimeSeriesStore) -> tuple[list[str], list[str]]:
    """`qmonit init`'s part: create the readers configured; (done, what a DBA must run)."""
    done: list[str] = []
    todo: list[str] = []
    grafana = cfg.settings.grafana
    sql_user, influx_user = grafana.sql_reader_user, grafana.influxdb_reader_user
    if sql_user and engine.dialect.name == "mysql":
        tables, user = grafana_tables(cfg), sql_user
        try:
            checked_name(user, "[grafana] sql_reader_user")
            done += create_sql_reader(engine, user, grafana.sql_reader_password, tables)
        except (SQLAlchemyError, ReaderSetupError) as exc:
            reason = describe_db_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            database = make_url(str(engine.url)).database or ""
            todo.append(f"SQL reader {user!r} not created ({reason}); as an administrator run:\n"
                        + "\n".join(f"  {s};" for s in sql_statements(
                            user, "PASSWORD", database, tables)))
    if influx_user and store.server:
        user = influx_user
        try:
            checked_name(user, "[grafana] influxdb_reader_user")
            done += store.create_reader(user, grafana.influxdb_reader_password)
        except (InfluxQueryError, StoreUnavailable, ReaderSetupError) as exc:
            todo.append(f"InfluxDB reader {user!r} not created ({exc}); as an admin run:\n"
                        + "\n".join(f"  {s}" for s in store.reader_statements(
                            user, "PASSWORD")))
    return done, todo


def reader_engine(cfg: Config, engine: Engine) -> Engine | None:
    """An engine on the state store as [grafana] sql_reader_user, when one is configured."""
    grafana = cfg.settings.grafana
    if not grafana.sql_reader_user or engine.dialect.name != "mysql":
        return None
    url = make_url(cfg.sql_url).set(username=grafana.sql_reader_user,
                                     password=grafana.sql_reader_password or None)
    return create_engine(url)
