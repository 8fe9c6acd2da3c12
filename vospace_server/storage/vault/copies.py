"""ReplicatedBlobStore: one BlobStore made of several, kept in step (geo-redundancy).

The first store is the primary. A new blob is written to the primary only; once it is
durable there (``publish``), the ledger (copy_ledger.py) records it and queues its copies
into the other stores, which the background copier (copy_worker.py) makes. So an upload is
acknowledged at the primary's speed, and a crash loses no queued copy.

Reads go to the first store that has the blob, skipping stores that failed recently; the
bytes are checked against the node's MD5 as they stream (``VerifyingReadHandle``). A copy
found missing or corrupt is reported (log line, metric, ledger state) and queued to be made
again from a good one. Deletes remove every copy (a store that is down gets a queued
delete). Server-side copies copy within each store.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from ...metrics import Metrics
from ..streams import CHUNK, ReadHandle
from .blobs import BlobStore, Sink
from .copy_ledger import COPY, CORRUPT, DELETE, MISSING, CopyLedger

log = logging.getLogger("vospace.copies")
STORE_ERRORS = (OSError, BotoCoreError, ClientError)  # a store that cannot answer now
DOWN_FOR = 30.0  # seconds a store that failed is tried only after the others
BAD_FOR = 600.0  # seconds a copy found bad is tried only after the others (this process)
BAD_REMEMBERED = 10000


class ReplicatedSink:
    """The primary's sink; publishing also records the blob and queues its copies."""

    def __init__(self, store: "ReplicatedBlobStore", key: str, inner: Sink) -> None:
        self.store, self.key, self.inner = store, key, inner
        self.length = 0

    def write(self, chunk: bytes) -> None:
        self.inner.write(chunk)
        self.length += len(chunk)

    def sync(self) -> object:
        return self.inner.sync()

    def publish(self) -> None:
        self.inner.publish()
        self.store.ledger.published(self.key, self.store.primary, self.length,
                                    self.store.names[1:])
        self.store.wake()

    def discard(self) -> None:
        self.inner.discard()


