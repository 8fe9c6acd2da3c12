"""Reads of one open remote file: HTTP Range requests with an adaptive read-ahead window.

A background worker fetches ranges ahead of the reader over a kept-alive connection: the
first range is 1 MiB, each next one twice as long (up to 64 MiB) while the reader stays
sequential, and the worker pauses once it is a window ahead. A read far from the buffered
data (a seek) starts over with a 1 MiB window, so random access does not pull megabytes it
will not use. Reads the kernel issues out of order or ahead of the worker (multithreaded
FUSE, several read-ahead requests in flight) wait for the bytes they need instead of
restarting.

fsspec's ``ReadAheadCache``/``BlockCache`` were considered: they fetch synchronously inside
``read`` (nothing is prefetched while the caller consumes), with a fixed block size, and are
not safe for concurrent reads of one handle, so a sequential read through them runs at the
speed of one request at a time plus its latency; hence this worker.
"""
from __future__ import annotations

import bisect
import threading
from typing import Callable

CHUNK = 1 << 20
MIN_WINDOW = 1 << 20
MAX_WINDOW = 64 << 20
# A read this far past the buffered end waits for the worker rather than restarting it or
# fetching alone. The kernel's reads run ahead of the worker by up to two read-ahead windows:
# 3 MiB measured under dd, 7 MiB under cat and cp, whose fadvise(SEQUENTIAL) doubles the
# mount's 2 MiB window (with 4 MiB here, half of cat's reads went out as requests of their
# own, at half dd's speed, with twice the server's CPU).
SLACK = 16 << 20
KEEP_BEHIND = 8 << 20    # bytes kept before the last read (out-of-order and re-reads)

OpenRange = Callable[[int, int], object]   # (start, end) -> stream with read(n), close()


class RangeReader:
    """Serves ``read(offset, size)`` for a file of ``size`` bytes."""

    def __init__(self, open_range: OpenRange, size: int, min_window: int = MIN_WINDOW,
                 max_window: int = MAX_WINDOW) -> None:
        self.open_range = open_range
        self.size = size
        self.min_window = min_window
        self.max_window = max_window
        self.cond = threading.Condition()
        self.starts: list[int] = []
        self.datas: list[bytes] = []
        self.buf_start = self.buf_end = 0
        self.want = 0
        self.window = min_window
        self.gen = 0
        self.running = False
        self.error: BaseException | None = None
        self.closed = False
        self.waiting = 0         # reads waiting for the worker

    # ---- worker -----------------------------------------------------------------------
    def _restart(self, offset: int) -> None:
        self.gen += 1
        self.starts, self.datas = [], []
        self.buf_start = self.buf_end = offset
        self.window = self.min_window
        self.error = None
        self.running = True
        threading.Thread(target=self._run, args=(self.gen, offset), daemon=True,
                         name="arcfs-readahead").start()

    def _run(self, gen: int, pos: int) -> None:
        try:
            while True:
                with self.cond:
                    while (gen == self.gen and not self.closed and pos < self.size
                           and pos - self.want >= self.window):
                        self.cond.wait()
                    if gen != self.gen or self.closed or pos >= self.size:
                        return
                    end = min(pos + self.window, self.size)
                stream = self.open_range(pos, end)
                try:
                    while pos < end:
                        data = stream.read(min(CHUNK, end - pos))
                        with self.cond:
                            if not data:       # the file shrank since it was opened
                                self.size = end = pos
                                self.cond.notify_all()
                                break
                            if gen != self.gen or self.closed:
                                stream.close(reuse=False)
                                return
                            self.starts.append(pos)
                            self.datas.append(data)
                            pos += len(data)
                            self.buf_end = pos
                            self.cond.notify_all()
                finally:
                    stream.close()
                with self.cond:
                    self.window = min(self.window * 2, self.max_window)
                    if pos >= self.size:
                        return
        except BaseException as exc:  # noqa: BLE001 (handed to the reader)
            with self.cond:
                if gen == self.gen:
                    self.error = exc
                    self.cond.notify_all()
        finally:
            with self.cond:
                if gen == self.gen:
                    self.running = False
                    self.cond.notify_all()

    # ---- reader -----------------------------------------------------------------------
    def _slice(self, offset: int, end: int) -> bytes:
        i = bisect.bisect_right(self.starts, offset) - 1
        parts = []
        while offset < end and i < len(self.starts):
            start, data = self.starts[i], self.datas[i]
            lo, hi = offset - start, min(end - start, len(data))
            parts.append(data if (lo, hi) == (0, len(data)) else data[lo:hi])
            offset = start + hi
            i += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _trim(self, offset: int) -> None:
        keep_from = offset - KEEP_BEHIND
        drop = bisect.bisect_right(self.starts, keep_from) - 1
        if drop > 16:
            del self.starts[:drop]
            del self.datas[:drop]
            self.buf_start = self.starts[0]

    def read(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset``, fewer only at the end of the file (a short answer
        is the end of the file to the kernel, which would cache the file as cut there).
        A read the buffer does not cover restarts the worker there, unless another read
        is waiting for the worker (reads of two regions at once would take it from each
        other in turn): then, as when the buffer moved on meanwhile, it fetches its own."""
        with self.cond:
            end = min(offset + size, self.size)
            if offset >= end:
                return b""
            covered = self.buf_start <= offset and (
                end <= self.buf_end or (self.running and offset <= self.buf_end + SLACK))
            if covered or not self.waiting:
                data = self._from_worker(offset, end, covered)
                if data is not None:
                    return data
                if offset >= self.size:      # the file was found shorter meanwhile
                    return b""
                end = min(end, self.size)
        return self._fetch(offset, end)

    def _from_worker(self, offset: int, end: int, covered: bool) -> bytes | None:
        """Wait (holding ``cond``) for the worker to buffer ``[offset, end)``; None when
        the buffer no longer holds ``offset`` by then."""
        if not covered:
            self._restart(offset)
        self.want = max(self.want, end) if covered else end
        self.cond.notify_all()
        self.waiting += 1
        try:
            while self.buf_end < end and self.error is None and self.running:
                self.cond.wait()
        finally:
            self.waiting -= 1
        if self.error is not None:
            error, self.error = self.error, None
            self.gen += 1
            self.running = False
            self.starts, self.datas = [], []
            self.buf_start = self.buf_end = 0
            raise error
        if not self.buf_start <= offset < self.buf_end:
            return None
        data = self._slice(offset, min(end, self.buf_end))
        self._trim(offset)
        return data

    def _fetch(self, offset: int, end: int) -> bytes:
        """Bytes ``[offset, end)`` with a request of their own, past the worker."""
        stream = self.open_range(offset, end)
        parts = []
        try:
            while offset < end and (data := stream.read(end - offset)):
                parts.append(data)
                offset += len(data)
        finally:
            stream.close()
        return b"".join(parts)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.gen += 1
            self.cond.notify_all()
