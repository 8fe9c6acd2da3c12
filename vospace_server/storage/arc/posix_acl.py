"""Arc permissions as POSIX owners, mode bits and ACLs, so direct POSIX access (sessions
mounting the tree) follows the same rules as the VOSpace API, both ways.

With an id map (users and groups -> stable uids/gids, see auth/posix.py) arc stores
``ispublic``, ``groupread`` and ``groupwrite`` *on the inode* and reads them back from it:

- owner: the file's uid is the creator's uid (``user::rwx`` for folders, ``rw-`` for files);
- owning group: the gid of the node's first ``groupwrite`` group (else ``groupread``, else the
  owner's personal group, gid = uid), with that group's permissions as ``group::``;
- every other group in ``groupread``/``groupwrite``: a named ``group:<gid>:r-x|rwx`` ACL entry
  (``r--``/``rw-`` on files), plus the ``mask``;
- ``ispublic``: ``other::r-x`` (``r--`` on files), else ``other::---``;
- ``inheritPermissions=true`` on a folder: the same entries as its *default* ACL, so files a
  session creates inside get them from the kernel.

Reading back: ``ispublic`` is the other-read bit; a group (owning or named entry, under the
mask) with write permission is in ``groupwrite``, with read only in ``groupread``. So a
``setfacl -m g:<gid>:rx`` (or ``chmod o+r``) on disk shows up through the API at once.
The ACL is written as the ``system.posix_acl_access`` xattr in the kernel's binary format
(no library needed); ``getfacl``/``setfacl`` (Debian package ``acl``) read and write the same.
"""
from __future__ import annotations

import errno
import os
import stat
import struct
from typing import Protocol

from ...protocol import properties as props
from . import xattrs

ACCESS = xattrs.ACL_ACCESS
DEFAULT = "system.posix_acl_default"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF
R, W, X = 4, 2, 1
PERMISSION_PROPERTIES = (props.ISPUBLIC, props.GROUPREAD, props.GROUPWRITE)


class IdMap(Protocol):
    """Stable POSIX ids for users and group URIs (allocated on first use)."""

    def uid(self, user: str) -> int: ...

    def gid(self, group_uri: str) -> int: ...

    def group_uri(self, gid: int) -> str | None:
        """The group URI with this gid (None for personal groups and unknown ids)."""
        ...

    def user_of(self, uid: int) -> str | None:
        """The user with this uid (None for system and unknown ids)."""
        ...


def encode(entries: list[tuple[int, int, int]]) -> bytes:
    """(tag, perm, id) entries -> the xattr value (sorted as the kernel requires)."""
    body = b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in sorted(
        entries, key=lambda e: (e[0], e[2])))
    return struct.pack("<I", VERSION) + body


def decode(value: bytes) -> list[tuple[int, int, int]]:
    if len(value) < 4 or struct.unpack_from("<I", value)[0] != VERSION:
        return []
    return [struct.unpack_from("<HHI", value, offset) for offset in range(4, len(value) - 7, 8)]


def _groups(value: str | None) -> list[str]:
    return [g for g in (value or "").split() if g]


def _perm(is_dir: bool, write: bool) -> int:
    return (R | (W if write else 0) | (X if is_dir else 0))


