"""Usage counters of arc quota roots: an xattr on the root directory, changed under flock.

A directory with the ``quota`` property is a quota root; its usage (bytes of the regular
files below it) is kept in ``user.vospace.usage`` on the directory itself, so it lives with
the tree (CephFS: shared by every server) and survives restarts. Every change of bytes
through the server (upload commit, delete, move, copy, snapshot restore) takes an
exclusive ``flock`` on each affected root in path order, checks growth against the quota,
makes the change and adjusts the counter before unlocking, so concurrent writers can
neither overshoot the quota nor lose an update. Files changed directly on disk (sessions)
are not seen until ``vospace quota recount`` (or setting the quota) walks the root once.
"""
from __future__ import annotations

import fcntl
import os
import stat
from contextlib import contextmanager
from typing import Iterator

from ...protocol.faults import QuotaExceeded
from ..streams import TEMP_PREFIX
from . import xattrs

USAGE = "usage"


def read_usage(full: str) -> int | None:
    return parse_usage({USAGE: xattrs.read_internal(full, USAGE)})


def parse_usage(internal: dict[str, str | None]) -> int | None:
    """The usage counter among a node's internal attributes, if it has one."""
    value = internal.get(USAGE)
    return int(value) if value and value.lstrip("-").isdigit() else None


def tree_size(full: str) -> int:
    """Bytes of the regular files at or below ``full`` (never following a symlink)."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0
    total = 0
    for folder, dirs, files in os.walk(full):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                continue
            try:
                entry = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(entry.st_mode):
                total += entry.st_size
    return total


def recount(full: str) -> int:
    """Walk the root once and store the true usage (held under the root's lock)."""
    with locked([full]):
        total = tree_size(full)
        xattrs.write_internal(full, USAGE, str(total))
    return total


class Roots:
    """The quota roots (full paths, root first) affected by one change, locked together."""

    def __init__(self, roots: list[tuple[str, int]]) -> None:
        self.roots = roots  # (full path, quota)

    def require(self, delta: int, exempt: frozenset[str] = frozenset()) -> None:
        if delta <= 0:
            return
        for full, limit in self.roots:
            if full in exempt:
                continue
            used = read_usage(full) or 0
            if used + delta > limit:
                raise QuotaExceeded(f"{delta} more bytes do not fit under the quota of "
                                    f"{os.path.basename(full)} ({max(limit - used, 0)} left)")

    def add(self, delta: int, exempt: frozenset[str] = frozenset()) -> None:
        if not delta:
            return
        for full, _limit in self.roots:
            if full not in exempt:
                used = read_usage(full) or 0
                xattrs.write_internal(full, USAGE, str(max(used + delta, 0)))


@contextmanager
def locked(fulls: list[str]) -> Iterator[None]:
    """Exclusive flocks on the given directories, taken in sorted order (no deadlock)."""
    fds: list[int] = []
    try:
        for full in sorted(set(fulls)):
            fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            fds.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # closing releases the lock


@contextmanager
def change(roots: list[tuple[str, int]]) -> Iterator[Roots]:
    with locked([full for full, _ in roots]):
        yield Roots(roots)
