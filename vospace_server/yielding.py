"""How background work (the blob copier) gives way to the clients of its server process.

- ``TransfersInFlight`` counts this process's data transfers (uploads and downloads through
  the data endpoints; the access middleware counts them, services/audit.py), so background
  work can wait until the process has been idle for a moment. With ``--workers`` it also
  sees the other workers' transfers, on a ``WorkerBoard`` their supervisor shares.
- ``lower_thread_priority`` makes the calling thread the first to lose the CPU and the disk
  when anything else on the machine wants them (a niced thread, the idle I/O class), which
  covers what the count cannot see: the chunk a background task was in when a transfer
  began, and other processes (other server replicas) on the same machine.
"""
from __future__ import annotations

import ctypes
import logging
import mmap
import os
import platform
import struct
import threading
import time

log = logging.getLogger("vospace.server")

BACKGROUND_NICE = 19
IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}.get(platform.machine())
BOARD_POLL = 0.1  # seconds between looks at the other workers' transfers while waiting


class WorkerBoard:
    """Every worker's transfers in flight, in a small file the workers of one supervisor
    map into memory (workers.py makes it): a record per worker slot of (transfers in
    flight, ``time.monotonic()`` when it last had none), which only that worker writes.
    The monotonic clock is the machine's, so the records compare across processes. A
    record read while being written can mix old and new values; the next look corrects
    it, and a copy starting a tenth of a second early or late costs nothing."""

    RECORD = struct.Struct("=qd")

    def __init__(self, path: str, slot: int) -> None:
        with open(path, "r+b") as fh:
            self._map = mmap.mmap(fh.fileno(), 0)
        self._offset = slot * self.RECORD.size

    @classmethod
    def create(cls, path: str, slots: int) -> None:
        """The file for ``slots`` workers, every one idle."""
        with open(path, "wb") as fh:
            fh.write(bytes(cls.RECORD.size * slots))

    @classmethod
    def clear(cls, path: str, slot: int) -> None:
        """Forget what a dead worker left in its record (transfers it no longer serves)."""
        with open(path, "r+b") as fh:
            fh.seek(slot * cls.RECORD.size)
            fh.write(cls.RECORD.pack(0, time.monotonic()))

    def publish(self, count: int, idle_since: float) -> None:
        self.RECORD.pack_into(self._map, self._offset, count, idle_since)

    def total(self) -> tuple[int, float]:
        """Transfers in flight in all workers, and the latest moment one became idle."""
        records = list(self.RECORD.iter_unpack(self._map))
        return sum(count for count, _ in records), max(since for _, since in records)


class TransfersInFlight:
    """How many data transfers this process (with a ``board``: every worker) is serving,
    and since when it serves none."""

    def __init__(self, board: WorkerBoard | None = None) -> None:
        self._count = 0
        self._idle_since = time.monotonic()
        self._changed = threading.Condition()
        self._board = board
        if board is not None:
            board.publish(0, self._idle_since)

    def add(self, delta: int) -> None:
        with self._changed:
            self._count += delta
            if self._count == 0:
                self._idle_since = time.monotonic()
                self._changed.notify_all()
            if self._board is not None:
                self._board.publish(self._count, self._idle_since)

    def _state(self) -> tuple[int, float]:
        return (self._count, self._idle_since) if self._board is None else self._board.total()

    def wait_idle(self, grace: float, timeout: float,
                  stopping: threading.Event | None = None) -> bool:
        """Wait until no transfer has been in flight for ``grace`` seconds (True), or at
        most ``timeout`` seconds, or until ``stopping`` is set and ``wake_waiters`` called
        (False: the process is still busy). The other workers' transfers cannot wake the
        wait, so with a board it looks again every ``BOARD_POLL`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while stopping is None or not stopping.is_set():
                now = time.monotonic()
                count, idle_since = self._state()
                idle_for = now - idle_since if count == 0 else -1.0
                if idle_for >= grace:
                    return True
                left = deadline - now
                if left <= 0:
                    break
                wait = min(left, grace - idle_for) if idle_for >= 0 else left
                self._changed.wait(wait if self._board is None else min(wait, BOARD_POLL))
            return False

    def wake_waiters(self) -> None:
        """Make every ``wait_idle`` look at its ``stopping`` event again."""
        with self._changed:
            self._changed.notify_all()


def lower_thread_priority() -> None:
    """Run the calling thread at nice ``BACKGROUND_NICE`` and in the idle I/O class (Linux
    applies both per thread). Where either is not available, the thread keeps running at
    the process's priority and only the yielding to transfers applies."""
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except (OSError, AttributeError) as exc:
        log.info("background thread keeps its CPU priority: %s", exc)
    if _SYS_IOPRIO_SET is None:
        log.info("background thread keeps its I/O priority (no ioprio_set on %s)",
                 platform.machine())
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_IOPRIO_SET, _IOPRIO_WHO_PROCESS, tid,
                    IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT) != 0:
        log.info("background thread keeps its I/O priority: %s",
                 os.strerror(ctypes.get_errno()))
