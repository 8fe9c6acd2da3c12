"""Uploads after ``close``: a bounded pool of worker threads sends closed files to the
server while the program goes on writing the next ones.

A program unpacking thousands of small files waited for one upload round trip per
``close``; here ``close`` queues the upload and returns, and a few workers (each on its
own kept-alive connection) upload in parallel. What did not arrive is still reported:
``fsync`` waits for the file's upload and returns its error; any other failure is
returned once by the next ``close`` or ``fsync`` through the mount, and logged at unmount,
which waits for every pending upload (see SEMANTICS.md [S2]).
"""
from __future__ import annotations

import errno
import logging
import queue
import threading
from typing import Callable, Hashable

log = logging.getLogger("arcfs")

WORKERS = 8          # parallel uploads (connections); the server's threads do the rest
MAX_PENDING = 512    # closed files not yet uploaded; beyond it ``close`` waits (backpressure)


class Failure:
    """One upload that did not arrive: what, and the errno it failed with."""

    def __init__(self, what: str, error: OSError) -> None:
        self.what = what
        self.error = error


class Job:
    """A queued or running upload; ``again`` when it was submitted once more meanwhile."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.again = False


class WriteBack:
    """Runs the uploads submitted for a key on worker threads, one at a time per key;
    remembers failures until they are reported."""

    def __init__(self, workers: int = WORKERS, max_pending: int = MAX_PENDING) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        self.pending: dict[Hashable, Job] = {}              # queued or running
        self.errors: dict[Hashable, OSError] = {}           # per key, until waited for
        self.unreported: list[Failure] = []
        self.room = threading.BoundedSemaphore(max_pending)
        self.threads = [threading.Thread(target=self._work, daemon=True,
                                         name=f"arcfs-writeback-{i}") for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, key: Hashable, what: str, upload: Callable[[], None],
               finished: Callable[[], None]) -> bool:
        """Queue ``upload`` for ``key``, and ``finished`` for when it is done. When a job
        for ``key`` is already queued or running, that job runs its upload once more
        after the current run instead, and False is returned (nothing else happens)."""
        with self.cond:
            job = self.pending.get(key)
            if job is not None:
                job.again = True
                return False
            self.pending[key] = Job()
            self.errors.pop(key, None)
        self.room.acquire()
        self.jobs.put((key, what, upload, finished))
        return True

    def _work(self) -> None:
        while True:
            key, what, upload, finished = self.jobs.get()
            try:
                while True:
                    self._run(key, what, upload)
                    with self.cond:
                        job = self.pending[key]
                        if not job.again:
                            del self.pending[key]
                            break
                        job.again = False
            finally:
                self.room.release()
                try:
                    finished()
                finally:
                    job.done.set()
                with self.cond:
                    self.cond.notify_all()

    def _run(self, key: Hashable, what: str, upload: Callable[[], None]) -> None:
        try:
            upload()
        except BaseException as exc:  # noqa: BLE001 (a bug must not kill the worker)
            if not isinstance(exc, OSError):
                log.exception("%s: upload failed", what)
                exc = OSError(errno.EIO, f"upload failed: {exc}")
            log.error("%s: upload failed: %s", what, exc)
            with self.cond:
                self.errors[key] = exc
                self.unreported.append(Failure(what, exc))

    def settle(self, key: Hashable) -> None:
        """Wait for ``key``'s pending upload, if any (its outcome stays to be reported)."""
        with self.cond:
            job = self.pending.get(key)
        if job is not None:
            job.done.wait()

    def wait(self, key: Hashable) -> None:
        """Wait for ``key``'s pending upload; raise its error (then it counts as reported)."""
        self.settle(key)
        with self.cond:
            error = self.errors.pop(key, None)
            if error is not None:
                self.unreported = [f for f in self.unreported if f.error is not error]
        if error is not None:
            raise OSError(error.errno, f"{error.strerror} (upload failed)")

    def take_failure(self) -> Failure | None:
        """The oldest failure not reported yet (now reported), if any."""
        with self.cond:
            return self.unreported.pop(0) if self.unreported else None

    def idle(self) -> None:
        """Wait until nothing is pending."""
        with self.cond:
            while self.pending:
                self.cond.wait()

    def drain(self) -> list[Failure]:
        """Wait until nothing is pending; the failures never reported (now reported)."""
        self.idle()
        with self.cond:
            failures, self.unreported = self.unreported, []
        return failures
