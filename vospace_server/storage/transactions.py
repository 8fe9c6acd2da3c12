"""One way to run a transaction on the metadata database, for every store that writes to it.

The SQLite engine runs its driver in autocommit (see ``vault/schema.make_engine``), so that
nothing opens a transaction behind our back and readers never hold a snapshot longer than a
statement. The flip side: SQLAlchemy's ``engine.begin()`` emits no ``BEGIN`` there, and the
statements of such a block commit one by one. Every multi-statement write therefore goes
through ``transaction``: ``BEGIN IMMEDIATE`` on SQLite (the write lock is taken up front, so
concurrent writers queue on the busy timeout instead of failing half-way with "database is
locked" on an upgrade from a read lock), the driver's own transaction on PostgreSQL; commit
when the block ends, roll back everything when it raises.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.engine import Connection, Engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def transaction(engine: Engine, write: bool = True) -> Iterator[Connection]:
    """A connection inside one transaction: all of the block's statements or none.

    ``write=False`` gives a consistent read of several statements (a plain ``BEGIN`` on
    SQLite, which takes no write lock)."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
