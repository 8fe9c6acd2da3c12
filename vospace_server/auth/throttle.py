"""Slows password guessing: wrong passwords per (user, client address), counted in the
metadata database.

Per pair, so someone guessing at a user from one address cannot lock that user out from
others. In the database, not in a process, so the limit is the deployment's: a guesser
spreading attempts over the replicas behind a balancer, or over the workers of one
``vospace serve --workers``, gets MAX_FAILURES tries in all, not that many per process.
A row holds only a digest of the pair and a time: no user names or addresses at rest.
"""
from __future__ import annotations

import hashlib
import time
from typing import Callable

from sqlalchemy import Column, Float, Index, String, Table, delete, func, insert, select
from sqlalchemy.engine import Engine

from ..protocol.faults import TooManyRequests
from ..storage.transactions import transaction
from ..storage.vault.schema import Id
from .store import metadata

MAX_FAILURES = 10       # wrong passwords per (user, client address) ...
FAILURE_WINDOW_S = 300  # ... within this window; then refused unchecked until it passes

login_failures = Table(
    "login_failures", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False),  # sha256 of user and client address
    Column("at", Float, nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),  # a pair's count
    Index("ix_login_failures_at", "at"),  # the pruning of every failure past the window
)


def _key(user: str, client: str) -> str:
    return hashlib.sha256(f"{user}\0{client}".encode()).hexdigest()


class FailureThrottle:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine, self.clock = engine, clock

    def check(self, user: str, client: str) -> int:
        """The recent failures of the pair; TooManyRequests once they reach the limit."""
        since = self.clock() - FAILURE_WINDOW_S
        with self.engine.connect() as conn:
            recent = conn.execute(select(func.count()).select_from(login_failures).where(
                login_failures.c.key == _key(user, client),
                login_failures.c.at > since)).scalar_one()
        if recent >= MAX_FAILURES:
            raise TooManyRequests("too many wrong passwords; try again later")
        return recent

    def failed(self, user: str, client: str) -> None:
        """Count a wrong password; rows past the window (anyone's) go at the same time, so
        the table holds at most the last five minutes of failures."""
        now = self.clock()
        with transaction(self.engine, write=True) as conn:
            conn.execute(delete(login_failures).where(
                login_failures.c.at <= now - FAILURE_WINDOW_S))
            conn.execute(insert(login_failures).values(key=_key(user, client), at=now))

    def succeeded(self, user: str, client: str) -> None:
        """A right password clears the pair's count."""
        with transaction(self.engine, write=True) as conn:
            conn.execute(delete(login_failures).where(
                login_failures.c.key == _key(user, client)))
