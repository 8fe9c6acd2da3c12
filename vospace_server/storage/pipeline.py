"""An upload received, hashed and stored at once: three threads and a few reused buffers.

The receiving thread (the caller's: for the data port, the connection's, which also
decrypts TLS) fills buffers; one thread hashes them (MD5, still the single pass over the
bytes) and another stores them (O_DIRECT writes, see direct_io.py). ``ssl``, ``hashlib``
and ``os.write`` release the GIL, so on two cores the steps overlap and an upload runs at
the pace of its slowest step instead of the sum of all three. Buffers go round
free -> received -> hashed -> stored -> free, so memory stays bounded (``BUFFERS`` of
``STAGE`` bytes) and a slow disk slows the reading from the network.
"""
from __future__ import annotations

import mmap
import queue
import threading
from typing import Callable, Union

from .direct_io import STAGE, return_buffer, take_buffer
from .streams import Upload

BUFFERS = 4
Fill = Callable[[memoryview], int]  # put up to len(view) bytes into view; 0 at the end
Buffer = Union[mmap.mmap, memoryview]


def fill_fully(fill: Fill, buffer) -> int:
    """Fill ``buffer`` until it is full or the source ends; the number of bytes in it."""
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(view):
            got = fill(view[filled:])
            if not got:
                break
            filled += got
    return filled


class UploadPipeline:
    """Runs ``Upload.reserve`` (the quota limit) on the receiving thread, ``hash`` and
    ``store`` on one thread each, in order; the caller commits or aborts afterwards."""

    def __init__(self, upload: Upload, buffers: int = BUFFERS) -> None:
        self.upload = upload
        self.buffers = buffers
        self._failure: list[BaseException] = []

    def run(self, fill: Fill) -> None:
        """Receive with ``fill`` until it returns 0; returns once every byte is hashed and
        stored, or raises the first failure of any step, in both cases with the other
        threads finished (so an abort never races a write)."""
        free: queue.Queue = queue.Queue()
        for _ in range(self.buffers):
            free.put(take_buffer())
        to_hash: queue.Queue = queue.Queue()
        to_store: queue.Queue = queue.Queue()
        def recycle(item: tuple | None) -> None:
            if item is not None:
                free.put(item[0])

        threads = [threading.Thread(target=self._step, args=(self.upload.hash, to_hash,
                                                             to_store.put), daemon=True),
                   threading.Thread(target=self._step, args=(self.upload.store, to_store,
                                                             recycle), daemon=True)]
        for thread in threads:
            thread.start()
        try:
            self._receive(fill, free, to_hash)
        finally:
            to_hash.put(None)
            for thread in threads:
                thread.join()
            for _ in range(self.buffers):
                return_buffer(free.get_nowait())
        if self._failure:
            raise self._failure[0]

    def _receive(self, fill: Fill, free: queue.Queue, to_hash: queue.Queue) -> None:
        while not self._failure:
            buffer = free.get()
            size = fill_fully(fill, buffer)
            if not size:
                free.put(buffer)
                return
            try:
                self.upload.reserve(size)
            except BaseException:
                free.put(buffer)
                raise
            to_hash.put((buffer, size))
            if size < STAGE:
                return

    def _step(self, work: Callable[[Buffer], None], inbox: queue.Queue,
              passing: Callable[[tuple | None], None]) -> None:
        """Apply ``work`` to each buffer of ``inbox`` (after a failure anywhere, skip it)
        and pass it on; the closing None is passed on too."""
        while (item := inbox.get()) is not None:
            buffer, size = item
            if not self._failure:
                try:
                    if size == len(buffer):  # whole: the pool's mmap itself (stored unstaged)
                        work(buffer)
                    else:
                        with memoryview(buffer) as view, view[:size] as part:
                            work(part)
                except BaseException as exc:  # noqa: BLE001 - raised on the receiving thread
                    self._failure.append(exc)
            passing(item)
        passing(None)
