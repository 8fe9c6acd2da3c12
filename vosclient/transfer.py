"""Moving bytes: uploads (PUT with MD5 check), downloads (GET, resumable from a ``.part``
file, MD5 checked), both skipping files that are already identical (size first, MD5 only
when sizes match). Files of NEGOTIATE_FROM bytes or more go to the pre-authorized URL
transfer negotiation hands out (sources.py), smaller ones to /files (a vault GET there
follows the 303 to a pre-authorized URL).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from . import errors
from .sources import ByteSource, endpoint
from .uris import Remote

if TYPE_CHECKING:
    from .client import Client

CHUNK = 4 * 1024 * 1024
# Files up to this size are hashed before the PUT and sent with a Digest header, so the
# server refuses corrupt bytes before publishing them; larger ones are hashed while they
# stream (one read of the file) and checked against the Digest the server answers.
DIGEST_FIRST = 64 * 1024 * 1024
# Downloads read into BUFFERS buffers of RECV_BUFFER bytes in turn (one being filled from
# the socket while others are written and hashed). Small enough to stay in the CPU cache
# between the three threads: measured on 1 GiB, 256 KiB buffers download ~1.6x faster and
# use ~40% less CPU than 4 MiB ones.
RECV_BUFFER = 256 * 1024
BUFFERS = 16
# Files from this size are sent to and fetched from the pre-authorized URL transfer
# negotiation hands out (this project's server: its data port, where TLS runs at OpenSSL's
# speed; /files on the main port measured about half curl's rate there for 1 GiB): one
# round trip more, which only a small file would notice.
NEGOTIATE_FROM = 16 * 1024 * 1024
ATTEMPTS = 4
RETRYABLE = (errors.Unreachable, errors.ServerError, errors.ChecksumMismatch)
Progress = Callable[[int], None]


@dataclass
class Result:
    source: str
    dest: str
    action: str          # "uploaded", "downloaded", "copied", "skipped"
    size: int


def file_md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_md5(headers) -> str | None:
    """The MD5 (hex) a response announces in ``Digest: md5=<b64>`` or its ETag."""
    for part in headers.get("digest", "").split(","):
        algo, _, value = part.strip().partition("=")
        if algo.lower() == "md5" and value:
            try:
                return base64.b64decode(value).hex()
            except (binascii.Error, ValueError):
                return None
    etag = headers.get("etag", "").strip('W/"')
    return etag if len(etag) == 32 else None


class _Pipe:
    """Runs ``consume(item)`` for each item on a second thread, so network I/O overlaps
    with disk I/O and MD5 (all three release the GIL on large buffers)."""

    def __init__(self, consume: Callable, depth: int = 16) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._consume = consume
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # re-raised in the caller's thread by close()
                    self._error = exc

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _read_ahead(path: str, hasher, progress: Progress | None) -> Iterator[bytes]:
    """The file's chunks, read (and hashed, with a ``hasher``) on a second thread while
    the caller sends."""
    chunks: queue.Queue = queue.Queue(8)

    def produce() -> None:
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    if hasher is not None:
                        hasher.update(chunk)
                    chunks.put(chunk)
            chunks.put(None)
        except OSError as exc:
            chunks.put(exc)

    threading.Thread(target=produce, daemon=True).start()
    while (item := chunks.get()) is not None:
        if isinstance(item, OSError):
            raise item
        if progress:
            progress(len(item))
        yield item


def _with_retries(fn: Callable[[], Result], attempts: int = ATTEMPTS) -> Result:
    for attempt in range(attempts):
        try:
            return fn()
        except RETRYABLE:
            if attempt + 1 >= attempts:
                raise
            time.sleep(min(0.5 * 2 ** attempt, 10))
    raise AssertionError("unreachable")


UNKNOWN = object()


def upload(client: "Client", local: str, remote: Remote, skip_identical: bool = True,
           progress: Progress | None = None, existing=UNKNOWN, checksum: bool = True) -> Result:
    """Upload ``local`` to ``remote`` (a container: into it).

    ``existing`` is the destination node when the caller already listed it (None: absent),
    saving a request per file; ``checksum=False`` skips on equal size alone.
    """
    if not os.path.isfile(local):
        raise errors.NotFound(f"{local}: no such file") if not os.path.exists(local) else \
            errors.IsAContainer(f"{local}: is a directory", "use vcp -r for directories")
    size = os.path.getsize(local)
    node = existing
    if node is UNKNOWN:
        try:
            node = client.get_node(remote)
        except errors.NotFound:
            node = None
    if node is not None and node.isdir and existing is UNKNOWN:
        remote = remote.child(os.path.basename(local))
        try:
            node = client.get_node(remote)
        except errors.NotFound:
            node = None
    if node is not None and node.isdir:
        raise errors.IsAContainer(f"{remote}: is a container")
    if node is not None and node.islocked:
        raise errors.Locked(f"{remote}: the node is locked")
    known_md5 = None
    if skip_identical and node is not None and node.size == size and (node.md5 or not checksum):
        known_md5 = file_md5(local) if checksum else node.md5
        if known_md5 == node.md5:
            if progress:
                progress(size)
            return Result(local, str(remote), "skipped", size)
    if known_md5 is None and size <= DIGEST_FIRST:
        known_md5 = file_md5(local)   # cheap here, and the server refuses a corrupt body
    return _with_retries(lambda: _put_file(client, local, remote, size, known_md5, progress))


def _put_file(client: "Client", local: str, remote: Remote, size: int, known_md5: str | None,
              progress: Progress | None) -> Result:
    """One PUT over the bulk (http.client) connection; the file is read and hashed on a
    second thread while this one sends, and the server's echoed digest is checked."""
    extra = {}
    if known_md5:
        extra["Digest"] = "md5=" + base64.b64encode(bytes.fromhex(known_md5)).decode()
    pool, target = client.bulk.at(endpoint(client, remote, push=True,
                                           negotiate=size >= NEGOTIATE_FROM))
    # Hashed on the reading thread only where the connection does not check the bytes
    # (plain HTTP; see Bulk.put_chunks).
    hasher = None if pool.tls_checks_bytes else hashlib.md5()
    pool.put_chunks(target, _read_ahead(local, hasher, progress),
                    mimetypes.guess_type(local)[0] or "application/octet-stream",
                    size=size, what=str(remote), hashed=hasher, extra=extra, tls_suffices=True)
    return Result(local, str(remote), "uploaded", size)


