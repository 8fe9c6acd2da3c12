"""Users, passwords and bearer tokens in SQL (the same database as the vault metadata).

Tokens are 256-bit random strings; only their SHA-256 is stored, so a leaked database
does not leak credentials (a slow hash is unnecessary for random tokens). Passwords are
chosen by people, so they get argon2id. A token's public id (for listing and revoking) is
the first 12 hex digits of its digest, which reveals nothing usable.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table,
                        Text, bindparam, delete, insert, select, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..storage.transactions import transaction

# Tables change only through a migration (README, "Schema migrations").
metadata = MetaData()

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
)

# Separate from ``users`` so databases created before passwords existed need no migration.
passwords = Table(
    "passwords", metadata,
    Column("user", String(64), ForeignKey("users.name"), primary_key=True),
    Column("hash", Text, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("digest", String(64), primary_key=True),
    Column("user", String(64), ForeignKey("users.name"), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("label", Text, nullable=True),
)

# One counter that every change to users, tokens or group entries increments, in the same
# transaction as the change. Authentication results may be remembered only while it is
# unchanged (authenticate.CallerCache): because it lives in the database, a revoked token, a
# disabled account or a membership change made by any server process or by the ``vospace``
# CLI is seen on the very next request, for one single-row read per request instead of the
# token join and the group-closure queries.
auth_generation = Table(
    "auth_generation", metadata,
    Column("id", Integer, primary_key=True),
    Column("value", Integer, nullable=False),
)
_GENERATION = select(auth_generation.c.value).where(auth_generation.c.id == 1)
_BUMP = (update(auth_generation).where(auth_generation.c.id == 1)
         .values(value=auth_generation.c.value + 1))


def auth_changed(conn: Connection) -> None:
    """Call inside every transaction that changes users, tokens or group entries."""
    conn.execute(_BUMP)


TOKEN_PREFIX = "vst_"
TOKEN_ID_LENGTH = 12
_hasher = PasswordHasher()


# Built once: every token-authenticated request runs it (see groups.HOLDERS).
TOKEN_ACCOUNT = (select(users.c.name, users.c.is_admin, users.c.disabled, tokens.c.expires,
                        tokens.c.revoked)
                 .join(users, users.c.name == tokens.c.user)
                 .where(tokens.c.digest == bindparam("digest")))


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so login timing does not reveal names."""
    return _hasher.hash(secrets.token_hex(16))


def token_digest(token: str) -> str:
    """How a token is kept (and found): never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    """What the authenticator needs to know about a user."""

    name: str
    is_admin: bool
    disabled: bool
    expires: float | None = None  # of the credential it was found by, if that expires


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    created: float
    expires: float | None
    revoked: bool
    label: str

    @property
    def state(self) -> str:
        if self.revoked:
            return "revoked"
        if self.expires is not None and self.expires < time.time():
            return "expired"
        return "active"


class AuthStore:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        """``clock`` (Unix seconds) decides which tokens have expired; tests move it."""
        self.engine = engine
        self.clock = clock
        # Read on every authenticated request, so run as the driver's own SQL on a pooled
        # connection: through SQLAlchemy's execution layer it took 69 us of CPU, so 19 us.
        self._generation_sql = str(_GENERATION.compile(
            engine, compile_kwargs={"literal_binds": True}))
        self._ensure_generation_row()

    def _ensure_generation_row(self) -> None:
        """Idempotent: several server processes may start at once."""
        with transaction(self.engine) as conn:
            if conn.execute(_GENERATION).first() is not None:
                return
        try:
            with transaction(self.engine) as conn:
                conn.execute(insert(auth_generation).values(id=1, value=0))
        except IntegrityError:
            pass  # another process inserted it first

    def generation(self) -> int:
        """The auth generation (see ``auth_generation``), read on a pooled connection."""
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self._generation_sql)
                (value,) = cursor.fetchone()
                return value
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool, which ends the read transaction

    # -- users --------------------------------------------------------------------------
    def ensure_user(self, name: str, is_admin: bool = False) -> None:
        with transaction(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                conn.execute(insert(users).values(name=name, is_admin=is_admin, disabled=False,
                                                  created=time.time()))
            elif is_admin and not row.is_admin:
                conn.execute(update(users).where(users.c.name == name).values(is_admin=True))
                auth_changed(conn)

    def account(self, name: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else Account(row.name, bool(row.is_admin), bool(row.disabled))

    def list_users(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
        return [Account(r.name, bool(r.is_admin), bool(r.disabled)) for r in rows]

    def set_disabled(self, name: str, disabled: bool) -> bool:
        """Disabling takes effect on the next request: every credential checks the flag."""
        with transaction(self.engine) as conn:
            result = conn.execute(update(users).where(users.c.name == name)
                                  .values(disabled=disabled))
            auth_changed(conn)
        return result.rowcount > 0

    # -- passwords ----------------------------------------------------------------------
    def set_password(self, name: str, password: str) -> None:
        hashed = _hasher.hash(password)
        with transaction(self.engine) as conn:
            conn.execute(delete(passwords).where(passwords.c.user == name))
            conn.execute(insert(passwords).values(user=name, hash=hashed))
            auth_changed(conn)  # remembered password checks end on every replica

    def check_password(self, name: str, password: str) -> Account | None:
        """The account if ``password`` is right and the user enabled, else None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(passwords.c.hash).where(passwords.c.user == name)).first()
        try:
            _hasher.verify(row.hash if row else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        account = self.account(name) if row else None
        return account if account and not account.disabled else None

    # -- tokens -------------------------------------------------------------------------
    def create_token(self, user: str, lifetime_s: float | None = None, label: str = "") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        with transaction(self.engine) as conn:
            conn.execute(insert(tokens).values(
                digest=token_digest(token), user=user, created=now, revoked=False, label=label,
                expires=None if lifetime_s is None else now + lifetime_s))
        return token

    def authenticate(self, token: str) -> Account | None:
        """The account a token stands for, or None if unknown, expired, revoked or disabled."""
        return self.account_by_digest(token_digest(token))

    def account_by_digest(self, digest: str) -> Account | None:
        """``authenticate`` for a credential that keeps only the token's digest (a session
        host's pass, sessions/tickets.py): so a logout or revocation ends it too."""
        with self.engine.connect() as conn:
            row = conn.execute(TOKEN_ACCOUNT, {"digest": digest}).first()
        if row is None or row.revoked or row.disabled:
            return None
        if row.expires is not None and row.expires < self.clock():
            return None
        return Account(row.name, bool(row.is_admin), False, row.expires)

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        query = select(tokens).order_by(tokens.c.created)
        if user is not None:
            query = query.where(tokens.c.user == user)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [TokenInfo(r.digest[:TOKEN_ID_LENGTH], r.user, r.created, r.expires,
                          bool(r.revoked), r.label or "") for r in rows]

    def revoke_token(self, token_or_id: str) -> int:
        """Revoke by the token itself or by its public id; returns how many were revoked."""
        if token_or_id.startswith(TOKEN_PREFIX):
            condition = tokens.c.digest == token_digest(token_or_id)
        elif len(token_or_id) == TOKEN_ID_LENGTH and all(
                c in "0123456789abcdef" for c in token_or_id):
            condition = tokens.c.digest.like(token_or_id + "%")
        else:
            return 0
        with transaction(self.engine) as conn:
            auth_changed(conn)
            return conn.execute(update(tokens).where(condition).values(revoked=True)).rowcount
