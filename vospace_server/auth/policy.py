"""The one ACL policy. Every endpoint asks here; nothing else decides access.

Rules: administrators may do anything. Reading a node needs read access to it and to
every ancestor (a private folder hides everything below it). Read access: owner,
``ispublic``, or membership of a ``groupread``/``groupwrite`` group. Write access to a node
needs read access to its ancestors plus ownership or membership of a ``groupwrite``
group. Only the owner changes permissions; only administrators set quotas. A compute
session is seen and changed by its owner and administrators only.
"""
from __future__ import annotations

from ..protocol import properties as props
from ..protocol.faults import NotAuthenticated, PermissionDenied
from ..protocol.nodes import Node
from .groups import member_of_any
from .identity import Caller

PERMISSION_PROPERTIES = frozenset({props.ISPUBLIC, props.GROUPREAD, props.GROUPWRITE,
                                   props.INHERIT_PERMISSIONS})


def _in_any(caller: Caller, groups: list[str]) -> bool:
    return member_of_any(caller.groups, groups)


def may_read_node(caller: Caller, node: Node) -> bool:
    if caller.is_admin or node.flag(props.ISPUBLIC):
        return True
    if caller.is_anonymous:
        return False
    return (node.owner == caller.name
            or _in_any(caller, node.group_uris(props.GROUPREAD))
            or _in_any(caller, node.group_uris(props.GROUPWRITE)))


def may_write_node(caller: Caller, node: Node) -> bool:
    if caller.is_admin:
        return True
    if caller.is_anonymous:
        return False
    return node.owner == caller.name or _in_any(caller, node.group_uris(props.GROUPWRITE))


def _deny(caller: Caller, what: str) -> None:
    if caller.is_anonymous:
        raise NotAuthenticated(f"anonymous callers may not {what}")
    raise PermissionDenied(f"{caller.name} may not {what}")


def require_authenticated(caller: Caller, what: str) -> None:
    """Any signed-in user (e.g. for the POSIX id listings that session containers load)."""
    if caller.is_anonymous:
        _deny(caller, what)


def require_admin(caller: Caller, what: str) -> None:
    """Server administrators only (operational data such as ``/metrics``)."""
    if not caller.is_admin:
        _deny(caller, what)


def require_read(caller: Caller, chain: list[Node]) -> None:
    """``chain`` is root..node as NodeTree.resolve returns it."""
    for node in chain:
        if not may_read_node(caller, node):
            _deny(caller, f"read /{chain[-1].path}")


def require_write(caller: Caller, chain: list[Node]) -> None:
    """Write access to ``chain[-1]`` (for creating or deleting, pass the parent's chain)."""
    for node in chain[:-1]:
        if not may_read_node(caller, node):
            _deny(caller, f"write /{chain[-1].path}")
    if not may_write_node(caller, chain[-1]):
        _deny(caller, f"write /{chain[-1].path}")


def require_property_rights(caller: Caller, node: Node, changes: dict[str, str | None]) -> None:
    """Owner-only and admin-only properties, on top of write access.

    Only values that actually change count: clients re-post whole nodes, quota included.
    """
    if caller.is_admin:
        return
    touched = {uri for uri, value in changes.items() if node.properties.get(uri) != value}
    if touched & props.ADMIN_ONLY:
        raise PermissionDenied("only administrators may set quotas")
    if touched & PERMISSION_PROPERTIES and node.owner != caller.name:
        raise PermissionDenied("only the owner may change permissions")


def readable_writable(caller: Caller, chain: list[Node]) -> tuple[bool, bool]:
    readable = all(may_read_node(caller, n) for n in chain)
    writable = all(may_read_node(caller, n) for n in chain[:-1]) and may_write_node(caller, chain[-1])
    return readable, writable


def access_properties(caller: Caller, chain: list[Node]) -> dict[str, str]:
    """The computed ``#readable``/``#writable`` properties of ``chain[-1]`` for ``caller``."""
    readable, writable = readable_writable(caller, chain)
    return {props.READABLE: str(readable).lower(), props.WRITABLE: str(writable).lower()}


def may_see_session(caller: Caller, owner: str) -> bool:
    """A compute session (its details, logs, events, renewal, deletion): owner and admins."""
    return caller.is_admin or (not caller.is_anonymous and caller.name == owner)


def may_use_session(caller: Caller, owner: str, shared_group: str | None) -> bool:
    """An interactive session's app (through the session proxy): who may see the session,
    and the members of the group its owner shared it with (live collaboration)."""
    if may_see_session(caller, owner):
        return True
    return shared_group is not None and not caller.is_anonymous \
        and member_of_any(caller.groups, [shared_group])
