"""Moving and copying POSIX subtrees for arc, never following a symlink.

``rename_noreplace`` is ``renameat2(RENAME_NOREPLACE)``, so a move never silently replaces
a node that appeared meanwhile (falling back to check-then-rename where the filesystem
lacks it). ``copy_tree`` copies files by reflink (``FICLONE``: instant on btrfs/XFS/CephFS
snapshots-capable filesystems), else ``copy_file_range``, else read/write; symlinks are
recreated with the same text; ``user.*`` properties and the cached MD5 are carried over
(file mtimes are kept, so the cached MD5 stays valid) and the creator becomes the copier.
Both trees are walked through directory fds, entry by entry with O_NOFOLLOW, never by path.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
from typing import Callable

from ...protocol import properties as props
from ...protocol.faults import DuplicateNode, PermissionDenied
from . import xattrs
from .beneath import DIR_FLAGS

FICLONE = 0x40049409
RENAME_NOREPLACE = 1
AT_FDCWD = -100
CHUNK = 8 * 1024 * 1024

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)


def rename_noreplace(src: str, dest: str, src_dir_fd: int | None = None,
                     dest_dir_fd: int | None = None) -> None:
    """Rename ``src`` to ``dest`` (names inside the given directory fds, or paths);
    DuplicateNode if ``dest`` exists."""
    if _renameat2 is not None:
        rc = _renameat2(AT_FDCWD if src_dir_fd is None else src_dir_fd, os.fsencode(src),
                        AT_FDCWD if dest_dir_fd is None else dest_dir_fd, os.fsencode(dest),
                        RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise DuplicateNode(os.path.basename(dest))
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), src)
    try:
        os.stat(dest, dir_fd=dest_dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dest, src_dir_fd=src_dir_fd, dst_dir_fd=dest_dir_fd)
        return
    raise DuplicateNode(os.path.basename(dest))


def rename_replace(src: str, dest: str, src_dir_fd: int | None = None,
                   dest_dir_fd: int | None = None) -> None:
    """rename(2): atomically replace ``dest`` if it exists; DuplicateNode where rename(2)
    refuses (a directory over a file or a non-empty directory, a file over a directory)."""
    try:
        os.rename(src, dest, src_dir_fd=src_dir_fd, dst_dir_fd=dest_dir_fd)
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise DuplicateNode(f"{os.path.basename(dest)}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise DuplicateNode(f"{os.path.basename(dest)} is not empty") from None
        raise


def copy_bytes(src_fd: int, dest_fd: int) -> None:
    try:
        fcntl.ioctl(dest_fd, FICLONE, src_fd)
        return
    except OSError:
        pass
    try:
        while os.copy_file_range(src_fd, dest_fd, CHUNK):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(src_fd, 0, os.SEEK_SET)
    os.lseek(dest_fd, 0, os.SEEK_SET)
    os.ftruncate(dest_fd, 0)
    while chunk := os.read(src_fd, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dest_fd, view):]


# Called for every copied file and directory as (source fd, source stat, copy fd): how
# the copy gets its owner, mode and ACLs (posix_acl.copy_permissions).
Permissions = Callable[[int, os.stat_result, int], None]


def _copy_attributes(src_fd: int, dest_fd: int, owner: str) -> None:
    try:
        names = os.listxattr(src_fd)
    except OSError:
        names = []
    for name in names:
        if name.startswith(xattrs.PREFIX):
            try:
                os.setxattr(dest_fd, name, os.getxattr(src_fd, name))
            except OSError:
                pass
    os.setxattr(dest_fd, xattrs.PREFIX + props.CREATOR, owner.encode())


def _copy_file(src_dir: int, name: str, dest_dir: int, dest_name: str, owner: str,
               permissions: Permissions | None) -> None:
    src_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=src_dir)
    try:
        st = os.fstat(src_fd)  # of what was opened, not of what an earlier lstat saw
        if not stat.S_ISREG(st.st_mode):
            return
        if st.st_nlink > 1:  # a copy would launder a hard link to someone else's file
            raise PermissionDenied(f"{name} has {st.st_nlink} hard links; "
                                   "arc does not copy hard-linked files")
        dest_fd = os.open(dest_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, stat.S_IMODE(st.st_mode) | 0o600, dir_fd=dest_dir)
        try:
            copy_bytes(src_fd, dest_fd)
            _copy_attributes(src_fd, dest_fd, owner)
            if permissions is not None:
                permissions(src_fd, st, dest_fd)
            os.utime(dest_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fsync(dest_fd)
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)


def copy_tree(src_dir: int, name: str, dest_dir: int, dest_name: str, owner: str,
              skip_prefix: str, check: Callable[[], None] | None = None,
              permissions: Permissions | None = None) -> None:
    """Copy entry ``name`` of directory fd ``src_dir`` (file, directory or symlink) to the
    new entry ``dest_name`` of ``dest_dir``.

    Every entry is opened relative to its parent's fd with O_NOFOLLOW, on both sides, so a
    directory swapped for a symlink during the copy can neither make it read outside the
    tree nor write (or chown) outside the copy. Names starting with ``skip_prefix``
    (uploads in progress) are not copied; sockets, FIFOs and devices neither. ``check``
    runs before each entry (it raises to stop the copy; the caller removes the copy).
    """
    if check is not None:
        check()
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), dest_name, dir_fd=dest_dir)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(src_dir, name, dest_dir, dest_name, owner, permissions)
    elif stat.S_ISDIR(st.st_mode):
        _copy_dir(src_dir, name, dest_dir, dest_name, owner, skip_prefix, check, permissions)


def _copy_dir(src_dir: int, name: str, dest_dir: int, dest_name: str, owner: str,
              skip_prefix: str, check: Callable[[], None] | None,
              permissions: Permissions | None) -> None:
    src_fd = os.open(name, DIR_FLAGS, dir_fd=src_dir)
    try:
        os.mkdir(dest_name, 0o755, dir_fd=dest_dir)
        dest_fd = os.open(dest_name, DIR_FLAGS, dir_fd=dest_dir)
        try:
            _copy_attributes(src_fd, dest_fd, owner)
            for child in sorted(os.listdir(src_fd)):
                if not child.startswith(skip_prefix):
                    copy_tree(src_fd, child, dest_fd, child, owner, skip_prefix, check,
                              permissions)
            if permissions is not None:  # last: a read-only mode must not stop the copy
                permissions(src_fd, os.fstat(src_fd), dest_fd)
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)
