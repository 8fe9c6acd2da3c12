"""POSIX mode bits <-> a node's sharing properties (SEMANTICS.md, "permissions").

o+r is ``ispublic``; g+r / g+w are ``groupread`` / ``groupwrite``. The owner's bits are
always rw(x): the server decides what the owner may do, not the mode.
"""
from __future__ import annotations

import stat

from vosclient.nodes import Node
from vospace_server.protocol import properties as P


def mode_of(node: Node) -> int:
    if node.isdir:
        mode = stat.S_IFDIR | 0o700
        read, write, public = 0o050, 0o020, 0o005
    elif node.islink:
        return stat.S_IFLNK | 0o777
    else:
        mode = stat.S_IFREG | 0o600
        read, write, public = 0o040, 0o020, 0o004
    if node.groupread != "NONE":
        mode |= read
    if node.groupwrite != "NONE":
        mode |= write
    if node.ispublic:
        mode |= public
    return mode


def permission_changes(node: Node, mode: int, group: str | None) -> dict[str, str | None]:
    """The property changes ``chmod(mode)`` means for ``node``: g bits are granted to the
    node's group, or to ``group`` (the mount's ``--group``) when it has none; without
    either they cannot be granted."""
    changes: dict[str, str | None] = {}
    public = bool(mode & 0o004)
    if public != node.ispublic:
        changes[P.ISPUBLIC] = "true" if public else "false"
    for bit, uri, current in ((0o040, P.GROUPREAD, node.groupread),
                              (0o020, P.GROUPWRITE, node.groupwrite)):
        has = current != "NONE"
        if mode & bit and not has:
            if group:
                changes[uri] = group
        elif not mode & bit and has:
            changes[uri] = None
    return changes
