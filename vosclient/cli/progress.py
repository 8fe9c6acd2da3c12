"""A byte progress bar with rate and ETA, drawn only when stderr is a terminal."""
from __future__ import annotations

import os
import sys
import threading


def _size() -> tuple[int, int]:
    """The terminal's columns and rows; 80x24 when it reports none (a fresh pseudo-terminal
    says 0x0, and tqdm then draws nothing)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        return size.columns or 80, size.lines or 24
    except OSError:
        return 80, 24


class Progress:
    """Thread-safe; ``update(n)`` from any transfer thread. A no-op off a terminal."""

    def __init__(self, total: int, enabled: bool | None = None, desc: str = "") -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._bar = None
        if self.enabled:
            from tqdm import tqdm
            self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=desc or None, file=sys.stderr, ncols=_size()[0], nrows=_size()[1],
                             mininterval=0.2, leave=True)

    def update(self, n: int) -> None:
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def write(self, message: str) -> None:
        """A message that does not tear the bar."""
        if self._bar is not None:
            with self._lock:
                self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