class ReplicatedBlobStore:
    def __init__(self, stores: dict[str, BlobStore], ledger: CopyLedger,
                 metrics: Metrics | None = None) -> None:
        if len(stores) < 2:
            raise ValueError("a replicated store needs at least two stores")
        self.stores = stores
        self.names = list(stores)
        self.primary = self.names[0]
        self.ledger = ledger
        self.metrics = metrics or Metrics()
        self._down_until: dict[str, float] = {}
        self._bad_until: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._bad_lock = threading.Lock()
        self.queued = threading.Event()  # set when this process queued copies

    def wake(self) -> None:
        self.queued.set()

    # -- writing ------------------------------------------------------------------------
    def writer(self, key: str) -> ReplicatedSink:
        return ReplicatedSink(self, key, self.stores[self.primary].writer(key))

    def copy(self, src: str, dest: str) -> None:
        """Copy within each store; where that fails (the source copy is not made yet, or the
        store is down) the new blob's copy is queued instead. The primary must succeed."""
        self.stores[self.primary].copy(src, dest)
        known = self.ledger.copies(src)
        md5 = next((m for _state, m in known.values() if m), None)
        self.ledger.record(dest, self.primary, md5, None)
        queued = []
        for name in self.names[1:]:
            try:
                self.stores[name].copy(src, dest)
                self.ledger.record(dest, name, md5, None)
            except (FileNotFoundError, *STORE_ERRORS):
                queued.append(name)
        if queued:
            self.ledger.enqueue(dest, queued, COPY, md5)
            self.wake()

    def delete(self, key: str) -> None:
        self.ledger.forget(key)
        unreachable = []
        for name, store in self.stores.items():
            try:
                store.delete(key)
            except STORE_ERRORS as exc:
                log.warning("could not delete blob %s from %s now (%s); queued", key, name, exc)
                unreachable.append(name)
        if unreachable:
            self.ledger.enqueue(key, unreachable, DELETE)
            self.wake()

    # -- reading ------------------------------------------------------------------------
    def read_order(self, key: str, exclude: frozenset[str] = frozenset()) -> list[str]:
        """Stores in configured order; last those that failed in the last ``DOWN_FOR`` s,
        and those whose copy of ``key`` this process found bad lately (until re-made)."""
        now = time.monotonic()
        names = [n for n in self.names if n not in exclude]
        return sorted(names, key=lambda n: (self._bad_until.get((key, n), 0) > now,
                                            self._down_until.get(n, 0) > now))

    def mark_down(self, name: str, exc: BaseException) -> None:
        log.warning("blob store %s failed: %s", name, exc)
        self._down_until[name] = time.monotonic() + DOWN_FOR

    def open_first(self, key: str, md5: str | None, mtime: float, filename: str = "",
                   exclude: frozenset[str] = frozenset()) -> tuple[str, ReadHandle]:
        """The first copy that opens, as (store name, handle); FileNotFoundError if none."""
        for name in self.read_order(key, exclude):
            try:
                return name, self.stores[name].open(key, md5, mtime, filename)
            except FileNotFoundError:
                self.report(key, name, MISSING, md5)
            except STORE_ERRORS as exc:
                self.mark_down(name, exc)
        raise FileNotFoundError(key)

    def open(self, key: str, md5: str | None, mtime: float,
             filename: str = "") -> "VerifyingReadHandle":
        name, handle = self.open_first(key, md5, mtime, filename)
        return VerifyingReadHandle(self, key, name, handle, md5, mtime)

    def remade(self, key: str, name: str) -> None:
        """The copy of ``key`` in ``name`` was made again: read it in turn again."""
        with self._bad_lock:
            self._bad_until.pop((key, name), None)

    def report(self, key: str, name: str, problem: str, md5: str | None) -> None:
        """A copy is missing or corrupt: say so, and queue it to be made again. A copy the
        ledger never recorded as made (still queued, or the blob was deleted) is no news."""
        with self._bad_lock:
            self._bad_until[(key, name)] = time.monotonic() + BAD_FOR
            if len(self._bad_until) > BAD_REMEMBERED:
                self._bad_until.popitem(last=False)
        if self.ledger.report(key, name, problem, md5):
            log.warning("blob %s: the copy in %s is %s; queued to be copied again",
                        key, name, problem)
            self.metrics.copy_problems.labels(name, problem).inc()
            self.wake()

    def describe(self, key: str) -> str:
        """``store=state[:md5]`` for every store (``queued`` where the copy is not made yet),
        the administrators' view of a node's copies."""
        known = self.ledger.copies(key)
        parts = []
        for name in self.names:
            state, md5 = known.get(name, ("queued", None))
            parts.append(f"{name}={state}" + (f":{md5}" if md5 else ""))
        return " ".join(parts)

    # -- housekeeping (fsck) ------------------------------------------------------------
    def keys(self, min_age: float = 0) -> Iterator[str]:
        """Every blob in any store (fsck: orphans anywhere; missing only if in none)."""
        seen: set[str] = set()
        for store in self.stores.values():
            for key in store.keys(min_age):
                if key not in seen:
                    seen.add(key)
                    yield key

    def debris(self, min_age: float = 0) -> list[str]:
        return [f"{name}:{d}" for name, store in self.stores.items()
                for d in store.debris(min_age)]

    def remove_debris(self, name: str) -> None:
        store, _, inner = name.partition(":")
        self.stores[store].remove_debris(inner)

    def check(self) -> None:
        failed = []
        for name, store in self.stores.items():
            try:
                store.check()
            except STORE_ERRORS as exc:
                failed.append(f"{name} ({exc})")
        if failed:
            raise OSError("blob stores not answering: " + "; ".join(failed))


