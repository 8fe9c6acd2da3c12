"""Streaming a DataNode's bytes out (GET/HEAD) and in (PUT), with the headers the CADC
client relies on: ``Digest: md5=<base64>`` both ways, ETag / If-None-Match / 304,
Last-Modified, Range -> 206 + Content-Range, Content-Disposition, and 412 when the bytes
received do not match the checksum the client sent.

Bytes move in ``CHUNK``-sized pieces on a worker thread (one hop per MiBs, not per
network packet); an upload is aborted, leaving the old content, on any failure including
a client that disconnects.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import re
from concurrent.futures import Future, ThreadPoolExecutor, wait
from email.utils import formatdate
from typing import Callable

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..protocol import properties as props
from ..protocol.faults import InvalidArgument, QuotaExceeded
from ..protocol.http_headers import content_disposition, md5_b64
from ..protocol.nodes import Node
from ..storage.streams import CHUNK, ReadHandle, Upload
from ..storage.tree import NodeTree
from .requests import run

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def client_md5(request: Request) -> str | None:
    """The MD5 (hex) the client declared in ``Digest: md5=<b64>`` or ``Content-MD5``."""
    for part in request.headers.get("digest", "").split(","):
        algo, _, value = part.strip().partition("=")
        if algo.lower() == "md5" and value:
            return _decode_md5(value.strip())
    value = request.headers.get("content-md5", "").strip()
    if value:
        return value.lower() if re.fullmatch(r"[0-9a-fA-F]{32}", value) else _decode_md5(value)
    return None


def _decode_md5(b64: str) -> str:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise InvalidArgument(f"not a base64 MD5 digest: {b64!r}")
    return raw.hex()


def _headers(node: Node, handle: ReadHandle) -> dict[str, str]:
    headers = {
        "Content-Type": node.properties.get(props.TYPE) or "application/octet-stream",
        "Last-Modified": formatdate(handle.mtime, usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(node.name),
    }
    if node.properties.get(props.ENCODING):
        headers["Content-Encoding"] = node.properties[props.ENCODING]
    if handle.md5:
        headers["Digest"] = f"md5={md5_b64(handle.md5)}"
        headers["ETag"] = f'"{handle.md5}"'
    return headers


def _etag_matches(header: str, etag: str | None) -> bool:
    if not etag:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for one satisfiable range; None to serve everything.

    Several ranges are answered with the whole file (allowed by RFC 9110)."""
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, end


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class HandleResponse(Response):
    """Streams ``length`` bytes of an open ReadHandle from ``start``; closes it at the end."""

    def __init__(self, handle: ReadHandle, start: int, length: int, status: int,
                 headers: dict[str, str]) -> None:
        super().__init__(status_code=status, headers=headers)
        self.handle, self.start, self.length = handle, start, length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reading: asyncio.Task | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            # The next chunk is read on a worker thread while this one is encrypted and
            # sent, so disk reads and TLS overlap instead of taking turns.
            offset, end = self.start, self.start + self.length
            reading = self._read_next(offset, end)
            while reading is not None:
                chunk = await reading
                if not chunk:  # the file shrank under us: end short, the client sees it
                    break
                offset += len(chunk)
                reading = self._read_next(offset, end)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if reading is not None:  # never close the fd under a running read
                await asyncio.wait([reading])
                if not reading.cancelled():
                    reading.exception()  # retrieved: a failed read-ahead is not news
            self.handle.close()

    def _read_next(self, offset: int, end: int) -> asyncio.Task | None:
        if offset >= end:
            return None
        return asyncio.ensure_future(run(self.handle.read, offset, min(CHUNK, end - offset)))


async def send_bytes(request: Request, tree: NodeTree, node: Node,
                     version: int | None = None) -> Response:
    """GET/HEAD of a DataNode (or of one of its kept versions) whose read access has been
    checked."""
    if version is not None:
        handle = await run(tree.open_version, node.path, version)
    else:
        handle = await run(tree.open_read, node.path)
    try:
        headers = _headers(node, handle)
        if _etag_matches(request.headers.get("if-none-match", ""), headers.get("ETag")):
            handle.close()
            return Response(status_code=304, headers={
                k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "Digest")})
        start, length, status = 0, handle.size, 200
        if request.headers.get("range"):
            try:
                wanted = _byte_range(request.headers["range"], handle.size)
            except RangeNotSatisfiable:
                handle.close()
                return Response(status_code=416,
                                headers={"Content-Range": f"bytes */{handle.size}"})
            if wanted is not None:
                start, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
                headers["Content-Range"] = f"bytes {start}-{wanted[1]}/{handle.size}"
        if handle.direct_url and status == 200 and request.method == "GET":
            handle.close()  # the store serves the bytes itself (presigned S3 URL)
            return Response(status_code=303, headers={**headers, "Location": handle.direct_url,
                                                      "Content-Length": "0"})
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            handle.close()
            return Response(status_code=status, headers=headers)
        return HandleResponse(handle, start, length, status, headers)
    except BaseException:
        handle.close()
        raise


