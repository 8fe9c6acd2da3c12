"""Schema migrations of the metadata database (Alembic; SQLite and PostgreSQL).

Every table of the metadata database (vault nodes and versions, users, tokens, groups,
POSIX ids, UWS jobs, and whatever comes next) is created and changed only by the revisions
in ``versions/``; no store calls ``create_all``. ``ensure_schema`` runs at start-up (and
``vospace migrate`` on demand): it upgrades the database to the newest revision under a
lock that several server processes starting at once share (PostgreSQL: an advisory lock;
SQLite: an ``flock`` beside the database file), so exactly one of them migrates and the
others find the work done. A database made before migrations existed (tables, no
``alembic_version``) is adopted: the baseline creates only the tables it lacks.

Adding a table or column: change the ``Table`` where it is defined, then run
``python -m vospace_server.migrations revision "what changed"`` which writes a new revision
with the difference (review it; a new table reads best as ``ddl.py``'s column groups), and
``pytest tests/test_migrations.py``, which fails while the newest revision and the tables in
the code differ.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # our one line says what was done

HERE = Path(__file__).resolve().parent
ADVISORY_LOCK_KEY = 0x766F7370616365  # "vospace": one key for every replica's migration


class SchemaOutdated(RuntimeError):
    """The database is not at this code's newest revision and migrating was not allowed."""


def config(connection: Connection | None = None) -> Config:
    """An Alembic configuration without alembic.ini: the scripts are this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(config()).get_current_head()


def current(conn: Connection) -> str | None:
    """The database's revision (None: never migrated, possibly empty)."""
    return MigrationContext.configure(conn).get_current_revision()


def table_metadata() -> list[MetaData]:
    """Every MetaData whose tables live in the metadata database (for autogenerate and the
    test that the newest revision matches them). Add a new module's MetaData here."""
    from ..auth import groups, posix, store, throttle  # noqa: F401 - their tables join store's
    from ..sessions import store as sessions, tickets  # noqa: F401 - tickets join store's
    from ..storage import jobs
    from ..storage.vault import copy_ledger, schema, versions  # noqa: F401 - versions' table joins schema's

    return [schema.metadata, store.metadata, posix.metadata, jobs.metadata, sessions.metadata,
            copy_ledger.metadata]


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the one migration lock of this database."""
    with contextlib.ExitStack() as stack:
        if engine.dialect.name == "postgresql":
            conn = stack.enter_context(engine.connect())
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            conn.commit()  # the lock is the session's; migrations run in their own transaction
            stack.callback(lambda: conn.execute(text("SELECT pg_advisory_unlock(:k)"),
                                                {"k": ADVISORY_LOCK_KEY}))
            yield conn
            return
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            lock = stack.enter_context(open(f"{database}.migrate-lock", "a"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield stack.enter_context(engine.connect())


def _check_known(revision: str | None) -> None:
    """A revision this code does not know was made by a newer server: never touch it."""
    known = {script.revision for script in ScriptDirectory.from_config(config()).walk_revisions()}
    if revision is not None and revision not in known:
        raise SchemaOutdated(f"the database schema is at revision {revision}, newer than this "
                             f"server knows ({head()}): run the newer server version")


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade to the newest revision under the lock; returns (revision before, after)."""
    with _migration_lock(engine) as conn:
        before = current(conn)
        _check_known(before)
        if before != head():
            command.upgrade(config(conn), "head")
            conn.commit()
            log.info("database schema upgraded from %s to %s", before or "nothing", head())
        return before, current(conn) or ""


def ensure_schema(engine: Engine, migrate: bool = True) -> None:
    """At start-up: bring the schema to the newest revision, or (``migrate=False``) refuse
    to run on one that is not, so no process works on tables it does not expect."""
    if migrate:
        upgrade(engine)
        return
    with engine.connect() as conn:
        found = current(conn)
    _check_known(found)
    if found != head():
        raise SchemaOutdated(f"the database schema is at revision {found or 'none'}, this "
                             f"server needs {head()} (run: vospace migrate)")
