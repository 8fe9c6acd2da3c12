"""Uploads that start while a new file is still being written.

A file written from offset 0 onwards (``cp``, ``dd``, an application saving its output)
is sent to the server as it is written, with chunked transfer encoding, so ``close`` only
waits for the tail instead of the whole upload. The first write that is not at the end of
the bytes already queued (a seek back, a hole, a truncate) aborts the streaming upload
(the server discards an upload that did not complete), and ``close`` uploads the spool
whole, as for any other file.

The bytes are handed over in memory, not read back from the spool: writes are copied
into one of a few reused, page-aligned buffers of 1 MiB, which the upload sends from and a
second thread writes into the spool with ``O_DIRECT`` (see ``Spool.pwrite_direct``) behind
the writer's back: a write returns once copied. A buffer goes once full, or once anyone
needs the spool (``settle``, ``finish``), so writes of any size cost a copy each: one
send, one spool write and two thread wake-ups per write made ``shutil.copyfile``'s 64 KiB
writes run at 0.4x ``dd``'s rate, and ``tar``'s 10 KiB ones (which were read back from
the spool) at 0.07x. Measured on 1 GiB here, writing the spool through the page cache
(fresh pages for every MiB) and reading it back cost more CPU than TLS and MD5 together;
and waiting for each ``O_DIRECT`` write (1.3 ms per MiB) made the writer, not the upload,
set the pace (arcfs at 0.46x curl's upload, the upload idle two thirds of the time). A
buffer is free again once sent and in the spool. Whoever needs the spool whole (reads,
other writes, truncate, the upload after an abort) waits for the writes behind first
(``settle``); one that failed leaves the spool broken, and the file is then not uploaded:
the error is returned by the next write, ``fsync`` or ``close``. While every buffer is in
flight a write waits a moment for one (the upload sets the pace, and the writer leaves it
the CPU); after that it goes to the spool through the page cache and the upload reads
those bytes back from the spool, as do later writes, without waiting, until the upload
frees a buffer again (a stalled server does not hold up the writer).
"""
from __future__ import annotations

import collections
import mmap
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

CHUNK = 1 << 20          # bytes read back from the spool at a time
BUFFER = 1 << 20         # one aligned buffer (the FUSE max_write)
BUFFERS = 16             # aligned buffers per upload (the bytes in flight)
ALIGN = mmap.PAGESIZE    # what O_DIRECT asks of offsets, lengths and addresses
WAIT_FOR_BUFFER = 1.0    # seconds a write waits for a free buffer before the page cache


class Aborted(Exception):
    """The spool stopped being written sequentially."""


@dataclass
class _Filling:
    """The buffer writes are being copied into: where it starts in the file, how many bytes
    it holds and how many it takes."""
    offset: int
    buffer: mmap.mmap
    length: int
    capacity: int


