"""Metadata caches with a time to live: node attributes (negative entries included) and
directory listings. Changes made through this mount invalidate them at once; changes made
elsewhere become visible when the entry expires.

fsspec's ``DirCache`` was considered: it caches listings only (not single-node lookups nor
negative entries) and expires a whole listing by insertion time under no lock; FUSE calls it
from many threads and needs lookups of single names, so this small locked map is used.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, TypeVar

V = TypeVar("V")
MISSING = object()


class TTLCache(Generic[V]):
    """A thread-safe map whose entries expire ``ttl`` seconds after they were stored, by
    ``clock`` (monotonic seconds; tests pass one they can move instead of waiting)."""

    def __init__(self, ttl: float, max_entries: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._data: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default=MISSING):
        with self._lock:
            item = self._data.get(key)
            if item is None or item[0] < self.clock():
                return default
            return item[1]

    def get_stale(self, key: str, default=MISSING):
        """The entry even if it expired (what was there; for deciding how to refresh)."""
        with self._lock:
            item = self._data.get(key)
            return default if item is None else item[1]

    def put(self, key: str, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._data.clear()   # rare; a full refill is cheaper than LRU bookkeeping
            self._data[key] = (self.clock() + self.ttl, value)

    def update(self, key: str, fn) -> None:
        """Replace a fresh entry by ``fn(entry)``, keeping its expiry (nothing if absent)."""
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[0] >= self.clock():
                self._data[key] = (item[0], fn(item[1]))

    def pop(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def pop_tree(self, key: str) -> None:
        """Drop ``key`` and every key below it (``key/...``)."""
        prefix = key.rstrip("/") + "/"
        with self._lock:
            for k in [k for k in self._data if k == key or k.startswith(prefix)]:
                del self._data[k]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
