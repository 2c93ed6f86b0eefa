"""Every state table of every owner: what `qmonit init` creates, what `check` finds missing.
"""

from __future__ import annotations

from sqlalchemy import Engine, Index, inspect, text

# every owner's tables join the metadata when its module is imported
from qmonit.stores.state import (  # noqa: F401
    alerts,
    batch,
    history,
    lease,
    queues,
    series,
    status,
    watermarks,
)
from qmonit.stores.state.metadata import metadata
from qmonit.stores.state.series import move_shapes, series_seen

UNUSED_INDEXES = [*series.UNUSED_INDEXES.items(), *batch.UNUSED_INDEXES.items()]


def missing_tables(engine: Engine) -> list[str]:
    """The state tables `qmonit init` has not created yet (raises SQLAlchemyError)."""
    present = set(inspect(engine).get_table_names())
    return [table.name for table in metadata.sorted_tables if table.name not in present]


def missing_columns(engine: Engine) -> list[str]:
    """`table.column` of the columns a newer qmonit added to tables that exist, and the
    columns it moved out of them (`series_seen`'s shapes, into series_shapes)."""
    inspector = inspect(engine)
    present_tables = set(inspector.get_table_names())
    missing = []
    for table in metadata.sorted_tables:
        if table.name not in present_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{c.name}" for c in table.columns
                    if c.name not in present and c.nullable]
        if table is series_seen and "tags" in present:
            missing.append("series_seen's shapes (moved to series_shapes)")
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        missing += [f"{table.name}: index {i.name}" for i in sorted(table.indexes, key=_name)
                    if i.name not in indexes]
    return missing


def _name(index: Index) -> str:
    return str(index.name)


def create_tables(engine: Engine) -> list[str]:
    """Create missing tables, add columns a newer qmonit defines to existing ones, drop the
    indexes it no longer uses; returns what it changed."""
    created = missing_tables(engine)
    metadata.create_all(engine)
    added = [f"{len(created)} table{'s' if len(created) > 1 else ''} created "
             f"({', '.join(created)})"] if created else []
    inspector = inspect(engine)
    with engine.begin() as conn:
        for name, index in UNUSED_INDEXES:
            if any(i["name"] == index for i in inspector.get_indexes(name)):
                on = "" if conn.dialect.name == "sqlite" else f" ON {name}"
                conn.execute(text(f"DROP INDEX {index}{on}"))
                added.append(f"{name}: unused index {index} dropped")
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present and column.nullable:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
                    added.append(f"{table.name}.{column.name}")
            if table is series_seen and "tags" in present:
                added.append(move_shapes(conn))
            indexes = {i["name"] for i in inspector.get_indexes(table.name)}
            for new in sorted(table.indexes, key=_name):
                if new.name not in indexes:  # a newer qmonit's: minutes on a large table
                    new.create(conn)
                    added.append(f"{table.name}: index {new.name}")
    return added
