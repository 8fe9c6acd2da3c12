"""Files open for writing: a local spool file holding the whole content, uploaded after
flush/close. All handles of one path share one spool, so reads, ``stat`` and ``truncate``
through this mount see the bytes written before they are uploaded.
"""
from __future__ import annotations

import errno
import os
import tempfile
import threading
import time

from .upload import ALIGN, StreamingUpload


class Spool:
    """The local copy of one file being written through the mount."""

    def __init__(self, cache_dir: str, path: str) -> None:
        suffix = os.path.splitext(path)[1][:16]   # keeps the upload's content type guess
        fd, self.name = tempfile.mkstemp(prefix="spool-", suffix=suffix, dir=cache_dir)
        self.fd = fd
        self.direct: int | None = None   # an O_DIRECT descriptor, opened on first use
        self.path = path
        self.refs = 0
        self.dirty = False
        self.unlinked = False
        self.mtime = time.time()
        self.lock = threading.RLock()
        self.stream: StreamingUpload | None = None   # upload running while it is written
        self.deferred: dict[str, int] = {}    # chmod mode / utimens time for after the upload
        self.broken: OSError | None = None    # a write behind (upload.py) that failed

    def size(self) -> int:
        """Its length, counting the streamed writes still on their way into it (read
        first: one that lands in between is then counted by either)."""
        behind = self.stream.spooling_end() if self.stream is not None else 0
        return max(behind, os.fstat(self.fd).st_size)

    def settle(self) -> None:
        """Wait for the writes behind (upload.py); raise if one failed: the spool then
        lacks its bytes, and neither reading nor uploading it would be right."""
        if self.stream is not None:
            self.stream.settle()
        if self.broken is not None:
            raise OSError(self.broken.errno, "writing the local copy (--cache-dir) "
                          f"failed: {self.broken.strerror}")

    def pwrite(self, data: bytes, offset: int) -> int:
        self.settle()
        written = os.pwrite(self.fd, data, offset)
        self.dirty, self.mtime = True, time.time()
        return written

    def pwrite_direct(self, buffer, offset: int) -> int:
        """Write a page-aligned buffer at an aligned offset past the page cache (O_DIRECT),
        where the file system allows it (tmpfs does not: then through the page cache, as
        a buffer of another length or offset goes). The kernel keeps both descriptors'
        views of the file coherent. Called by the spooling thread of the streaming upload
        (upload.py); a failure, or a write short of the whole buffer, breaks the spool."""
        try:
            written = self._pwrite_direct(buffer, offset)
            if written != len(buffer):
                raise OSError(errno.EIO, f"short write ({written} of {len(buffer)} bytes)")
            return written
        except OSError as exc:
            self.broken = exc
            raise

    def _pwrite_direct(self, buffer, offset: int) -> int:
        # a buffer handed over part-filled, or one started off a page boundary
        if offset % ALIGN or len(buffer) % ALIGN:
            return self._pwrite_cached(buffer, offset)
        if self.direct is None:
            try:
                self.direct = os.open(self.name, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self.direct = -1
        if self.direct < 0:
            return self._pwrite_cached(buffer, offset)
        try:
            written = os.pwrite(self.direct, buffer, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL:   # EINVAL: an alignment this disk does not take
                raise
            os.close(self.direct)
            self.direct = -1
            return self._pwrite_cached(buffer, offset)
        self.dirty, self.mtime = True, time.time()
        return written

    def written_behind(self) -> None:
        """A write handed to the streaming upload, on its way into the spool: the file is
        changed from now on (its upload must not be skipped as clean)."""
        self.dirty, self.mtime = True, time.time()

    def _pwrite_cached(self, buffer, offset: int) -> int:
        """Where O_DIRECT is refused; not ``pwrite``, which would wait for this very write."""
        written = os.pwrite(self.fd, buffer, offset)
        self.dirty, self.mtime = True, time.time()
        return written

    def pread(self, size: int, offset: int) -> bytes:
        self.settle()
        return os.pread(self.fd, size, offset)

    def truncate(self, length: int) -> None:
        self.settle()
        os.ftruncate(self.fd, length)
        self.dirty, self.mtime = True, time.time()

    def fill(self, chunks) -> None:
        """Load the existing remote content (opened for writing without O_TRUNC)."""
        offset = 0
        for chunk in chunks:
            os.pwrite(self.fd, chunk, offset)
            offset += len(chunk)

    def discard(self) -> None:
        self.dirty = False             # nothing left to upload from here
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.abort()
        try:
            os.close(self.fd)
            if self.direct is not None and self.direct >= 0:
                os.close(self.direct)
        finally:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass
