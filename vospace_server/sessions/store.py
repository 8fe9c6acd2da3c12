"""Sessions and their lifecycle events as rows in the metadata database.

Every server process reads and writes the same rows, so any process answers for any
session. A process that supervises a local sandbox writes its ``host:pid:nonce`` into
``runner_id``; the others ask it to stop a session by setting ``stop_reason`` (see
runners/local.py), or clean up themselves when that process is gone.
"""
from __future__ import annotations

import json
import time
import zlib

from sqlalchemy import (Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text,
                        delete, func, insert, select, text, update)
from sqlalchemy.engine import Connection, Engine, Row

from ..storage.transactions import transaction
from .model import ACTIVE, HEADLESS, PENDING, RUNNING, Session

# Tables change only through a migration (README, "Schema migrations").
metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("id", String(16), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("image", Text, nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("uid", Integer, nullable=False),
    Column("gid", Integer, nullable=False),
    Column("groups", Text, nullable=False, default="[]"),       # JSON list of gids
    Column("cores_request", Integer, nullable=False),
    Column("cores_limit", Integer, nullable=False),
    Column("ram_request", Integer, nullable=False),
    Column("ram_limit", Integer, nullable=False),
    Column("gpus", Integer, nullable=False, default=0),
    Column("fixed", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
    Column("expiry", Float, nullable=False),
    Column("ended", Float, nullable=True),
    Column("command", Text, nullable=False, default="[]"),      # JSON argv
    Column("env", Text, nullable=False, default="{}"),          # JSON of the user's env
    Column("runner", String(16), nullable=False),
    Column("runner_id", Text, nullable=True),
    Column("workdir", Text, nullable=True),
    Column("stop_reason", Text, nullable=True),
    Column("discard", Boolean, nullable=False, default=False),
    Column("ram_in_use", Float, nullable=True),
    Column("cpu_in_use", Float, nullable=True),
    Column("shared_group", Text, nullable=True),
    Index("ix_sessions_owner", "owner", "status"),
    Index("ix_sessions_status", "status"),
)

session_events = Table(
    "session_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session", String(16), nullable=False),
    Column("time", Float, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_session_events_session", "session", "id"),
)

_JSON_FIELDS = ("groups", "command", "env")


def _row(row: Row) -> Session:
    values = dict(row._mapping)
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name])
    return Session(**values)


def _values(session: Session) -> dict:
    values = dict(session.__dict__)
    for name in _JSON_FIELDS:
        values[name] = json.dumps(values[name])
    return values


class LimitReached(Exception):
    """The owner already has ``limit`` active interactive sessions."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- creating and reading -----------------------------------------------------------
    def create(self, session: Session, max_interactive: int) -> None:
        """Insert ``session``; an interactive one only if its owner is under the limit.

        Count and insert are one transaction, serialized per owner (SQLite's write lock,
        PostgreSQL an advisory lock on the owner), so two launches cannot both pass."""
        with transaction(self.engine) as conn:
            if session.interactive:
                self._lock_owner(conn, session.owner)
                count = conn.execute(select(func.count()).select_from(sessions).where(
                    sessions.c.owner == session.owner, sessions.c.type != HEADLESS,
                    sessions.c.status.in_((PENDING, RUNNING)))).scalar() or 0
                if count >= max_interactive:
                    raise LimitReached(max_interactive)
            conn.execute(insert(sessions).values(**_values(session)))
            self._event(conn, session.id, f"Created: {session.type} session {session.name} "
                                          f"({session.image})")

    def _lock_owner(self, conn: Connection, owner: str) -> None:
        if self.engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": zlib.crc32(f"session:{owner}".encode())})

    def get(self, session_id: str) -> Session | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
        return _row(row) if row else None

    def list(self, owner: str | None = None, types: tuple[str, ...] = (),
             statuses: tuple[str, ...] = ()) -> list[Session]:
        query = select(sessions).order_by(sessions.c.created)
        if owner is not None:
            query = query.where(sessions.c.owner == owner)
        if types:
            query = query.where(sessions.c.type.in_(types))
        if statuses:
            query = query.where(sessions.c.status.in_(statuses))
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def active(self, runner_id: str | None = None) -> list[Session]:
        """Sessions not yet finished (of one supervising process, if given)."""
        query = select(sessions).where(sessions.c.status.in_(ACTIVE))
        if runner_id is not None:
            query = query.where(sessions.c.runner_id == runner_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def count_by_type_status(self) -> dict[tuple[str, str], int]:
        """(type, status) -> number of session rows, for the metrics."""
        query = select(sessions.c.type, sessions.c.status, func.count()).group_by(
            sessions.c.type, sessions.c.status)
        with self.engine.connect() as conn:
            return {(kind, status): n for kind, status, n in conn.execute(query)}

    def events(self, session_id: str) -> list[tuple[float, str]]:
        query = (select(session_events.c.time, session_events.c.text)
                 .where(session_events.c.session == session_id).order_by(session_events.c.id))
        with self.engine.connect() as conn:
            return [(r.time, r.text) for r in conn.execute(query)]

    # -- changing -----------------------------------------------------------------------
    @staticmethod
    def _event(conn: Connection, session_id: str, text_: str) -> None:
        conn.execute(insert(session_events).values(session=session_id, time=time.time(),
                                                   text=text_))

    def update(self, session_id: str, event: str | None = None,
               only_if_active: bool = True, **values) -> bool:
        """Set ``values`` (and log ``event``); by default only while the session is active,
        so a late writer never revives a finished session."""
        cond = sessions.c.id == session_id
        if only_if_active:
            cond = cond & sessions.c.status.in_(ACTIVE)
        with transaction(self.engine) as conn:
            changed = conn.execute(update(sessions).where(cond).values(**values)).rowcount == 1
            if changed and event:
                self._event(conn, session_id, event)
        return changed

    def event(self, session_id: str, text_: str) -> None:
        with transaction(self.engine) as conn:
            self._event(conn, session_id, text_)

    def delete(self, session_id: str) -> None:
        with transaction(self.engine) as conn:
            conn.execute(delete(session_events).where(session_events.c.session == session_id))
            conn.execute(delete(sessions).where(sessions.c.id == session_id))

    def finished_before(self, when: float) -> list[Session]:
        query = select(sessions).where(sessions.c.status.not_in(ACTIVE), sessions.c.ended < when)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]