class PipelinedWriter:
    """Hashes and writes one chunk on a worker thread while the next one arrives.

    At most one write is in flight, and ``finish_then_abort`` waits for it before the temp
    file is closed, so a write can never land in a recycled file descriptor.
    """

    _pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="upload")

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self._in_flight: Future | None = None

    async def write(self, data: bytes) -> None:
        await self.drain()
        if data:
            self._in_flight = self._pool.submit(self.upload.write, data)

    async def drain(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            await asyncio.wrap_future(future)

    def finish_then_abort(self) -> None:
        """(On a worker thread) let the in-flight write end, then discard the upload."""
        if self._in_flight is not None:
            wait([self._in_flight])
        self.upload.abort()


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidArgument(f"bad Content-Length {value!r}")
    return int(value)


def _refuse_over_quota(request: Request, upload: Upload, declared: int | None) -> None:
    """QuotaExceeded before any byte is read when the announced size cannot fit.

    The answer closes the connection: a client that waited for ``100 Continue`` never sends
    the body, so nothing that follows on this connection could be parsed as a request."""
    total = request.headers.get("x-total-length", "")
    sizes = [declared] + ([int(total)] if total.isdigit() else [])
    known = max((s for s in sizes if s is not None), default=None)
    if upload.limit is not None and known is not None and known > upload.limit:
        refusal = QuotaExceeded(f"{known} bytes do not fit: {upload.limit} left under the quota")
        refusal.headers = {"Connection": "close"}
        raise refusal


def content_type(request: Request) -> str | None:
    """The media type an upload declares (kept as the node's ``type`` property)."""
    return request.headers.get("content-type") or None


async def receive_bytes(request: Request, begin: Callable[[], Upload]) -> Response:
    """PUT: stream the body into a new version of the node; 201 with its Digest.

    ``begin`` (run on a worker thread) is the tree's ``begin_write`` for the node with the
    caller's checks, so the upload is begun (node resolved, permission and lock checked,
    quota room known) before the body is read, and a declared length that cannot fit is
    refused at once; with ``Expect: 100-continue`` the client sees that refusal before it
    sends a byte (uvicorn sends ``100 Continue`` only when the body is first read). A body
    of undeclared length is stopped mid-stream by the upload's own limit.

    PUT transactions (``x-put-txn-op``) are not offered: the CADC client's ``start``
    handshake for files >= 5 GiB (empty body, ``x-total-length``) is answered without a
    transaction id, which tells it to send the whole file in one PUT.
    """
    declared = _declared_length(request)
    if request.headers.get("x-put-txn-id"):
        raise InvalidArgument("PUT transactions are not supported by this service")
    expected = client_md5(request)
    upload = await run(begin)
    writer = PipelinedWriter(upload)
    try:
        _refuse_over_quota(request, upload, declared)
        if request.headers.get("x-put-txn-op", "").lower() == "start" and \
                request.headers.get("x-total-length") and declared == 0:
            await run(upload.abort)  # the handshake only: permission and room were checked
            return Response(status_code=200)
        if declared is not None and declared <= CHUNK:  # one chunk: one worker hop to store
            node = await run(_store_whole, upload, await request.body(), expected)
            return _stored(node)
        pending: list[bytes] = []
        buffered = 0
        async for chunk in request.stream():
            pending.append(chunk)
            buffered += len(chunk)
            if buffered >= CHUNK:
                await writer.write(b"".join(pending))
                pending, buffered = [], 0
        await writer.write(b"".join(pending))
        await writer.drain()
        if declared is not None and upload.length != declared:
            raise InvalidArgument(f"received {upload.length} bytes of {declared}")
        node = await run(upload.commit, expected)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await run(writer.finish_then_abort)
        if isinstance(exc, ClientDisconnect):  # nobody to answer; old content kept
            return Response(status_code=400)
        raise
    return _stored(node)


def _store_whole(upload: Upload, body: bytes, expected: str | None) -> Node:
    """A body of at most one chunk: write and commit in one go (``commit`` aborts by
    itself when it fails; the caller aborts on anything else)."""
    upload.write(body)
    return upload.commit(expected)


def _stored(node: Node) -> Response:
    md5 = node.properties.get(props.MD5) or ""
    return Response(status_code=201, headers={
        "Digest": f"md5={md5_b64(md5)}", "ETag": f'"{md5}"', "Content-Length": "0"})
