"""Opening files strictly beneath the arc root, and the hard-link rule.

``resolve`` checks a path with ``lstat`` component by component, but a session user with
shell access could swap a checked directory for a symlink before the server opens the
file. So files the server reads or writes are opened by walking from the root one
directory at a time with ``O_NOFOLLOW`` (``openat``): no symlink is followed at any step,
whatever happens meanwhile.

Hard links are the other way out of a user's tree: a link placed in your own folder to a
file elsewhere on the same filesystem (another user's file, or a file outside the root)
would carry that file's bytes under your permissions. The server itself never creates a
second link to a file, so arc refuses to serve, copy or set properties on a regular file
whose link count is above one (PermissionDenied). Replacing its content through an upload
is safe (the new bytes go to a new inode renamed over the name; the other file is untouched).
"""
from __future__ import annotations

import errno
import os
import stat

from ...protocol.faults import LinkFound, NodeNotFound, PermissionDenied

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(root: str, path: str) -> int:
    """An fd of directory ``root/path``; LinkFound if any component is a symlink."""
    fd = os.open(root, DIR_FLAGS)
    walked = []
    try:
        for name in path.split("/") if path else []:
            walked.append(name)
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _fault(exc, "/".join(walked), fd, name) from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_file(root: str, path: str, flags: int, mode: int = 0o644) -> int:
    """``openat`` of ``root/path`` with no symlink followed anywhere on the way."""
    parent, _, name = path.rpartition("/")
    dir_fd = open_dir(root, parent)
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _fault(exc, path, dir_fd, name) from None
    finally:
        os.close(dir_fd)


def _fault(exc: OSError, path: str, dir_fd: int, name: str) -> Exception:
    """ELOOP, or ENOTDIR (what O_DIRECTORY|O_NOFOLLOW gives for a symlink): which was it?"""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        return LinkFound(path) if is_link else NodeNotFound(path)
    if exc.errno == errno.ENOENT:
        return NodeNotFound(path)
    return exc


def check_single_link(st: os.stat_result, path: str) -> None:
    """Refuse a regular file that has other names (see the module docstring)."""
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        raise PermissionDenied(f"/{path} has {st.st_nlink} hard links; arc does not serve "
                               "hard-linked files")
