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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..protocol.nodes import Node
from ..storage.streams import CHUNK, ReadHandle, Upload
from ..storage.tree import NodeTree
from .byte_rules import PutRequest, plan_read, stored_headers
from .requests import run


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
    reply = plan_read(request.headers, request.method, node, handle)
    if reply.body:
        return HandleResponse(handle, reply.start, reply.length, reply.status, reply.headers)
    return Response(status_code=reply.status, headers=reply.headers)


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
    put = PutRequest.of(request.headers)
    upload = await run(begin)
    writer = PipelinedWriter(upload)
    try:
        if put.admit(request.headers, upload):
            await run(upload.abort)  # the handshake only: permission and room were checked
            return Response(status_code=200)
        if put.declared is not None and put.declared <= CHUNK:  # one chunk: one worker hop
            node = await run(_store_whole, upload, await request.body(), put)
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
        node = await run(put.commit, upload)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await run(writer.finish_then_abort)
        if isinstance(exc, ClientDisconnect):  # nobody to answer; old content kept
            return Response(status_code=400)
        raise
    return _stored(node)


def _store_whole(upload: Upload, body: bytes, put: PutRequest) -> Node:
    """A body of at most one chunk: write and commit in one go (``commit`` aborts by
    itself when it fails; the caller aborts on anything else)."""
    upload.write(body)
    return put.commit(upload)


def _stored(node: Node) -> Response:
    return Response(status_code=201, headers=stored_headers(node))
