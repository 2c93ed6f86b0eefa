"""The SQLAlchemy MetaData every state table is defined on (a leaf: each owner's module
adds its tables, schema.py creates them all).
"""

from __future__ import annotations

from sqlalchemy import (
    MetaData,
)

metadata = MetaData()
