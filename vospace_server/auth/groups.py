"""Groups (GMS-like): members are users or other groups; owners and administrators manage them.

Group URIs look like ``ivo://<authority>/gms?<name>``. Clients may write bare names in
``groupread``/``groupwrite``; :func:`normalize_group_list` is the one place that checks a
value and turns bare names into our URIs. Group URIs are stored as the client sent them:
the CADC client's ``vchmod`` writes ``ivo://cadc.nrc.ca/gms?<name>`` and its ``vls`` strips
exactly that prefix to print bare names, so that spelling must come back unchanged.
:func:`resolve_group` (and :func:`member_of_any` for ACL checks) says which of our groups a
stored URI means. Membership is resolved on every
request whose token is not in the authenticator's cache, and every change bumps the
generation counter (store.auth_changed) that empties that cache, so a change takes effect
at once.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from sqlalchemy import (Column, Float, ForeignKey, String, Table, and_, bindparam, delete,
                        insert, or_, select)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ..protocol import properties as props
from ..protocol.faults import DuplicateNode, InvalidArgument, NodeNotFound
from ..storage.transactions import transaction
from .store import auth_changed, metadata

GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
NONE_VALUES = frozenset({"", "NONE"})  # what the CADC client writes for "no groups"
MAX_NESTING = 16
GROUP_PROPERTIES = (props.GROUPREAD, props.GROUPWRITE)
CLIENT_GMS_ALIASES = frozenset({"ivo://cadc.nrc.ca/gms"})  # hard-coded in the CADC client

# Tables change only through a migration (README, "Schema migrations").
groups = Table(
    "groups", metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("created", Float, nullable=False),
)

# role: "member" or "admin"; kind: "user" or "group".
group_entries = Table(
    "group_entries", metadata,
    Column("group_name", String(128), ForeignKey("groups.name"), primary_key=True),
    Column("role", String(8), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("entry", String(128), primary_key=True),
)

# Built once: membership resolution runs on every authenticated request, and building the
# statement each time cost more CPU than executing it.
HOLDERS = select(group_entries.c.group_name).where(and_(
    group_entries.c.role == bindparam("role"), group_entries.c.kind == bindparam("kind"),
    group_entries.c.entry.in_(bindparam("entries", expanding=True))))

ROLES = {"userMembers": ("member", "user"), "groupMembers": ("member", "group"),
         "userAdmins": ("admin", "user"), "groupAdmins": ("admin", "group")}


def group_uri(authority: str, name: str) -> str:
    return f"ivo://{authority}/gms?{name}"


def check_group_name(name: str) -> str:
    if not GROUP_NAME.match(name):
        raise InvalidArgument(f"invalid group name {name!r}")
    return name


def normalize_group(value: str, authority: str) -> str:
    """A bare name -> our group URI; a group URI is checked and kept as written."""
    if value.startswith("ivo://"):
        base, sep, name = value.partition("?")
        if not sep or not base.endswith("/gms"):
            raise InvalidArgument(f"{value!r} is not a group URI (ivo://authority/gms?name)")
        check_group_name(name)
        return value
    return group_uri(authority, check_group_name(value))


def resolve_group(value: str, authority: str) -> str:
    """The group a bare name or stored group URI means here (foreign authorities as given).

    The CADC client always writes ``ivo://cadc.nrc.ca/gms?<name>``; on this service that
    can only mean our group of that name."""
    uri = normalize_group(value, authority)
    base, _, name = uri.partition("?")
    return group_uri(authority, name) if base in CLIENT_GMS_ALIASES else uri


def member_of_any(memberships: frozenset[str], stored: list[str]) -> bool:
    """Whether a caller in groups ``memberships`` (our URIs, see GroupStore.memberships) is
    in any of the ``stored`` group URIs of a node, the CADC client's spelling included."""
    names: set[str] | None = None
    for uri in stored:
        if uri in memberships:
            return True
        base, _, name = uri.partition("?")
        if base in CLIENT_GMS_ALIASES:
            if names is None:
                names = {m.partition("?")[2] for m in memberships}
            if name in names:
                return True
    return False


def normalize_group_list(value: str | None, authority: str) -> str | None:
    """A groupread/groupwrite value -> space-separated group URIs, or None for none."""
    if value is None:
        return None
    items = [v for v in value.replace(",", " ").split() if v not in NONE_VALUES]
    uris = list(dict.fromkeys(normalize_group(v, authority) for v in items))
    return " ".join(uris) if uris else None


def local_name(value: str, authority: str) -> str:
    """The local group name for a bare name or one of our URIs (InvalidArgument otherwise)."""
    uri = resolve_group(value, authority)
    prefix = group_uri(authority, "")
    if not uri.startswith(prefix):
        raise InvalidArgument(f"{value} is not a group of this service")
    return uri[len(prefix):]


@dataclass
class Group:
    name: str
    owner: str
    entries: dict[str, list[str]] = field(default_factory=dict)  # ROLES key -> names


