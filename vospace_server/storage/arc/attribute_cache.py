"""Extended attributes of inodes that have not changed lately, kept in memory.

Resolving a path reads the attributes of every ancestor (owner, group grants, quota), so
without this every request pays a listxattr and several getxattr calls per level, on a
worker thread that must win the GIL back after each one. An entry is keyed by the inode
and its ctime: the kernel updates ctime on every xattr, ACL, mode or owner change, so an
entry whose inode and ctime still match the fresh ``lstat`` is current, whichever process
(the server, another server process, a session writing on disk) made the change.

ctime has the granularity of the kernel's clock tick, so two changes within one tick could
share a ctime; an inode changed within RECENT_NS of now (by ``clock``, wall-clock
nanoseconds, which tests move) is therefore read but not kept.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

from .xattrs import StoredAttributes, read_all

RECENT_NS = 2_000_000_000
MAX_ENTRIES = 50_000


class AttributeCache:
    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self._entries: dict[str, tuple[int, int, StoredAttributes]] = {}
        self._lock = threading.Lock()

    def read(self, full: str, st: os.stat_result) -> StoredAttributes:
        """The attributes of ``full``, whose ``lstat`` is ``st``. Callers must not mutate
        the result (copy its dicts first)."""
        found = self._entries.get(full)
        if found is not None and found[0] == st.st_ino and found[1] == st.st_ctime_ns:
            return found[2]
        attributes = read_all(full)
        if st.st_ctime_ns < self.clock() - RECENT_NS:
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[full] = (st.st_ino, st.st_ctime_ns, attributes)
        return attributes
