"""What the data port serves: ``/{svc}/preauth/{token}/{path}``, GET, HEAD and PUT.

The same checks and rules as the main port's ``/preauth`` route (services/files.py), from
the same code: the signed token (issued after the ACL policy's check at negotiation or
``/files``) verified by ``auth.preauth``; ``tree.begin_write`` for the write (quota room,
atomic publish with fsync, old content kept on any failure); ``byte_rules`` for MD5
headers, ranges, conditional GETs and declared lengths; versions and FITS views as there.
Only the moving of bytes differs: on this thread, with ``sendfile`` for plain HTTP, and
uploads received, hashed and written at once (storage/pipeline.py).
"""
from __future__ import annotations

import logging
import re
import socket
import ssl
import time

from ..cutouts.params import parse_view
from ..deployment import Deployment
from ..protocol import uris
from ..protocol.faults import InternalFault, NodeNotFound, VOSpaceFault, storage_fault
from ..services.audit import (REQUEST_ID_KEY, SAFE_METHODS, log_event, observe, request_id,
                              transfer_in_flight)
from ..services.byte_rules import PutRequest, ReadReply, content_type, plan_read, stored_headers
from ..services.versions import requested_version
from ..services.views import view_reply
from ..storage.pipeline import UploadPipeline, fill_fully
from ..storage.streams import CHUNK, FileReadHandle, ReadHandle
from .http1 import BadRequest, ClientGone, Connection, Request

log = logging.getLogger("vospace.dataport")
ROUTE = re.compile(r"^/([a-z]+)/preauth/([^/]+)/(.*)$", re.DOTALL)
SMALL = 256 * 1024  # bytes sent with the response head in one write


class DataRoutes:
    """The request handler of the data server (``server.Handler``)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def __call__(self, request: Request, conn: Connection) -> bool:
        """Answer ``request``, logged and counted as the main port's are (services/audit.py);
        whether the connection can carry another one."""
        started = time.monotonic()
        scope = {"method": request.method, "path": request.raw_path,
                 "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                             for k, v in request.headers.items()]}
        conn.request_id = scope[REQUEST_ID_KEY] = request_id(scope)
        service = request.raw_path.split("/")[1] if request.raw_path.count("/") > 1 else ""
        if service not in self.deployment.services:
            service = "other"
        metrics = self.deployment.metrics
        try:
            with transfer_in_flight(metrics, self.deployment.transfers, request.method,
                                    service, "preauth"):
                return self._answer(request, conn)
        finally:
            status = conn.status or 500
            if request.method not in SAFE_METHODS:
                log_event("write", scope, status=status)
            observe(metrics, scope, service, "preauth", status, conn.sent,
                    conn.body.received if conn.body else 0, time.monotonic() - started)

    def _answer(self, request: Request, conn: Connection) -> bool:
        try:
            self._route(request, conn)
        except Exception as exc:  # noqa: BLE001 - every failure is answered or closes
            if conn.responded:  # failed mid-body: only closing tells the client
                return False
            keep = _failed(request, conn, exc)
            if not keep:
                conn.linger(request)
            return keep
        return conn.body is None or conn.body.done

    def _route(self, request: Request, conn: Connection) -> None:
        match = ROUTE.match(request.path())
        service = self.deployment.services.get(match.group(1)) if match else None
        if service is None:
            raise NodeNotFound(f"{request.raw_path} (the data port serves only "
                               "/{service}/preauth/{token}/{path})")
        token, path = match.group(2), uris.normalize_path(match.group(3))
        if request.method not in ("GET", "HEAD", "PUT"):
            conn.send_text(405, "only GET, HEAD and PUT\n", {"Allow": "GET, HEAD, PUT"})
            return
        direction = "put" if request.method == "PUT" else "get"
        grant = self.deployment.preauth.verify(token, service.name, path, direction)
        if direction == "put":
            self._receive(request, conn, service.tree.begin_write(
                path, grant.user, content_type(request.headers)))
            return
        tree = service.tree
        node = tree.resolve(path)[-1]
        view = parse_view(request.query_items)
        version = requested_version(request.query, tree)
        if view is not None:
            reply, handle = view_reply(tree, node, view, version, request.method)
        else:
            handle = tree.open_version(path, version) if version is not None \
                else tree.open_read(node.path)
            reply = plan_read(request.headers, request.method, node, handle)
        _send(conn, reply, handle)

    def _receive(self, request: Request, conn: Connection, upload) -> None:
        """PUT: the body into ``upload``, committed (fsync, atomic publish) before the 201."""
        try:
            put = PutRequest.of(request.headers)
            if put.admit(request.headers, upload):
                upload.abort()  # the handshake only: the grant and the room were checked
                conn.send_text(200, "")
                return
            conn.expect_continue(request)
            if put.declared is not None and put.declared <= CHUNK:
                upload.write(_whole_body(conn, put.declared))
            else:
                UploadPipeline(upload).run(conn.body.fill)
            node = put.commit(upload)
        except BaseException:
            upload.abort()
            raise
        conn.send_head(201, stored_headers(node))


def _whole_body(conn: Connection, size: int) -> bytearray:
    body = bytearray(size)
    if fill_fully(conn.body.fill, body) < size:
        raise ClientGone("the body ended early")
    return body


def _send(conn: Connection, reply: ReadReply, handle: ReadHandle) -> None:
    if not reply.body:
        empty = {} if reply.status == 304 else {"Content-Length": "0"}  # HEAD has its own
        conn.send_head(reply.status, {**empty, **reply.headers})
        return
    try:
        if reply.length <= SMALL:  # head and bytes in one write
            conn.send_head(reply.status, reply.headers,
                           body=_read_all(handle, reply.start, reply.length))
            return
        conn.send_head(reply.status, reply.headers)
        if isinstance(handle, FileReadHandle):
            conn.send_file(handle.fd, reply.start, reply.length, handle.immutable)
            return
        offset, end = reply.start, reply.start + reply.length
        while offset < end:  # another store (S3): its own reads
            chunk = handle.read(offset, min(CHUNK, end - offset))
            if not chunk:
                raise ClientGone("the stored bytes ended early")
            conn.send_body(chunk)
            offset += len(chunk)
    finally:
        handle.close()


def _read_all(handle: ReadHandle, start: int, length: int) -> bytes:
    data = handle.read(start, length)
    if len(data) != length:
        raise ClientGone("the stored bytes ended early")
    return data


def _failed(request: Request, conn: Connection, exc: Exception) -> bool:
    """Answer ``exc`` (raised before any of the response was sent), as the main port
    would; whether the connection can go on."""
    if isinstance(exc, VOSpaceFault):
        return _answer_fault(conn, exc)
    if isinstance(exc, BadRequest):
        conn.send_text(exc.status, f"{exc}\n", close=True)
        return False
    if isinstance(exc, (ClientGone, ConnectionError, ssl.SSLError, socket.timeout)):
        return False
    fault = storage_fault(exc)
    if fault is not None:
        log.error("%s on %s %s: %s", fault.fault_name, request.method, request.raw_path, exc)
        return _answer_fault(conn, fault)
    log.error("internal error on %s %s", request.method, request.raw_path, exc_info=exc)
    return _answer_fault(conn, InternalFault("unexpected server error; see the server log"))


def _answer_fault(conn: Connection, fault: VOSpaceFault) -> bool:
    """The fault as the main port answers it (``FaultName: detail``); the connection goes on
    only when the request's body was read to its end."""
    reusable = (conn.body is None or conn.body.done) and "Connection" not in fault.headers
    headers = {k: v for k, v in fault.headers.items() if k != "Connection"}
    conn.send_text(fault.status, fault.body(), headers, close=not reusable)
    return reusable
