"""The background copier: makes the copies the ledger queues, in every server process.

One thread per process claims one task at a time from the shared ``copy_queue`` (see
copy_ledger.py), so N processes share the work and a task survives the death of the
process that ran it. A copy streams from the first store holding a good copy into the
target (MD5 and length on the way, compared with the expected MD5 when known), is made
durable there (``sync`` + ``publish``), and only then recorded and dropped from the queue.
A failed attempt goes back to the queue with exponential backoff.

Copies give way to the process's clients (README "Copies in several places"): before each
chunk the copier waits until this process (with ``--workers``, every worker of its
server) has served no upload or download for ``IDLE_GRACE`` seconds, but never longer than
``max_wait`` seconds (``copy_max_wait``), so a server that is never idle still copies a
chunk per ``max_wait`` seconds. The thread runs at the lowest CPU and I/O priority
(yielding.py). Other servers' transfers are not seen here: separate replicas on one
machine give way to each other only through those priorities.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from ...background import BackgroundLoop
from ...yielding import TransfersInFlight, lower_thread_priority
from ..jobs import runner_identity
from .copies import STORE_ERRORS, ReplicatedBlobStore, copy_blob
from .copy_ledger import CORRUPT, DELETE, OK, Task

log = logging.getLogger("vospace.copies")
POLL = 1.0        # seconds between looks at the queue when this process queued nothing
HEARTBEAT = 10.0
IDLE_GRACE = 0.5  # seconds without transfers before copying resumes (covers the gaps
                  # between one client's back-to-back requests)


class Stopping(Exception):
    """The server is shutting down: hand the task back unfinished."""


class CopyWorker(BackgroundLoop):
    thread_name = "blob-copier"
    join_timeout = 10.0

    def __init__(self, store: ReplicatedBlobStore, transfers: TransfersInFlight,
                 max_wait: float) -> None:
        super().__init__()
        self.store = store
        self.ledger = store.ledger
        self.transfers = transfers
        self.max_wait = max_wait  # seconds a chunk waits for the transfers at most
        self.me = runner_identity()

    def _wake(self) -> None:
        self.store.wake()
        self.transfers.wake_waiters()

    def _give_way(self, beat: Callable[[], None] = lambda: None) -> None:
        """Wait until this process's clients leave the CPU and disk idle, at most
        ``max_wait`` seconds; ``beat`` runs at least every ``HEARTBEAT`` seconds meanwhile
        (a claimed task must not look abandoned however long the wait)."""
        deadline = time.monotonic() + self.max_wait
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if self.transfers.wait_idle(IDLE_GRACE, min(left, HEARTBEAT), self._stop) \
                    or left <= HEARTBEAT:
                return
            beat()

    def _loop(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            self._give_way()
            try:
                task = self.ledger.claim(self.me)
            except Exception:  # the database is away: try again later
                log.exception("cannot read the copy queue")
                task = None
            if task is None:
                self.store.queued.wait(POLL)
                self.store.queued.clear()
                continue
            self.run(task)

    def run(self, task: Task) -> None:
        try:
            if task.op == DELETE:
                self.store.stores[task.store].delete(task.blob)
                self.ledger.finish(task)
            else:
                self._copy(task)
        except Stopping:
            self.ledger.release(task)
        except Exception as exc:
            log.warning("copy of blob %s into %s failed (attempt %d): %s", task.blob,
                        task.store, task.attempts + 1, exc)
            self.store.metrics.copy_failures.labels(task.store).inc()
            self.ledger.retry_later(task, f"{type(exc).__name__}: {exc}")

    def _sources(self, task: Task) -> list[str]:
        """Stores to read from: known-good copies first, then any not known to be bad."""
        known = self.ledger.copies(task.blob)
        order = self.store.read_order(task.blob, frozenset({task.store}))
        good = [n for n in order if known.get(n, ("",))[0] == OK]
        return good + [n for n in order if n not in known]

    def _copy(self, task: Task) -> None:
        target = self.store.stores[task.store]
        tick = self._ticker(task)
        for name in self._sources(task):
            try:
                made = copy_blob(self.store.stores[name], target, task.blob, task.md5, tick)
            except FileNotFoundError:
                continue
            except STORE_ERRORS as exc:
                target.check()  # when the target is what failed, the task is retried later
                self.store.mark_down(name, exc)
                continue
            if made is None:
                self.store.report(task.blob, name, CORRUPT, task.md5)
                continue
            if self.ledger.finish_copy(task, *made, name):
                self.store.remade(task.blob, task.store)
            elif not self.ledger.copies(task.blob):
                target.delete(task.blob)  # the blob was deleted while we copied it
            # else another process took the task over (we looked dead): it makes the copy
            return
        raise FileNotFoundError(f"no readable copy of blob {task.blob}")

    def _ticker(self, task: Task) -> Callable[[], None]:
        last = time.monotonic()

        def beat() -> None:
            nonlocal last
            if time.monotonic() - last > HEARTBEAT:
                self.ledger.heartbeat(task)
                last = time.monotonic()

        def tick() -> None:
            self._give_way(beat)
            if self._stop.is_set():
                raise Stopping()
            beat()
        return tick