def plan(is_dir: bool, owner_uid: int, perms: dict[str, str | None],
         ids: IdMap) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(gid, mode, ACL entries) for a node with permission properties ``perms``."""
    writers, readers = _groups(perms.get(props.GROUPWRITE)), _groups(perms.get(props.GROUPREAD))
    granted: dict[int, int] = {}
    for uri in readers:
        granted[ids.gid(uri)] = _perm(is_dir, False)
    for uri in writers:
        granted[ids.gid(uri)] = _perm(is_dir, True)
    owning = ids.gid((writers or readers)[0]) if writers or readers else owner_uid
    group_perm = granted.pop(owning, 0)
    owner_perm = R | W | (X if is_dir else 0)
    other = (R | (X if is_dir else 0)) if (perms.get(props.ISPUBLIC) == "true") else 0
    entries = [(USER_OBJ, owner_perm, NO_ID), (GROUP_OBJ, group_perm, NO_ID), (OTHER, other, NO_ID)]
    mask = group_perm
    for gid, perm in granted.items():
        entries.append((GROUP, perm, gid))
        mask |= perm
    if granted:
        entries.append((MASK, mask, NO_ID))
    mode = (owner_perm << 6) | (mask << 3) | other
    if is_dir:
        mode |= stat.S_ISGID  # new files take the folder's (project) group, as on CephFS
    return owning, mode, entries


def apply(target: int | str, is_dir: bool, owner_uid: int, perms: dict[str, str | None],
          ids: IdMap, inherit: bool = False) -> bytes | None:
    """Set owner, group, mode and ACLs of ``target`` (an fd or a path, never a symlink);
    the access ACL it now has (None: none, the mode says it all)."""
    gid, mode, entries = plan(is_dir, owner_uid, perms, ids)
    try:
        os.chown(target, owner_uid, gid, follow_symlinks=False) if isinstance(target, str) \
            else os.chown(target, owner_uid, gid)
    except PermissionError:
        pass  # not root: the ids stay those of the server process
    os.chmod(target, mode)
    access = encode(entries) if any(tag == GROUP for tag, _, _ in entries) else None
    _set_or_remove(target, ACCESS, access)
    if is_dir:
        _set_or_remove(target, DEFAULT, encode(entries) if inherit else None)
    return access


def _set_or_remove(target: int | str, name: str, value: bytes | None) -> None:
    try:
        if value is None:
            os.removexattr(target, name)
        else:
            os.setxattr(target, name, value)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise


def read_back(acl: bytes | None, st: os.stat_result, ids: IdMap,
              stored: dict[str, str]) -> dict[str, str | None]:
    """``ispublic``/``groupread``/``groupwrite`` as the inode's mode and access ``acl``
    (the xattr's value, None without one) grant them.

    A group that may write is in ``groupwrite``; one that may only read is in
    ``groupread``; a writer also stays in ``groupread`` when ``stored`` (the properties last
    set through the API) lists it there, so ``groupread=G groupwrite=G`` reads back as set.
    A group keeps the spelling ``stored`` gives it (the CADC client's URIs, see auth/groups)."""
    entries = decode(acl) if acl else []
    mode = stat.S_IMODE(st.st_mode)
    mask = next((perm for tag, perm, _ in entries if tag == MASK), 7)
    group_obj = next((perm for tag, perm, _ in entries if tag == GROUP_OBJ), (mode >> 3) & 7)
    grants = [(st.st_gid, group_obj & (mask if entries else 7))]
    grants += [(ident, perm & mask) for tag, perm, ident in entries if tag == GROUP]
    readers: list[str] = []
    writers: list[str] = []
    stored_readers = {ids.gid(uri) for uri in _groups(stored.get(props.GROUPREAD))}
    spelled = {ids.gid(uri): uri for uri in
               _groups(stored.get(props.GROUPREAD)) + _groups(stored.get(props.GROUPWRITE))}
    for gid, perm in grants:
        uri = ids.group_uri(gid)
        if uri is None or not perm & R:
            continue
        uri = spelled.get(gid, uri)
        targets = [writers] if perm & W else [readers]
        if perm & W and gid in stored_readers:
            targets.append(readers)
        for target in targets:
            if uri not in target:
                target.append(uri)
    return {props.ISPUBLIC: "true" if mode & stat.S_IROTH else "false",
            props.GROUPREAD: " ".join(readers) or None,
            props.GROUPWRITE: " ".join(writers) or None}


def permissions(properties: dict[str, str | None]) -> dict[str, str | None]:
    """The properties that ``apply`` turns into owners, modes and ACLs."""
    return {uri: properties.get(uri) for uri in PERMISSION_PROPERTIES + (
        props.INHERIT_PERMISSIONS,)}


def copy_permissions(src_fd: int, st: os.stat_result, dest_fd: int, owner_uid: int) -> None:
    """Give a copied file or directory (``dest_fd``) the mode, group and ACLs of its source
    (``src_fd``, whose stat is ``st``; copies carry only ``user.*`` xattrs) and make
    ``owner_uid`` its owner. Both are open fds, so nothing is looked up by path."""
    try:
        os.fchown(dest_fd, owner_uid, st.st_gid)
    except PermissionError:
        pass
    os.fchmod(dest_fd, stat.S_IMODE(st.st_mode))
    for attr in (ACCESS, DEFAULT):
        try:
            value = os.getxattr(src_fd, attr)
        except OSError:
            continue
        try:
            os.setxattr(dest_fd, attr, value)
        except OSError:
            pass
