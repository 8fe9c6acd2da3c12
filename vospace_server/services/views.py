"""FITS views of a DataNode on GET (``SUB``, ``CIRCLE``, ``META``; see cutouts/params.py).

The view is made on a worker thread into an unlinked temp file (a cutout can be larger
than memory should hold twice), then streamed from it like stored bytes, with its own
``Digest``, so the CADC client's checksum check of the download holds.
"""
from __future__ import annotations

import os
import tempfile
import time

from starlette.requests import Request
from starlette.responses import Response

from ..cutouts.fits import render
from ..cutouts.params import View, parse_view
from ..protocol.http_headers import content_disposition, md5_b64
from ..protocol.nodes import Node
from ..storage.streams import FileReadHandle, md5_of_fd
from ..storage.tree import NodeTree
from .byte_rules import ReadReply
from .data_stream import HandleResponse
from .requests import run


def requested_view(request: Request) -> View | None:
    """The view a GET asks for (None: the plain bytes); InvalidArgument if malformed."""
    if request.method not in ("GET", "HEAD"):
        return None
    return parse_view(list(request.query_params.multi_items()))


def _made(tree: NodeTree, node: Node, view: View,
          version: int | None) -> tuple[FileReadHandle, str]:
    """The view in an open unlinked file, and its media type."""
    handle = tree.open_version(node.path, version) if version is not None \
        else tree.open_read(node.path)
    out = tempfile.TemporaryFile(prefix="vospace-view-")
    try:
        try:
            media = render(handle, node.name, view, out)
        finally:
            handle.close()
        out.flush()
        fd = os.dup(out.fileno())
    finally:
        out.close()
    return FileReadHandle(fd, os.fstat(fd).st_size, md5_of_fd(fd), time.time(),
                          immutable=True), media


def view_reply(tree: NodeTree, node: Node, view: View, version: int | None,
               method: str) -> tuple[ReadReply, FileReadHandle]:
    """(On a worker thread) ``view`` of DataNode ``node`` made, and the reply that serves
    it (the handle is closed already when the reply has no body)."""
    made, media = _made(tree, node, view, version)
    headers = {"Content-Type": media,
               "Content-Disposition": content_disposition(node.name),
               "Digest": f"md5={md5_b64(made.md5 or '')}",
               "Content-Length": str(made.size)}
    reply = ReadReply(200, headers, 0, made.size, body=method != "HEAD")
    if not reply.body:
        made.close()
    return reply, made


async def send_view(request: Request, tree: NodeTree, node: Node, view: View,
                    version: int | None = None) -> Response:
    """GET/HEAD of ``view`` of DataNode ``node``, whose read access has been checked."""
    reply, made = await run(view_reply, tree, node, view, version, request.method)
    if not reply.body:
        return Response(status_code=reply.status, headers=reply.headers)
    return HandleResponse(made, reply.start, reply.length, reply.status, reply.headers)
