"""POSIX ids for users and groups (like CADC's posix-mapper): stable, allocated on first use.

Each user gets a uid (from ``posix_uid_start`` up) and a personal group with gid = uid;
each group URI gets a gid (from ``posix_gid_start`` up; keep the two ranges apart). Rows
are never reused or renumbered, so files keep their owners. Allocation is one INSERT of
``max + 1`` that simply retries when another server took the same number (unique index).

``passwd()`` and ``group()`` render ``/etc/passwd`` and ``/etc/group`` lines for session
containers (served at ``/posix-mapper/uid`` and ``/posix-mapper/gid``, and printed by
``vospace posix passwd|group``); group lines list the members (nested groups resolved).
"""
from __future__ import annotations

import time

from sqlalchemy import (BigInteger, Column, Integer, MetaData, String, Table, func, insert,
                        select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..storage.transactions import transaction

from .groups import GroupStore, group_uri, resolve_group
from .store import AuthStore

# Tables change only through a migration (README, "Schema migrations").
metadata = MetaData()

posix_users = Table(
    "posix_users", metadata,
    Column("name", String(64), primary_key=True),
    Column("uid", BigInteger().with_variant(Integer(), "sqlite"), nullable=False, unique=True),
)

posix_groups = Table(
    "posix_groups", metadata,
    Column("uri", String(512), primary_key=True),
    Column("gid", BigInteger().with_variant(Integer(), "sqlite"), nullable=False, unique=True),
)

ATTEMPTS = 20
MISS_CACHE_S = 5.0
MISS_CACHE_MAX = 65536


class PosixMapper:
    def __init__(self, engine: Engine, auth: AuthStore, groups: GroupStore, uid_start: int,
                 gid_start: int) -> None:
        self.engine, self.auth, self.groups = engine, auth, groups
        self.uid_start, self.gid_start = uid_start, gid_start
        self._uids: dict[str, int] = {}     # ids never change once given: safe to cache
        self._gids: dict[str, int] = {}
        self._uris: dict[int, str] = {}
        self._users: dict[int, str] = {}
        self._misses: dict[tuple[str, int], float] = {}  # (table, id) -> until when a miss holds

    def _allocate(self, table: Table, key_col: str, id_col: str, key: str, start: int) -> int:
        keys, ids = table.c[key_col], table.c[id_col]
        for _ in range(ATTEMPTS):
            with self.engine.connect() as conn:
                found = conn.execute(select(ids).where(keys == key)).scalar()
            if found is not None:
                return int(found)
            try:
                with transaction(self.engine) as conn:
                    top = conn.execute(select(func.max(ids)).where(ids >= start)).scalar()
                    conn.execute(insert(table).values(
                        {key_col: key, id_col: max(start, (top or start - 1) + 1)}))
            except IntegrityError:
                continue  # someone else took that name or number: look again
        raise RuntimeError(f"could not allocate a POSIX id for {key}")

    def uid(self, user: str) -> int:
        if user not in self._uids:
            self._uids[user] = self._allocate(posix_users, "name", "uid", user, self.uid_start)
        return self._uids[user]

    def gid(self, uri: str) -> int:
        """The gid of the group ``uri`` means (the CADC client's spelling resolved)."""
        if uri not in self._gids:
            resolved = resolve_group(uri, self.groups.authority)
            if resolved != uri:
                self._gids[uri] = self.gid(resolved)
                return self._gids[uri]
            gid = self._allocate(posix_groups, "uri", "gid", uri, self.gid_start)
            self._gids[uri], self._uris[gid] = gid, uri
        return self._gids[uri]

    def group_uri(self, gid: int) -> str | None:
        if gid < self.gid_start:  # personal groups and system gids: never a group URI
            return None
        uri = self._reverse(self._uris, posix_groups.c.uri, posix_groups.c.gid, gid)
        if uri is not None:
            self._gids[uri] = gid
        return uri

    def user_of(self, uid: int) -> str | None:
        """The user with this uid (None for system and unknown ids): who owns a file that
        was made directly on disk, e.g. inside a session."""
        if uid < self.uid_start:
            return None
        return self._reverse(self._users, posix_users.c.name, posix_users.c.uid, uid)

    def _reverse(self, found: dict[int, str], name_col: Column, id_col: Column,
                 ident: int) -> str | None:
        """The name with id ``ident``, remembered in ``found`` (ids never change)."""
        if ident not in found:
            # Most files carry a personal gid (= uid), which has no group URI: remember a
            # miss briefly, or listing a 10,000-file folder costs 10,000 queries. Brief,
            # because another server process may allocate that id meanwhile.
            key = (id_col.table.name, ident)
            if self._misses.get(key, 0.0) > time.monotonic():
                return None
            with self.engine.connect() as conn:
                name = conn.execute(select(name_col).where(id_col == ident)).scalar()
            if name is None:
                if len(self._misses) > MISS_CACHE_MAX:
                    self._misses.clear()
                self._misses[key] = time.monotonic() + MISS_CACHE_S
                return None
            found[ident] = name
        return found[ident]

    # -- listings -----------------------------------------------------------------------
    def passwd(self, home_root: str = "/arc/home") -> list[str]:
        """``name:x:uid:gid::home:/bin/bash`` for every user (ids allocated as needed)."""
        lines = []
        for account in self.auth.list_users():
            uid = self.uid(account.name)
            lines.append(f"{account.name}:x:{uid}:{uid}::{home_root}/{account.name}:/bin/bash")
        return lines

    def group(self) -> list[str]:
        """Personal groups, then every group of the group service with its members."""
        users = [a.name for a in self.auth.list_users()]
        members: dict[str, list[str]] = {}
        for user in users:
            for uri in self.groups.memberships(user):
                members.setdefault(uri, []).append(user)
        lines = [f"{user}:x:{self.uid(user)}:{user}" for user in users]
        for name in self.groups.names():
            uri = group_uri(self.groups.authority, name)
            lines.append(f"{name}:x:{self.gid(uri)}:{','.join(sorted(members.get(uri, [])))}")
        return lines
