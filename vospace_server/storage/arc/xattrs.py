"""Node properties as ``user.<property URI>`` extended attributes.

Names under ``user.vospace.`` are the server's own bookkeeping (cached MD5 and the like)
and are never shown as properties.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from ...protocol.faults import InvalidArgument, RequestEntityTooLarge

PREFIX = "user."
INTERNAL = "user.vospace."
MAX_XATTR_NAME = 255
MD5 = "md5"  # internal key: "<md5> <size>:<mtime ns>" (see write_md5)


ACL_ACCESS = "system.posix_acl_access"


@dataclass(frozen=True)
class StoredAttributes:
    """Everything a node keeps in its extended attributes, read in one pass."""

    properties: dict[str, str] = field(default_factory=dict)  # user-visible, by URI
    internal: dict[str, str] = field(default_factory=dict)    # the server's own, by key
    acl: bytes | None = None                                  # the POSIX access ACL


def read_all(path: str) -> StoredAttributes:
    """One listxattr, then one getxattr per attribute that exists (never following a
    symlink): reading what is there costs fewer calls than probing for each name."""
    properties: dict[str, str] = {}
    internal: dict[str, str] = {}
    acl = None
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        if name != ACL_ACCESS and not name.startswith(PREFIX):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        if name == ACL_ACCESS:
            acl = value
        elif name.startswith(INTERNAL):
            internal[name[len(INTERNAL):]] = value.decode("utf-8", "replace")
        else:
            properties[name[len(PREFIX):]] = value.decode("utf-8", "replace")
    return StoredAttributes(properties, internal, acl)


def read_properties(path: str) -> dict[str, str]:
    """All user-visible properties stored on ``path`` (never following a symlink)."""
    return read_all(path).properties


def write_property(target: str | int, uri: str, value: str | None) -> None:
    """Set or remove one property on a path (never following a symlink) or an open fd."""
    name = PREFIX + uri
    if len(name.encode()) > MAX_XATTR_NAME:
        raise InvalidArgument(f"property URI too long for arc: {uri}")
    nofollow = {"follow_symlinks": False} if isinstance(target, str) else {}
    try:
        if value is None:
            os.removexattr(target, name, **nofollow)
        else:
            os.setxattr(target, name, value.encode(), **nofollow)
    except OSError as exc:
        if exc.errno in (errno.ENODATA,):
            return
        if exc.errno in (errno.E2BIG, errno.ENOSPC, errno.ERANGE):
            raise RequestEntityTooLarge(f"no room for property {uri} on this node") from None
        raise


def read_internal(target: str | int, key: str) -> str | None:
    """One of the server's own attributes of a path (not following a symlink) or an fd."""
    nofollow = {"follow_symlinks": False} if isinstance(target, str) else {}
    try:
        return os.getxattr(target, INTERNAL + key, **nofollow).decode()
    except OSError:
        return None


def write_internal(path: str, key: str, value: str) -> None:
    os.setxattr(path, INTERNAL + key, value.encode(), follow_symlinks=False)


# A file's MD5 is kept with the size and mtime it was computed for, so a file changed
# directly on disk (sessions write through the mount) never shows a stale checksum.
def write_md5(fd: int, md5: str, st: os.stat_result) -> None:
    os.setxattr(fd, INTERNAL + MD5, f"{md5} {_stamp(st)}".encode())


def valid_md5(record: str | None, st: os.stat_result) -> str | None:
    """The MD5 in ``record`` if it was stamped for exactly this size and mtime, else None."""
    if not record:
        return None
    md5, _, stamp = record.partition(" ")
    return md5 if stamp == _stamp(st) else None


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"
