"""Work a server process does on a thread of its own beside the requests (scheduled
snapshots, background blob copies): started with the app, stopped at shutdown."""
from __future__ import annotations

import threading


class BackgroundLoop:
    """A daemon thread running ``_loop`` until ``stop``. The loop waits on ``_stop`` (an
    Event), so stopping wakes it at once; ``_wake`` interrupts anything else it waits on."""

    thread_name = "background"
    join_timeout = 30.0  # how long shutdown waits for the loop to end

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout)

    def _wake(self) -> None:
        pass

    def _loop(self) -> None:
        raise NotImplementedError
