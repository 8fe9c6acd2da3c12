"""Durable byte streams shared by both backends: temp files, uploads and read handles.

An upload always goes to a temporary file first; only ``commit`` makes it visible, after
an fsync of the file, an atomic rename and an fsync of the directory, so a crash at any
moment leaves either the old bytes or the new ones, plus at worst a temp file that
``vospace fsck`` removes. MD5 and length are computed on the way, never by re-reading.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from typing import Protocol

from ..protocol.faults import PreconditionFailed, QuotaExceeded
from ..protocol.nodes import Node
from .direct_io import StagedWriter

CHUNK = 4 * 1024 * 1024
TEMP_PREFIX = ".vospace-tmp-"


def temp_name() -> str:
    """A hidden, unguessable name for an upload in progress (recognized by fsck)."""
    return TEMP_PREFIX + secrets.token_hex(12)


def older_than(path: str, min_age: float) -> bool:
    """Whether ``path`` was last modified ``min_age`` seconds ago or more (fsck's grace)."""
    if min_age <= 0:
        return True
    try:
        return time.time() - os.lstat(path).st_mtime >= min_age
    except FileNotFoundError:
        return False


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempFile:
    """A new file written at ``temp_path`` and renamed over ``final_path`` on publish.

    With ``dir_fd`` both are names inside that directory, which the TempFile then owns and
    closes: arc passes a directory opened without following symlinks, so the file can only
    land where the ACL check looked, even if a path component is swapped meanwhile.
    """

    def __init__(self, temp_path: str, final_path: str, mode: int = 0o644,
                 dir_fd: int | None = None) -> None:
        self.temp_path, self.final_path, self.dir_fd = temp_path, final_path, dir_fd
        self.fd: int | None = os.open(
            temp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
            dir_fd=dir_fd)
        self._writer = StagedWriter(self.fd)

    def write(self, chunk: bytes) -> None:
        self._writer.write(chunk)

    def flush(self) -> None:
        """Write out what the writer still holds back (no fsync)."""
        self._writer.finish()

    def sync(self) -> os.stat_result:
        """Flush and fsync; returns the file's stat (its final size and mtime)."""
        self.flush()
        os.fsync(self.fd)
        return os.fstat(self.fd)

    def publish(self) -> None:
        """Atomically replace ``final_path`` (call ``sync`` first)."""
        os.close(self.fd)
        self.fd = None
        os.rename(self.temp_path, self.final_path, src_dir_fd=self.dir_fd,
                  dst_dir_fd=self.dir_fd)
        if self.dir_fd is None:
            fsync_dir(os.path.dirname(self.final_path))
        else:
            os.fsync(self.dir_fd)
            self._close_dir()

    def discard(self) -> None:
        self._writer.release()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.temp_path, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        self._close_dir()

    def _close_dir(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


class Upload:
    """New content for one DataNode: ``write`` chunks, then ``commit`` or ``abort``.

    Subclasses implement ``_publish(md5, length)``, which makes the temp file the node's
    content and updates its metadata in one step, and may extend ``abort``. ``limit`` (set
    by the tree from the quotas above the node) stops a stream that runs past the quota
    before the excess reaches the disk; ``_publish`` checks the quota again atomically.
    """

    def __init__(self, temp: TempFile) -> None:
        self.temp = temp
        self._md5 = hashlib.md5()
        self.length = 0
        self.limit: int | None = None
        self._done = False

    def write(self, chunk: bytes) -> None:
        self.reserve(len(chunk))
        self.hash(chunk)
        self.store(chunk)

    # The three steps of ``write``, for a pipeline that runs them on separate threads
    # (storage/pipeline.py): in order, each chunk once, and ``reserve`` before the others.
    def reserve(self, size: int) -> None:
        """Count ``size`` more bytes; QuotaExceeded (nothing counted) past ``limit``."""
        if self.limit is not None and self.length + size > self.limit:
            raise QuotaExceeded(f"the upload exceeds the quota ({self.limit} bytes fit)")
        self.length += size

    def hash(self, chunk) -> None:
        self._md5.update(chunk)

    def store(self, chunk) -> None:
        """Hand ``chunk`` to the temp file (which does not keep a reference to it)."""
        self.temp.write(chunk)

    def commit(self, expected_md5: str | None = None) -> Node:
        """Publish the bytes; 412 (old content kept) when ``expected_md5`` does not match."""
        md5 = self._md5.hexdigest()
        if expected_md5 is not None and expected_md5.lower() != md5:
            self.abort()
            raise PreconditionFailed(f"MD5 mismatch: client sent {expected_md5}, received {md5}")
        try:
            node = self._publish(md5, self.length)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return node

    def _publish(self, md5: str, length: int) -> Node:
        raise NotImplementedError

    def abort(self) -> None:
        if not self._done:
            self._done = True
            self.temp.discard()


class ReadHandle(Protocol):
    size: int
    md5: str | None
    mtime: float
    direct_url: str | None  # where clients may fetch the bytes themselves (presigned S3)

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class FileReadHandle:
    """An open regular file; ``read`` is a positional read, so one handle serves any range.

    ``immutable``: no one changes or truncates the file while it is open (vault's blobs, a
    view made for one request), so the data port may send it from a mapping of the file
    (a truncated mapping would end the server with SIGBUS: never for arc's files, which
    sessions write in place)."""

    direct_url = None

    def __init__(self, fd: int, size: int, md5: str | None, mtime: float,
                 immutable: bool = False) -> None:
        self.fd, self.size, self.md5, self.mtime = fd, size, md5, mtime
        self.immutable = immutable

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class EmptyReadHandle:
    """A DataNode that never received bytes."""

    md5 = hashlib.md5(b"").hexdigest()
    direct_url = None

    def __init__(self, mtime: float) -> None:
        self.size, self.mtime = 0, mtime

    def read(self, offset: int, length: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


def md5_of_fd(fd: int) -> str:
    """MD5 of a whole open file (for files whose recorded checksum is missing or stale)."""
    digest, offset = hashlib.md5(), 0
    while True:
        chunk = os.pread(fd, CHUNK, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)
