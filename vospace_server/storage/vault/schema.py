"""The vault's SQL schema and engine set-up (SQLite in WAL mode, or PostgreSQL).

Each node row carries its full ``path`` (unique) and its ``parent`` path, so a lookup is
one indexed query, an ancestor chain is one ``IN`` query, a page of children is an index
range scan on ``(parent, name)``, and a subtree is the range ``path > 'p/' AND path < 'p0'``
('0' follows '/' in byte order). Paths use the C collation on PostgreSQL so that range
and sort order are byte order, as on SQLite.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, Float, Index, Integer, MetaData, String, Table,
                        Text, create_engine, event)
from sqlalchemy.engine import Engine

# Tables change only through a migration (vospace_server/migrations: README, "Schema
# migrations"); tests/test_migrations.py fails while a Table here and the newest revision differ.
metadata = MetaData()

PathText = Text().with_variant(Text(collation="C"), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

nodes = Table(
    "nodes", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("path", PathText, nullable=False, unique=True),
    Column("parent", PathText, nullable=True),
    Column("name", PathText, nullable=False),
    Column("type", String(16), nullable=False),
    Column("owner", Text, nullable=False),
    Column("length", BigInteger, nullable=False, default=0),
    Column("md5", String(32), nullable=True),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
    Column("target", Text, nullable=True),
    Column("props", Text, nullable=False, default="{}"),
    Column("blob", Text, nullable=True),
    Index("ix_nodes_parent_name", "parent", "name", unique=True),
)


def make_engine(url: str) -> Engine:
    """Create the engine; on SQLite, WAL with full fsync and explicit transactions.

    The tables are not made here: ``migrations.ensure_schema`` creates and upgrades them."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=8, max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            # Autocommit at the driver; every store opens its transactions itself through
            # storage/transactions.py (BEGIN IMMEDIATE for writes, so writers queue on the
            # lock instead of failing with "database is locked").
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)
    return engine
