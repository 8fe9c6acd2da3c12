"""Uploads that start while a new file is still being written.

A file written from offset 0 onwards (``cp``, ``dd``, an application saving its output)
is sent to the server as it is written, with chunked transfer encoding, so ``close`` only
waits for the tail instead of the whole upload. The first write that is not at the end of
the bytes already queued (a seek back, a hole, a truncate) aborts the streaming upload
(the server discards an upload that did not complete), and ``close`` uploads the spool
whole, as for any other file.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

CHUNK = 1 << 20


class Aborted(Exception):
    """The spool stopped being written sequentially."""


class StreamingUpload:
    """Sends a spool's bytes as they are appended; ``finish`` waits for the result."""

    def __init__(self, fd: int, send: Callable, what: str) -> None:
        self.fd = fd
        self.end = 0                 # bytes written to the spool so far (sequentially)
        self.final: int | None = None
        self.aborted = False
        self.cond = threading.Condition()
        self.md5: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(send,), daemon=True,
                                       name=f"arcfs-upload {what}")
        self.thread.start()

    def _chunks(self):
        pos = 0
        while True:
            with self.cond:
                while not self.aborted and pos >= self.end and self.final is None:
                    self.cond.wait()
                if self.aborted:
                    raise Aborted()
                limit = self.end if self.final is None else self.final
                if pos >= limit:
                    return
            data = os.pread(self.fd, min(CHUNK, limit - pos), pos)
            if not data:
                raise Aborted()
            pos += len(data)
            yield data

    def _run(self, send: Callable) -> None:
        try:
            self.md5 = send(self._chunks())
        except BaseException as exc:  # noqa: BLE001 (reported by finish)
            self.error = exc

    def appended(self, offset: int, length: int) -> bool:
        """Record a write; False (and the upload aborted) unless it extends the end."""
        with self.cond:
            if self.aborted or offset != self.end:
                self.abort_locked()
                return False
            self.end += length
            self.cond.notify_all()
            return True

    def abort_locked(self) -> None:
        self.aborted = True
        self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.abort_locked()
        self.thread.join()

    def finish(self, size: int) -> str | None:
        """Send the rest (the spool holds ``size`` bytes) and wait. Returns the MD5 stored,
        or None when the streaming upload was aborted (the caller uploads whole); raises the
        upload's error otherwise."""
        with self.cond:
            if not self.aborted and size == self.end:
                self.final = size
            else:
                self.abort_locked()
            self.cond.notify_all()
        self.thread.join()
        if self.aborted:
            return None
        if self.error is not None:
            raise self.error
        return self.md5
