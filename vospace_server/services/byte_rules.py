"""The HTTP rules for a DataNode's bytes, free of any server framework.

Both servers of the bytes apply exactly these: the ASGI app on the main port
(``data_stream``) and the data port's threaded server (``vospace_server/dataport``). They
take the request headers as a mapping with lower-case keys (Starlette's ``Headers`` is
one) and answer with plain values, so neither server has rules of its own:
``Digest: md5=<base64>`` / ``Content-MD5`` both ways, ETag / If-None-Match / 304,
Last-Modified, Range -> 206 + Content-Range or 416, Content-Disposition, a declared length
that cannot fit under the quota refused before any byte is read, and the CADC client's
PUT-transaction handshake.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Mapping

from ..protocol import properties as props
from ..protocol.faults import InvalidArgument, QuotaExceeded
from ..protocol.http_headers import content_disposition, md5_b64
from ..protocol.nodes import Node
from ..storage.streams import ReadHandle, Upload

Headers = Mapping[str, str]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def client_md5(headers: Headers) -> str | None:
    """The MD5 (hex) the client declared in ``Digest: md5=<b64>`` or ``Content-MD5``."""
    for part in headers.get("digest", "").split(","):
        algo, _, value = part.strip().partition("=")
        if algo.lower() == "md5" and value:
            return _decode_md5(value.strip())
    value = headers.get("content-md5", "").strip()
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


def content_type(headers: Headers) -> str | None:
    """The media type an upload declares (kept as the node's ``type`` property)."""
    return headers.get("content-type") or None


@dataclass
class ReadReply:
    """The answer to a GET/HEAD: status and headers, and when ``body`` is set, the
    ``length`` bytes of the open handle from ``start`` to stream (else the handle is closed)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    start: int = 0
    length: int = 0
    body: bool = False


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


class RangeNotSatisfiable(Exception):
    pass


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
        raise RangeNotSatisfiable()
    return start, end


def plan_read(headers: Headers, method: str, node: Node, handle: ReadHandle) -> ReadReply:
    """What a GET/HEAD of ``node`` (its bytes open in ``handle``) answers; the handle is
    closed here unless the reply streams it."""
    try:
        reply = _plan(headers, method, node, handle)
    except BaseException:
        handle.close()
        raise
    if not reply.body:
        handle.close()
    return reply


def _plan(headers: Headers, method: str, node: Node, handle: ReadHandle) -> ReadReply:
    found = _headers(node, handle)
    if _etag_matches(headers.get("if-none-match", ""), found.get("ETag")):
        return ReadReply(304, {k: v for k, v in found.items()
                               if k in ("ETag", "Last-Modified", "Digest")})
    start, length, status = 0, handle.size, 200
    if headers.get("range"):
        try:
            wanted = _byte_range(headers["range"], handle.size)
        except RangeNotSatisfiable:
            return ReadReply(416, {"Content-Range": f"bytes */{handle.size}"})
        if wanted is not None:
            start, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
            found["Content-Range"] = f"bytes {start}-{wanted[1]}/{handle.size}"
    if handle.direct_url and status == 200 and method == "GET":
        # the store serves the bytes itself (presigned S3 URL)
        return ReadReply(303, {**found, "Location": handle.direct_url, "Content-Length": "0"})
    found["Content-Length"] = str(length)
    return ReadReply(status, found, start, length, body=method != "HEAD")


@dataclass
class PutRequest:
    """What a PUT declares, checked before its body is read."""

    declared: int | None     # Content-Length (None: chunked)
    expected_md5: str | None

    @classmethod
    def of(cls, headers: Headers) -> "PutRequest":
        value = headers.get("content-length")
        if value is not None and not value.isdigit():
            raise InvalidArgument(f"bad Content-Length {value!r}")
        if headers.get("x-put-txn-id"):
            raise InvalidArgument("PUT transactions are not supported by this service")
        return cls(int(value) if value is not None else None, client_md5(headers))

    def admit(self, headers: Headers, upload: Upload) -> bool:
        """Refuse (QuotaExceeded) an announced size that cannot fit, before any byte is
        read; True for the CADC client's PUT-transaction handshake (files >= 5 GiB: empty
        body, ``x-total-length``), which is answered 200 without a transaction id, telling
        it to send the whole file in one PUT.

        The refusal closes the connection: a client that waited for ``100 Continue`` never
        sends the body, so nothing that follows on this connection could be parsed as a
        request."""
        total = headers.get("x-total-length", "")
        sizes = [self.declared] + ([int(total)] if total.isdigit() else [])
        known = max((s for s in sizes if s is not None), default=None)
        if upload.limit is not None and known is not None and known > upload.limit:
            refusal = QuotaExceeded(f"{known} bytes do not fit: {upload.limit} left under the quota")
            refusal.headers = {"Connection": "close"}
            raise refusal
        return headers.get("x-put-txn-op", "").lower() == "start" and bool(total) \
            and self.declared == 0

    def commit(self, upload: Upload) -> Node:
        """Publish what arrived: all the declared bytes, with the MD5 the client sent."""
        if self.declared is not None and upload.length != self.declared:
            raise InvalidArgument(f"received {upload.length} bytes of {self.declared}")
        return upload.commit(self.expected_md5)


def stored_headers(node: Node) -> dict[str, str]:
    """The headers of the 201 that acknowledges a stored upload."""
    md5 = node.properties.get(props.MD5) or ""
    return {"Digest": f"md5={md5_b64(md5)}", "ETag": f'"{md5}"', "Content-Length": "0"}
