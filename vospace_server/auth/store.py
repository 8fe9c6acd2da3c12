"""Users and bearer tokens in SQL (the same database as the vault metadata by default).

Tokens are 256-bit random strings; only their SHA-256 is stored, so a leaked database
does not leak credentials. (A slow password hash is unnecessary for random tokens.)
"""
from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import (Boolean, Column, Float, ForeignKey, MetaData, String, Table, Text,
                        insert, select, update)
from sqlalchemy.engine import Engine

from .identity import Caller

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("name", String(64), primary_key=True),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
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

TOKEN_PREFIX = "vst_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    def ensure_user(self, name: str, is_admin: bool = False) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            if row is None:
                conn.execute(insert(users).values(name=name, is_admin=is_admin, disabled=False,
                                                  created=time.time()))
            elif is_admin and not row.is_admin:
                conn.execute(update(users).where(users.c.name == name).values(is_admin=True))

    def create_token(self, user: str, lifetime_s: float | None = None, label: str = "") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(
                digest=_digest(token), user=user, created=now, revoked=False, label=label,
                expires=None if lifetime_s is None else now + lifetime_s))
        return token

    def authenticate(self, token: str) -> Caller | None:
        """The caller a token stands for, or None if it is unknown, expired or revoked."""
        query = (select(users.c.name, users.c.is_admin, users.c.disabled, tokens.c.expires,
                        tokens.c.revoked)
                 .join(users, users.c.name == tokens.c.user)
                 .where(tokens.c.digest == _digest(token)))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.revoked or row.disabled:
            return None
        if row.expires is not None and row.expires < time.time():
            return None
        return Caller(name=row.name, is_admin=bool(row.is_admin))