class StreamingUpload:
    """Sends a spool's bytes as they are appended; ``finish`` waits for the result.

    Each appended piece is memory to send (an aligned buffer from ``buffer()``, or the
    written bytes) or, given as its length alone, bytes to read back from the spool."""

    def __init__(self, fd: int, send: Callable[[Iterator], str | None], what: str,
                 write_behind: Callable[[memoryview, int], int],
                 wait: float = WAIT_FOR_BUFFER) -> None:
        self.fd = fd
        self.wait = wait
        self.write_behind = write_behind   # (buffer, offset): into the spool, O_DIRECT
        self.behind: collections.deque = collections.deque()   # (offset, buffer, length)
        self.holds: dict[int, int] = {}    # id(buffer) -> uses left: sending, spooling
        self.spool_error: OSError | None = None
        self.end = 0                 # bytes written to the spool so far (sequentially)
        self.pieces: collections.deque = collections.deque()   # (offset, memory | length)
        self.final: int | None = None
        self.aborted = False
        self.cond = threading.Condition()
        self.filling: _Filling | None = None
        self.free: list[mmap.mmap] = []
        self.made = 0                # aligned buffers allocated so far (up to BUFFERS)
        self.starved = False         # a write waited in vain: no more waits until one is free
        self.md5: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(send,), daemon=True,
                                       name=f"arcfs-upload {what}")
        self.thread.start()
        threading.Thread(target=self._spool_behind, daemon=True,
                         name=f"arcfs-spool {what}").start()

    # ---- the writer's side --------------------------------------------------------------
    def write(self, offset: int, data) -> int:
        """Take a write at the end of the bytes queued: copied into the buffer being
        filled, and further ones as each fills; a full buffer goes to be sent and spooled.
        Returns how many bytes were taken: all, fewer when no buffer is free (the caller
        writes the rest into the spool, from where the upload reads it back), or none when
        the write is not at the end (the upload is then aborted). Raises the error of an
        earlier write behind that failed."""
        view = memoryview(data).cast("B")
        taken = 0
        with self.cond:
            self._raise_spool_error()
            if self.aborted or offset != self.end:
                self.abort_locked()
                return 0
            while taken < len(view) and not self.aborted:
                if self.filling is None:
                    buffer = self.buffer()
                    if buffer is None:
                        break
                    start = offset + taken
                    # one that starts off a page boundary ends on one, so that the next
                    # starts on one (O_DIRECT takes only whole aligned pages)
                    self.filling = _Filling(start, buffer, 0, BUFFER - start % ALIGN)
                filling = self.filling
                n = min(filling.capacity - filling.length, len(view) - taken)
                filling.buffer[filling.length:filling.length + n] = view[taken:taken + n]
                filling.length += n
                self.end += n
                taken += n
                if filling.length == filling.capacity:
                    self._hand_over_locked()
        return taken

    def _hand_over_locked(self) -> None:
        """The buffer being filled goes to the spooling thread and, unless the upload was
        aborted, to be sent."""
        if self.filling is None:
            return
        offset, buffer, length = self.filling.offset, self.filling.buffer, self.filling.length
        self.filling = None
        if self.aborted:
            self.holds[id(buffer)] = 1
        else:
            self.pieces.append((offset, memoryview(buffer)[:length]))
            self.holds[id(buffer)] = 2
        self.behind.append((offset, buffer, length))
        self.cond.notify_all()

    def buffer(self) -> mmap.mmap | None:
        """A free aligned buffer to copy writes into, waiting a moment while all are in
        flight; None when there is none (or the upload stopped)."""
        with self.cond:
            if not self.free and self.made < BUFFERS:
                self.made += 1
                return mmap.mmap(-1, BUFFER)
            if not self.starved:
                self.starved = not self.cond.wait_for(
                    lambda: self.free or self.aborted or self.error is not None, self.wait)
            if self.free and not self.aborted:
                return self.free.pop()
            return None

    def appended(self, offset: int, piece) -> bool:
        """Record a write of ``piece`` (memory, or a length: read back from the spool) at
        ``offset``; False (and the upload aborted) unless it extends the end."""
        length = piece if isinstance(piece, int) else len(piece)
        with self.cond:
            if self.aborted or offset != self.end:
                self.abort_locked()
                return False
            if length:
                last = self.pieces[-1] if self.pieces else None
                if isinstance(piece, int) and last is not None and isinstance(last[1], int):
                    self.pieces[-1] = (last[0], last[1] + piece)   # one read back for both
                else:
                    self.pieces.append((offset, piece))
                self.end += length
                self.cond.notify_all()
            return True

    def settle(self) -> None:
        """Wait until every write behind is in the spool; raise the error of one that
        failed (the spool then lacks its bytes)."""
        with self.cond:
            self._hand_over_locked()
            self.cond.wait_for(lambda: not self.behind)
            self._raise_spool_error()

    def spooling_end(self) -> int:
        """Where the writes behind not yet in the spool end (0: none), so that the spool's
        size counts them."""
        with self.cond:
            if self.filling is not None:
                return self.filling.offset + self.filling.length
            return self.behind[-1][0] + self.behind[-1][2] if self.behind else 0

    def _raise_spool_error(self) -> None:
        if self.spool_error is not None:
            raise OSError(self.spool_error.errno, "writing the local copy (--cache-dir) "
                          f"failed: {self.spool_error.strerror}")

    def _release(self, buffer: mmap.mmap) -> None:
        """One use of ``buffer`` done (sent, or spooled); free once both are (with the
        condition held)."""
        left = self.holds.pop(id(buffer), 1) - 1
        if left:
            self.holds[id(buffer)] = left
            return
        self.free.append(buffer)
        self.starved = False
        self.cond.notify_all()

    # ---- the spooling thread ------------------------------------------------------------
    def _spool_behind(self) -> None:
        """Write the aligned buffers into the spool, in order, until the upload ends and
        none is left. After a failure nothing more goes in, and the upload is aborted."""
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.behind or self.aborted
                                   or self.final is not None)
                if not self.behind:
                    return
                offset, buffer, length = self.behind[0]
                failed = self.spool_error is not None
            if not failed:
                try:
                    self.write_behind(memoryview(buffer)[:length], offset)
                except OSError as exc:
                    with self.cond:
                        self.spool_error = exc
                        self.abort_locked()
            with self.cond:
                self.behind.popleft()
                self._release(buffer)
                self.cond.notify_all()

    # ---- the upload's side --------------------------------------------------------------
    def _chunks(self) -> Iterator:
        """The pieces in order; a buffer is free again once the consumer asks for the next
        piece (it has hashed and sent the one before)."""
        sent: mmap.mmap | None = None
        while True:
            with self.cond:
                if sent is not None:
                    self._release(sent)
                    sent = None
                while not self.aborted and not self.pieces and self.final is None:
                    self.cond.wait()
                if self.aborted:
                    raise Aborted()
                if not self.pieces:
                    return
                offset, piece = self.pieces.popleft()
            if not isinstance(piece, int):
                sent = piece.obj
                yield piece
                continue
            end = offset + piece
            while offset < end:
                data = os.pread(self.fd, min(CHUNK, end - offset), offset)
                if not data:
                    raise Aborted()
                offset += len(data)
                yield data

    def _run(self, send: Callable[[Iterator], str | None]) -> None:
        try:
            self.md5 = send(self._chunks())
        except BaseException as exc:  # noqa: BLE001 (reported by finish)
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def abort_locked(self) -> None:
        self.aborted = True
        self.pieces.clear()
        self._hand_over_locked()      # its bytes still go into the spool
        self.cond.notify_all()

    def abort(self) -> None:
        """Stop the upload (the server discards it); returns once the writes behind are
        in the spool, which is then uploaded whole."""
        with self.cond:
            self.abort_locked()
            self.cond.wait_for(lambda: not self.behind)
        self.thread.join()

    def finish(self, size: int) -> tuple[bool, str | None]:
        """Send the rest (the spool holds ``size`` bytes) and wait. Returns (True, the MD5
        stored), or (False, None) when the streaming upload was aborted (the caller uploads
        whole); raises the upload's error otherwise."""
        with self.cond:
            self._hand_over_locked()
            if not self.aborted and size == self.end:
                self.final = size
            else:
                self.abort_locked()
            self.cond.notify_all()
        self.thread.join()
        self.settle()
        if self.aborted:
            return False, None
        if self.error is not None:
            raise self.error
        return True, self.md5
