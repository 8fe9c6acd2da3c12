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

Where the kernel has ``openat2`` (Linux 5.6+), a directory is opened in one call with
``RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH``, which refuses a symlink at any step just as the
walk does: a create or upload otherwise paid one open and one close per level, each a
system call that hands the GIL to another worker thread. Any refusal is walked again step
by step, so the faults (LinkFound, NodeNotFound) are the walk's.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat

from ...protocol.faults import LinkFound, NodeNotFound, PermissionDenied

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# openat2(2): one number on every architecture (syscalls added since 5.1 share their numbers)
SYS_OPENAT2 = 437
RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x04, 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long
# None once the kernel (or a seccomp filter) has refused the call itself: walk from then on
_openat2_flags: _OpenHow | None = _OpenHow(DIR_FLAGS, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH) \
    if platform.system() == "Linux" else None


def _openat2_dir(dir_fd: int, path: str) -> int | None:
    """An fd of directory ``path`` below ``dir_fd`` with no symlink followed, in one call;
    None when it cannot say (a refusal, for the walk to name, or no openat2 here)."""
    global _openat2_flags
    how = _openat2_flags
    if how is None:
        return None
    fd = _syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_long(dir_fd), os.fsencode(path),
                  ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
        _openat2_flags = None  # not available here (old kernel, seccomp)
    return None


def open_dir(root: str, path: str) -> int:
    """An fd of directory ``root/path``; LinkFound if any component is a symlink."""
    fd = os.open(root, DIR_FLAGS)
    if path:
        opened = _openat2_dir(fd, path)
        if opened is not None:
            os.close(fd)
            return opened
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