class VerifyingReadHandle:
    """A read of one copy that checks the MD5 of a whole-file read as it streams.

    A read from offset 0 onwards is hashed; when its last chunk arrives the MD5 is compared
    before that chunk is handed out. On a mismatch the copy is reported corrupt and the
    read moves to another copy whose bytes before that chunk hash the same as what was
    already sent (always the case for a file of one chunk): the client gets the good last
    chunk and never notices. If none matches, the read fails (the client sees a broken
    transfer; its next read goes to a good copy). A store that fails mid-read is replaced
    by the next copy at the same offset. Ranged reads are served unchecked.
    """

    def __init__(self, store: ReplicatedBlobStore, key: str, name: str, inner: ReadHandle,
                 md5: str | None, mtime: float) -> None:
        self.store, self.key, self.name, self.inner = store, key, name, inner
        self.size, self.md5, self.mtime = inner.size, md5, mtime
        self.direct_url = inner.direct_url
        self._digest = hashlib.md5()
        self._hashed = 0
        self._tried = {name}

    def read(self, offset: int, length: int) -> bytes:
        data = self._read_any(offset, length)
        if offset != self._hashed or not self.md5:
            return data
        before = self._digest.copy()
        self._digest.update(data)
        self._hashed += len(data)
        if self._hashed < self.size or self._digest.hexdigest() == self.md5:
            return data
        self.store.report(self.key, self.name, CORRUPT, self.md5)
        return self._recover(offset, before)

    def _read_any(self, offset: int, length: int) -> bytes:
        while True:
            try:
                return self.inner.read(offset, length)
            except STORE_ERRORS as exc:
                self.store.mark_down(self.name, exc)
                self._switch()

    def _switch(self) -> None:
        """Continue on the next copy not tried yet."""
        self.inner.close()
        self.name, self.inner = self.store.open_first(self.key, self.md5, self.mtime,
                                                      exclude=frozenset(self._tried))
        self._tried.add(self.name)

    def _recover(self, offset: int, sent: "hashlib._Hash") -> bytes:
        """The rest of the file from a good copy that agrees with the ``offset`` bytes sent."""
        while True:
            try:
                self._switch()
            except FileNotFoundError:
                raise OSError(f"blob {self.key}: no copy matches its MD5") from None
            if self.inner.size != self.size:
                self.store.report(self.key, self.name, CORRUPT, self.md5)
                continue
            prefix = hashlib.md5()
            for start in range(0, offset, CHUNK):
                prefix.update(self.inner.read(start, min(CHUNK, offset - start)))
            tail = self.inner.read(offset, self.size - offset)
            whole = prefix.copy()
            whole.update(tail)
            if whole.hexdigest() == self.md5:
                if prefix.hexdigest() == sent.hexdigest():
                    return tail
                raise OSError(f"blob {self.key}: the copy read first was corrupt; read again")
            self.store.report(self.key, self.name, CORRUPT, self.md5)

    def close(self) -> None:
        self.inner.close()


def _uncache(handle: ReadHandle, offset: int, length: int) -> None:
    """Drop what a background copy read of a local file from the page cache: a copy reads
    each blob once, and filling the cache with it would push out what uploads and
    downloads use (measured: uploads 10-20% slower while copies ran without this)."""
    fd = getattr(handle, "fd", None)  # FileReadHandle; S3 reads use no page cache
    if isinstance(fd, int) and fd >= 0:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def copy_blob(source: BlobStore, target: BlobStore, key: str, expected_md5: str | None,
              tick: Callable[[], None]) -> tuple[str, int] | None:
    """Stream blob ``key`` from ``source`` into ``target`` (MD5 and length on the way) and
    make it durable there; None, with nothing written, if the bytes do not match
    ``expected_md5``. ``tick`` runs before every chunk and before the final sync (heartbeats,
    yielding to transfers, stopping). Raises FileNotFoundError if ``source`` has no such blob."""
    handle = source.open(key, expected_md5, 0)
    sink = target.writer(key)
    try:
        digest, offset = hashlib.md5(), 0
        while offset < handle.size:
            tick()
            chunk = handle.read(offset, min(CHUNK, handle.size - offset))
            if not chunk:
                raise OSError(f"the source ended at {offset} of {handle.size} bytes")
            digest.update(chunk)
            sink.write(chunk)
            _uncache(handle, offset, len(chunk))
            offset += len(chunk)
        if expected_md5 and digest.hexdigest() != expected_md5:
            sink.discard()
            return None
        tick()
        sink.sync()
        sink.publish()
        return digest.hexdigest(), offset
    except BaseException:
        sink.discard()
        raise
    finally:
        handle.close()
