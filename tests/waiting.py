"""Waiting for something asynchronous to happen, by asking until it has (never a fixed sleep).

Caches in this process take a clock the test moves (tests/clock.py); what happens in another
process (a server's background work, a sandbox starting, a log line being written) is polled
here, with a deadline, so a test is as fast as the event and fails with what it waited for.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, what: str = "",
               interval: float = 0.1,
               retry: tuple[type[Exception], ...] = (Exception,)) -> T:
    """Poll ``condition`` every ``interval`` seconds until it returns something true, and
    return that. An exception of a ``retry`` type counts as "not yet" (a server restarting,
    a page reloading), any other ends the wait; at the deadline a TimeoutError names
    ``what`` and the last answer or exception."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except retry as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for "
                               f"{what or getattr(condition, '__name__', condition)} "
                               f"(last: {last!r})")
        time.sleep(interval)
