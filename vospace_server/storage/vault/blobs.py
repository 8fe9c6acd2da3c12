"""Where the vault keeps bytes: immutable blobs named by random keys.

A blob is never rewritten: new content for a node goes to a new key, the node row is
switched to it in one SQL transaction, and only then is the old blob deleted. A crash
therefore leaves at worst an unreferenced blob or a temp file, both found by fsck.
"""
from __future__ import annotations

import os
import secrets
from typing import Iterator, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from ...config import Settings
from .. import release
from ..streams import (TEMP_PREFIX, FileReadHandle, ReadHandle, TempFile, fsync_dir, older_than,
                       temp_name)


class Sink(Protocol):
    """Where an upload's bytes go: ``streams.TempFile`` locally, a multipart upload on S3."""

    def write(self, chunk: bytes) -> None:
        """Take ``chunk`` (bytes, or a view of a buffer the caller reuses once this returns)."""
        ...

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
        return FileReadHandle(fd, os.fstat(fd).st_size, md5, mtime, immutable=True)

    def delete(self, key: str) -> None:
        held = release.hold(self.path(key))  # its blocks freed after the answer
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass
        finally:
            if held is not None:
                release.close_later(held)

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


def copy_stores(settings: Settings) -> dict[str, BlobStore]:
    """The stores named by ``blob_copies`` (whitespace-separated URLs, each optionally
    ending in ``#name``; the default name is the URL without credentials):

    - ``file:///absolute/dir``: local files (another disk, an NFS or CephFS mount);
    - ``s3://[KEY:SECRET@]bucket[/prefix][?endpoint=URL&region=R&redirect=0]``: S3;
      without KEY:SECRET the ``s3_access_key``/``s3_secret_key`` settings (or boto3's
      credential chain) are used.
    """
    stores: dict[str, BlobStore] = {}
    for url in settings.blob_copies.split():
        name, store = _store_from_url(url, settings)
        if name in stores or name == PRIMARY:
            raise ValueError(f"blob_copies: the store name {name!r} is used twice")
        stores[name] = store
    return stores


PRIMARY = "primary"


def _store_from_url(url: str, settings: Settings) -> tuple[str, BlobStore]:
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return parts.fragment or f"file://{parts.path}", LocalBlobStore(parts.path)
    if parts.scheme == "s3" and parts.hostname:
        from .s3 import S3BlobStore

        query = dict(parse_qsl(parts.query))
        unknown = set(query) - {"endpoint", "region", "redirect"}
        if unknown:
            raise ValueError(f"blob_copies: unknown option(s) {sorted(unknown)} in {url!r}")
        bucket_url = f"s3://{parts.hostname}{parts.path}"
        endpoint = query.get("endpoint", "")
        name = parts.fragment or bucket_url + (f"@{endpoint}" if endpoint else "")
        store = S3BlobStore(bucket_url, endpoint,
                            unquote(parts.username or "") or settings.s3_access_key,
                            unquote(parts.password or "") or settings.s3_secret_key,
                            query.get("region", "") or settings.s3_region,
                            query.get("redirect", "1") not in ("0", "false", "no", "off"))
        return name, store
    raise ValueError(f"blob_copies: {url!r} is neither file:///DIR nor s3://bucket[/prefix]")
