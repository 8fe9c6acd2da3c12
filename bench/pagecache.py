"""What the kernel's page cache holds of a file, and whether the machine reclaims idle page
cache on its own: the figures printed beside a re-read, whose speed depends on both.

Some virtual machines run DAMON proactive reclaim (a ``kdamond`` with a ``pageout`` scheme):
it pages out page-cache memory that looks idle, with plenty of RAM free, so pages read a
second ago can be gone when they are read again, and each comes back through the file
system (for a network one, a round trip per page).
"""
from __future__ import annotations

import ctypes
import glob
import os
from typing import NamedTuple

SYS_CACHESTAT = 451     # Linux >= 6.5, the same number on every architecture


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


class Residency(NamedTuple):
    cached: int     # pages of the file in the page cache
    evicted: int    # pages of the file the kernel's reclaim took out (not truncation)


def residency(path: str) -> Residency | None:
    """The file's pages in the page cache and those reclaimed (cachestat(2)); None where
    the kernel has no cachestat."""
    libc = ctypes.CDLL(None, use_errno=True)
    whole, stat = _Range(0, 0), _Stat()
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(whole), ctypes.byref(stat), 0) != 0:
            return None
    finally:
        os.close(fd)
    return Residency(stat.nr_cache, stat.nr_evicted)


def proactive_reclaim() -> bool:
    """Whether a running kdamond pages out memory on its own (DAMON's ``pageout`` action)."""
    for kdamond in glob.glob("/sys/kernel/mm/damon/admin/kdamonds/[0-9]*"):
        try:
            with open(f"{kdamond}/state") as fh:
                if fh.read().strip() != "on":
                    continue
            for action in glob.glob(f"{kdamond}/contexts/*/schemes/*/action"):
                with open(action) as fh:
                    if fh.read().strip() == "pageout":
                        return True
        except OSError:
            continue
    return False
