"""Where the vault keeps bytes: immutable blobs named by random keys.

A blob is never rewritten: new content for a node goes to a new key, the node row is
switched to it in one SQL transaction, and only then is the old blob deleted. A crash
therefore leaves at worst an unreferenced blob or a temp file, both found by fsck.
"""
from __future__ import annotations

import os
import secrets
from typing import Iterator, Protocol

from ...config import Settings
from ..streams import (TEMP_PREFIX, FileReadHandle, ReadHandle, TempFile, fsync_dir, older_than,
                       temp_name)


class Sink(Protocol):
    """Where an upload's bytes go: ``streams.TempFile`` locally, a multipart upload on S3."""

    def write(self, chunk: bytes) -> None: ...

    def sync(self) -> object: ...

    def publish(self) -> None: ...

    def discard(self) -> None: ...


def new_key() -> str:
    return secrets.token_hex(16)


class BlobStore(Protocol):
    def writer(self, key: str) -> Sink:
        """A sink for the bytes of new blob ``key``; ``publish`` makes it exist durably."""
        ...

    def open(self, key: str, md5: str | None, mtime: float, filename: str = "") -> ReadHandle:
        """The blob's bytes (``filename`` names them for a direct download); raises
        FileNotFoundError if the blob does not exist."""
        ...

    def delete(self, key: str) -> None: ...

    def copy(self, src: str, dest: str) -> None:
        """Make blob ``dest`` hold the same bytes as ``src`` (for server-side copy)."""
        ...

    def keys(self, min_age: float = 0) -> Iterator[str]:
        """Every blob at least ``min_age`` seconds old (fsck spares younger ones)."""
        ...

    def debris(self, min_age: float = 0) -> list[str]:
        """Temp objects of uploads that never finished (names for fsck's report)."""
        ...

    def remove_debris(self, name: str) -> None: ...

    def check(self) -> None:
        """Raise OSError unless the store answers now (``/readyz``); quick, never a scan."""
        ...


class LocalBlobStore:
    """Blobs as files ``<root>/<key[:2]>/<key>``; uploads in progress under ``<root>/tmp``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)

    def path(self, key: str) -> str:
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"bad blob key {key!r}")
        return os.path.join(self.root, key[:2], key)

    def writer(self, key: str) -> TempFile:
        final = self.path(key)
        folder = os.path.dirname(final)
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
            fsync_dir(self.root)
        return TempFile(os.path.join(self.tmp, temp_name()), final, mode=0o600)

    def open(self, key: str, md5: str | None, mtime: float, filename: str = "") -> FileReadHandle:
        fd = os.open(self.path(key), os.O_RDONLY | os.O_CLOEXEC)
        return FileReadHandle(fd, os.fstat(fd).st_size, md5, mtime)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass

    def copy(self, src: str, dest: str) -> None:
        # Blobs are immutable, so a hard link is a safe and instant copy.
        final = self.path(dest)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.link(self.path(src), final)
        fsync_dir(os.path.dirname(final))

    def keys(self, min_age: float = 0) -> Iterator[str]:
        for folder in sorted(os.listdir(self.root)):
            full = os.path.join(self.root, folder)
            if folder == "tmp" or len(folder) != 2 or not os.path.isdir(full):
                continue
            yield from sorted(n for n in os.listdir(full)
                              if n.startswith(folder) and older_than(os.path.join(full, n), min_age))

    def debris(self, min_age: float = 0) -> list[str]:
        return sorted(n for n in os.listdir(self.tmp) if n.startswith(TEMP_PREFIX)
                      and older_than(os.path.join(self.tmp, n), min_age))

    def remove_debris(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.tmp, name))
        except FileNotFoundError:
            pass

    def check(self) -> None:
        if not os.access(self.tmp, os.W_OK | os.X_OK):
            raise OSError(f"{self.tmp} is not a writable directory")


def make_blob_store(settings: Settings) -> BlobStore:
    """Local files under ``blob_dir``, or S3 when ``blob_url`` is ``s3://bucket[/prefix]``."""
    if settings.blob_url.startswith("s3://"):
        from .s3 import S3BlobStore

        return S3BlobStore(settings.blob_url, settings.s3_endpoint_url, settings.s3_access_key,
                           settings.s3_secret_key, settings.s3_region,
                           settings.s3_redirect_downloads)
    if settings.blob_url:
        raise ValueError(f"unsupported blob_url {settings.blob_url!r} (use s3://bucket)")
    return LocalBlobStore(settings.blob_dir)
