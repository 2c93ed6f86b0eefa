"""The embedded time-series store's tables: series, their tags, and one row per field value."""

from sqlalchemy import BigInteger, Column, Double, MetaData, String, Table, Text

metadata = MetaData()

ts_series = Table(
    "ts_series", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("measurement", String(64), nullable=False, index=True),
    Column("series_key", Text, nullable=False),
)
ts_tags = Table(
    "ts_tags", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tag", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    # no index on (tag, value): every query joins a series' tags by (series_id, tag), the
    # key; a second b-tree doubled the cost of the ~700,000 rows of a first ATLAS cycle
)
ts_points = Table(
    "ts_points", metadata,
    Column("rp", String(8), primary_key=True),
    Column("measurement", String(64), primary_key=True),
    Column("time", BigInteger, primary_key=True, autoincrement=False),
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("field", String(64), primary_key=True),
    Column("value", Double, nullable=True),
    Column("text", Text, nullable=True),
    # Clustered on its key (no rowid, no other index): a cycle's rows go to the end of each
    # measurement's run, so a write touches a few pages however large the table grows (keyed
    # by series first, every cycle dirtied a page per series and the writes slowed with every
    # day kept), and every query reads one measurement's time range.
    sqlite_with_rowid=False,
)