class GroupStore:
    def __init__(self, engine: Engine, authority: str) -> None:
        self.engine = engine
        self.authority = authority

    # -- membership resolution ----------------------------------------------------------
    def memberships(self, user: str) -> frozenset[str]:
        """URIs of every group ``user`` belongs to, directly or through nested groups."""
        with self.engine.connect() as conn:
            found = self._closure(conn, "user", {user})
        return frozenset(group_uri(self.authority, name) for name in found)

    @staticmethod
    def _closure(conn: Connection, kind: str, names: set[str], role: str = "member") -> set[str]:
        """Groups holding any of ``names`` (of ``kind``) in ``role``, then their containers."""
        found: set[str] = set()
        frontier, frontier_kind = set(names), kind
        for _ in range(MAX_NESTING):
            if not frontier:
                break
            rows = conn.execute(HOLDERS, {"role": role, "kind": frontier_kind,
                                          "entries": sorted(frontier)}).all()
            frontier = {r.group_name for r in rows} - found
            found |= frontier
            frontier_kind, role = "group", "member"
        return found

    def may_manage(self, user: str, name: str) -> bool:
        """Owner, a user administrator, or a member of an administrator group."""
        with self.engine.connect() as conn:
            row = conn.execute(select(groups.c.owner).where(groups.c.name == name)).first()
            if row is None:
                raise NodeNotFound(f"group {name}")
            if row.owner == user:
                return True
            direct_admin = conn.execute(select(group_entries.c.entry).where(and_(
                group_entries.c.group_name == name, group_entries.c.role == "admin",
                group_entries.c.kind == "user", group_entries.c.entry == user))).first()
            if direct_admin:
                return True
            member_of = self._closure(conn, "user", {user})
            admin_groups = {r.entry for r in conn.execute(select(group_entries.c.entry).where(and_(
                group_entries.c.group_name == name, group_entries.c.role == "admin",
                group_entries.c.kind == "group")))}
            return bool(member_of & admin_groups)

    # -- management ---------------------------------------------------------------------
    def create(self, name: str, owner: str) -> None:
        check_group_name(name)
        try:
            with transaction(self.engine) as conn:
                conn.execute(insert(groups).values(name=name, owner=owner, created=time.time()))
        except IntegrityError:
            raise DuplicateNode(f"group {name} exists") from None

    def delete(self, name: str) -> None:
        with transaction(self.engine) as conn:
            conn.execute(delete(group_entries).where(or_(
                group_entries.c.group_name == name,
                and_(group_entries.c.kind == "group", group_entries.c.entry == name))))
            auth_changed(conn)
            if conn.execute(delete(groups).where(groups.c.name == name)).rowcount == 0:
                raise NodeNotFound(f"group {name}")

    def get(self, name: str) -> Group:
        with self.engine.connect() as conn:
            row = conn.execute(select(groups).where(groups.c.name == name)).first()
            if row is None:
                raise NodeNotFound(f"group {name}")
            entries = conn.execute(select(group_entries).where(
                group_entries.c.group_name == name).order_by(group_entries.c.entry)).all()
        group = Group(row.name, row.owner, {key: [] for key in ROLES})
        for key, (role, kind) in ROLES.items():
            group.entries[key] = [e.entry for e in entries if e.role == role and e.kind == kind]
        return group

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r.name for r in conn.execute(select(groups.c.name).order_by(groups.c.name))]

    def add(self, name: str, key: str, entry: str) -> None:
        role, kind = ROLES[key]
        with transaction(self.engine) as conn:
            if conn.execute(select(groups.c.name).where(groups.c.name == name)).first() is None:
                raise NodeNotFound(f"group {name}")
            if kind == "group":
                if conn.execute(select(groups.c.name).where(groups.c.name == entry)).first() is None:
                    raise NodeNotFound(f"group {entry}")
                if role == "member" and (entry == name or name in self._contained(conn, entry)):
                    raise InvalidArgument(f"adding {entry} to {name} would make a cycle")
            exists = conn.execute(select(group_entries.c.entry).where(and_(
                group_entries.c.group_name == name, group_entries.c.role == role,
                group_entries.c.kind == kind, group_entries.c.entry == entry))).first()
            if exists is None:
                conn.execute(insert(group_entries).values(group_name=name, role=role, kind=kind,
                                                          entry=entry))
                auth_changed(conn)

    @staticmethod
    def _contained(conn: Connection, name: str) -> set[str]:
        """Groups nested (at any depth) inside group ``name``."""
        found: set[str] = set()
        frontier = {name}
        for _ in range(MAX_NESTING):
            rows = conn.execute(select(group_entries.c.entry).where(and_(
                group_entries.c.role == "member", group_entries.c.kind == "group",
                group_entries.c.group_name.in_(frontier)))).all()
            frontier = {r.entry for r in rows} - found
            if not frontier:
                break
            found |= frontier
        return found

    def remove(self, name: str, key: str, entry: str) -> None:
        role, kind = ROLES[key]
        with transaction(self.engine) as conn:
            result = conn.execute(delete(group_entries).where(and_(
                group_entries.c.group_name == name, group_entries.c.role == role,
                group_entries.c.kind == kind, group_entries.c.entry == entry)))
            auth_changed(conn)
        if result.rowcount == 0:
            raise NodeNotFound(f"{entry} is not in {key} of group {name}")


def normalize_group_properties(properties: dict[str, str | None],
                               authority: str) -> dict[str, str | None]:
    """``properties`` with groupread/groupwrite values normalized (InvalidArgument if bad).

    A value that names no group becomes None, i.e. the property is removed.
    """
    out = dict(properties)
    for uri in GROUP_PROPERTIES:
        if uri in out and out[uri] is not None:
            out[uri] = normalize_group_list(out[uri], authority)
    return out