def put_bytes(client: "Client", remote: Remote, data: bytes):
    """Store ``data`` as the content of ``remote`` (created if missing); returns its node."""
    md5 = hashlib.md5(data)
    headers = {"Digest": "md5=" + base64.b64encode(md5.digest()).decode(),
               "Content-Type": "application/octet-stream"}
    response = client.transport.request("PUT", client.files_url(remote), content=data,
                                        headers=headers, what=str(remote))
    echoed = digest_md5(response.headers)
    if echoed is not None and echoed != md5.hexdigest():
        raise errors.ChecksumMismatch(f"{remote}: the server stored MD5 {echoed}")
    return client.get_node(remote)


def open_get(client: "Client", remote: Remote, headers: dict[str, str]):
    """GET /files, following the vault's 303 to a pre-authorized URL (sent with no
    credential: the URL is the credential)."""
    response = client.transport.request("GET", client.files_url(remote), headers=headers,
                                        stream=True, what=str(remote))
    hops = 0
    while response.status_code in (301, 302, 303, 307, 308) and hops < 5:
        location = response.headers.get("location", "")
        response.close()
        if not location:
            raise errors.ServerError(f"{remote}: redirect without a location")
        response = client.transport.request("GET", location, headers=headers, stream=True,
                                            auth=False, what=str(remote))
        hops += 1
    return response


def read_range(client: "Client", remote: Remote, start: int | None = None,
               end: int | None = None) -> bytes:
    """Bytes ``[start, end)`` of a node (all of it by default)."""
    headers = {}
    if start is not None or end is not None:
        first = start or 0
        if end is not None and end <= first:
            return b""
        headers["Range"] = f"bytes={first}-" + (str(end - 1) if end is not None else "")
    response = open_get(client, remote, headers)
    try:
        if response.status_code == 416:
            return b""
        data = response.read()
    finally:
        response.close()
    if headers and response.status_code == 200:
        first = start or 0
        data = data[first:end] if end is not None else data[first:]
    return data


