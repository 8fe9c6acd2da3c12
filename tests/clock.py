"""A clock tests move by hand, for caches that expire: no waiting for a TTL to pass."""
from __future__ import annotations


class ManualClock:
    """Monotonic seconds that only advance when ``advance`` is called."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
