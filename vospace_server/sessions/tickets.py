"""How a browser gets onto a session host: single-use tickets, then the host's own pass.

A browser arrives at ``<id>.<session_domain>`` (sessions/hosts.py) with no credential there:
the platform's cookies are host-only. The session host sends it to the platform
(``GET /session-ticket/<id>?next=<path>``), where its login cookie is; the platform checks
that the user may use the session and redirects back to the session host with a ticket:
random, bound to the session, the user and the login token it was issued for, valid for
TICKET_SECONDS and kept as a row (its digest) in the metadata database that its first use
deletes, so it works once on whichever replica. The session host (``GET /ticket``) swaps it
for a cookie of its own, the pass, and redirects to the clean ``next`` path: the ticket never
reaches the app, the page's address or a Referer.

The pass (``PASS_COOKIE``: host-only, HttpOnly, SameSite=Lax, Secure over TLS) reads
``session|user|expires|token digest|HMAC``. It opens only its own session's host, ends when
the login does (at the latest) and as soon as that login token is revoked (a logout), and the
right to use the session is checked again on every request (proxy.py), so unsharing a
session shuts its visitors out at once.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import Column, Float, Index, String, Table, delete, insert, select
from sqlalchemy.engine import Engine

from ..auth.store import token_digest
from ..storage.transactions import transaction
from .store import metadata

TICKET_SECONDS = 30
PASS_COOKIE = "vospace_session_pass"
TICKET_PATH = "/ticket"  # on a session host

session_tickets = Table(
    "session_tickets", metadata,
    Column("digest", String(64), primary_key=True),
    Column("session", String(16), nullable=False),
    Column("user", String(64), nullable=False),
    Column("credential", String(64), nullable=False),  # digest of the login token
    Column("expires", Float, nullable=False),
    Index("ix_session_tickets_expires", "expires"),
)


@dataclass(frozen=True)
class Pass:
    """Who a session host's cookie (or a just redeemed ticket) stands for."""

    session: str
    user: str
    credential: str
    expires: float = 0.0


class Tickets:
    """Issues and redeems tickets (database rows) and signs and checks passes (HMAC)."""

    def __init__(self, engine: Engine, secret: bytes,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine, self.clock = engine, clock
        self._key = hmac.new(secret, b"vospace session passes", hashlib.sha256).digest()

    def issue(self, session_id: str, user: str, credential: str) -> str:
        ticket = secrets.token_urlsafe(32)
        now = self.clock()
        with transaction(self.engine) as conn:
            conn.execute(delete(session_tickets).where(session_tickets.c.expires < now))
            conn.execute(insert(session_tickets).values(
                digest=token_digest(ticket), session=session_id, user=user,
                credential=credential, expires=now + TICKET_SECONDS))
        return ticket

    def redeem(self, ticket: str, session_id: str) -> Pass | None:
        """The ticket's holder, once: the row is deleted by the first redemption, whether
        it was for this session or not, in time or not."""
        digest = token_digest(ticket)
        with transaction(self.engine) as conn:
            row = conn.execute(select(session_tickets)
                               .where(session_tickets.c.digest == digest)).first()
            if row is None or conn.execute(delete(session_tickets).where(
                    session_tickets.c.digest == digest)).rowcount != 1:
                return None  # unknown, or redeemed meanwhile by another request
        if row.expires < self.clock() or row.session != session_id:
            return None
        return Pass(row.session, row.user, row.credential)

    def sign(self, granted: Pass) -> str:
        body = f"{granted.session}|{granted.user}|{int(granted.expires)}|{granted.credential}"
        return f"{body}|{self._mac(body)}"

    def verify(self, value: str, session_id: str) -> Pass | None:
        """The pass a cookie value carries if it is ours, for this session and unexpired."""
        body, _, mac = value.rpartition("|")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        parts = body.split("|")
        if len(parts) != 4 or parts[0] != session_id or not parts[2].isdigit():
            return None
        if int(parts[2]) < self.clock():
            return None
        return Pass(parts[0], parts[1], parts[3], float(parts[2]))

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