def download(client: "Client", remote: Remote, local: str, skip_identical: bool = True,
             resume: bool = True, progress: Progress | None = None, node=None,
             checksum: bool = True) -> Result:
    """Download ``remote`` to ``local`` (a directory: into it), resuming a ``.part`` file."""
    node = node or client.get_node(remote)
    if node.isdir:
        raise errors.IsAContainer(f"{remote}: is a container", "use vcp -r for containers")
    if os.path.isdir(local):
        local = os.path.join(local, remote.name)
    if skip_identical and os.path.isfile(local) and os.path.getsize(local) == node.size \
            and (not checksum or (node.md5 and file_md5(local) == node.md5)):
        if progress:
            progress(node.size)
        return Result(str(remote), local, "skipped", node.size)
    parent = os.path.dirname(os.path.abspath(local))
    if not os.path.isdir(parent):
        raise errors.NotFound(f"{parent}: no such local directory")
    return _with_retries(lambda: _get_file(client, remote, local, node, resume, progress))


def _get_file(client: "Client", remote: Remote, local: str, node, resume: bool,
              progress: Progress | None) -> Result:
    part = local + ".part"
    offset = os.path.getsize(part) if resume and os.path.isfile(part) else 0
    if offset > node.size:
        offset = 0
    hasher = hashlib.md5()
    expected = node.md5
    if offset and offset == node.size:
        _hash_file(part, hasher)          # complete already: only the MD5 check is left
        if progress:
            progress(offset)
    else:
        extra = {"If-Range": f'"{node.md5}"'} if offset and node.md5 else {}
        source = ByteSource(client, remote, negotiate=node.size >= NEGOTIATE_FROM)
        stream = source.open(offset, extra=extra)
        try:
            if stream.status == 206:
                _hash_file(part, hasher)
                if progress:
                    progress(offset)
            else:
                offset = 0
                expected = digest_md5(stream.headers) or node.md5
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | (0 if offset else os.O_TRUNC), 0o644)
            try:
                os.lseek(fd, offset, os.SEEK_SET)
                _receive(stream, fd, hasher, progress, str(remote))
            finally:
                os.close(fd)
        finally:
            stream.close()
    got = hasher.hexdigest()
    if expected and got != expected:
        os.unlink(part)
        raise errors.ChecksumMismatch(f"{remote}: downloaded MD5 {got}, expected {expected}")
    os.replace(part, local)
    return Result(str(remote), local, "downloaded", node.size)


def _hash_file(path: str, hasher) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)


def _receive(stream, fd: int, hasher, progress: Progress | None, what: str) -> None:
    """Copy the body into ``fd`` through three threads, each on its own buffer at a time:
    this one fills large buffers straight from the socket (``readinto``: no per-piece
    objects), a second writes them, a third hashes them and hands them back to be refilled.
    All three release the GIL, so on two cores the slowest of them sets the pace."""
    free: queue.Queue = queue.Queue()
    for _ in range(BUFFERS):
        free.put(bytearray(RECV_BUFFER))

    def digest(item: tuple[bytearray, int]) -> None:
        buffer, size = item
        try:
            hasher.update(memoryview(buffer)[:size])
        finally:
            free.put(buffer)

    def write(item: tuple[bytearray, int]) -> None:
        buffer, size = item
        try:
            view = memoryview(buffer)[:size]
            written = 0
            while written < size:
                written += os.write(fd, view[written:])
            hashing.put(item)
        except BaseException:
            free.put(buffer)      # the reader must not wait forever for it
            raise

    hashing = _Pipe(digest, depth=BUFFERS)
    writing = _Pipe(write, depth=BUFFERS)

    def finish() -> None:
        try:
            writing.close()
        finally:
            hashing.close()

    try:
        while True:
            buffer = free.get()
            view, filled = memoryview(buffer), 0
            while filled < RECV_BUFFER and (got := stream.readinto(view[filled:])):
                filled += got
            if filled:
                writing.put((buffer, filled))
                if progress:
                    progress(filled)
            if filled < RECV_BUFFER:
                break
    except errors.Unreachable as exc:    # a dropped stream: keep the .part to resume
        finish()
        raise errors.Unreachable(f"{what}: connection lost during download: {exc}") from None
    except BaseException:                # Ctrl-C: what was received is written first
        finish()
        raise
    finish()
