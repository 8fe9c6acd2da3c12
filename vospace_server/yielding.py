"""How background work (the blob copier) gives way to the clients of its server process.

- ``TransfersInFlight`` counts this process's data transfers (uploads and downloads through
  the data endpoints; the access middleware counts them, services/audit.py), so background
  work can wait until the process has been idle for a moment.
- ``lower_thread_priority`` makes the calling thread the first to lose the CPU and the disk
  when anything else on the machine wants them (a niced thread, the idle I/O class), which
  covers what the count cannot see: the chunk a background task was in when a transfer
  began, and other processes (other server replicas) on the same machine.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
import time

log = logging.getLogger("vospace.server")

BACKGROUND_NICE = 19
IOPRIO_CLASS_IDLE = 3
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}.get(platform.machine())


class TransfersInFlight:
    """How many data transfers this process is serving, and since when it serves none."""

    def __init__(self) -> None:
        self._count = 0
        self._idle_since = time.monotonic()
        self._changed = threading.Condition()

    def add(self, delta: int) -> None:
        with self._changed:
            self._count += delta
            if self._count == 0:
                self._idle_since = time.monotonic()
                self._changed.notify_all()

    def wait_idle(self, grace: float, timeout: float,
                  stopping: threading.Event | None = None) -> bool:
        """Wait until no transfer has been in flight for ``grace`` seconds (True), or at
        most ``timeout`` seconds, or until ``stopping`` is set and ``wake_waiters`` called
        (False: the process is still busy)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while stopping is None or not stopping.is_set():
                now = time.monotonic()
                idle_for = now - self._idle_since if self._count == 0 else -1.0
                if idle_for >= grace:
                    return True
                left = deadline - now
                if left <= 0:
                    break
                self._changed.wait(min(left, grace - idle_for) if idle_for >= 0 else left)
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
