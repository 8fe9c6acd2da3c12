"""Open files: what each FUSE file handle reads from or writes to."""
from __future__ import annotations

import errno
import itertools
import threading
from dataclasses import dataclass

from .errnos import fs_error
from .reader import RangeReader
from .spool import Spool


@dataclass
class Handle:
    """A reader over the server's bytes, or a spool (the local copy being written)."""

    path: str
    spool: Spool | None = None
    reader: RangeReader | None = None
    writable: bool = False
    append: bool = False


class Handles:
    """File handle numbers -> Handles, safe to use from FUSE's threads."""

    def __init__(self) -> None:
        self._open: dict[int, Handle] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, handle: Handle) -> int:
        with self._lock:
            fh = next(self._numbers)
            self._open[fh] = handle
        return fh

    def get(self, fh: int) -> Handle:
        handle = self._open.get(fh)
        if handle is None:
            raise fs_error(errno.EBADF)
        return handle

    def pop(self, fh: int) -> Handle | None:
        with self._lock:
            return self._open.pop(fh, None)

    def renamed(self, old: str, new: str) -> None:
        """Handles open on ``old`` or below it follow a rename to ``new``."""
        with self._lock:
            for handle in self._open.values():
                if handle.path == old or handle.path.startswith(old + "/"):
                    handle.path = new + handle.path[len(old):]
