"""HTTP/1.1 on one blocking socket (plain or TLS): requests in, responses out.

Just what the data port serves: request heads bounded in size and time, bodies by
``Content-Length`` or chunked, ``Expect: 100-continue``, keep-alive, and responses written
straight to the socket (``sendfile`` when the socket is plain). No framework and no event
loop: the thread that owns the connection blocks in ``recv`` and ``send``, which is what
lets a TLS socket run at OpenSSL's speed (asyncio's TLS transport measured 0.73-0.96x
nginx here; see README "The data port").
"""
from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
           303: "See Other", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 411: "Length Required",
           412: "Precondition Failed", 413: "Content Too Large", 416: "Range Not Satisfiable",
           417: "Expectation Failed", 423: "Locked", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
           507: "Insufficient Storage"}
RECV = 256 * 1024
SEND_BUFFER = 1024 * 1024  # TLS downloads: bytes read and encrypted per write
# TLS downloads of immutable files: bytes per mapping of the file. Measured here, 1 GiB
# against nginx (the data port preferring AES-128-GCM): 2 MiB 1.10x, 8 MiB 1.16-1.18x,
# 32 MiB 1.12x; read into SEND_BUFFER instead, 1.08x.
MAP_WINDOW = 8 * 1024 * 1024
# Plain downloads: bytes per sendfile call. Measured here on loopback, 1 GiB against nginx
# in the same run: 256 KiB per call 1.07-1.12x nginx, 512 KiB 0.93-0.97x, 1 MiB 0.83x,
# 2 MiB 0.86x, the whole rest of the file per call (as before) 0.81x; 128 KiB no better
# than 256. Not traced to its cause; likely the receiver copying each part out while the
# next is queued, rather than after a burst that fills the socket buffer.
SENDFILE_CHUNK = 256 * 1024
LINGER = 64 * 1024 * 1024


class BadRequest(Exception):
    """The request cannot be parsed: answered with ``status`` and the connection closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed the connection or stopped sending mid-body."""


@dataclass
class Request:
    method: str
    target: str                       # as sent: percent-encoded path and query
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def raw_path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query_items(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def query(self) -> dict[str, str]:
        return dict(self.query_items)

    def path(self) -> str:
        """The path percent-decoded once; BadRequest unless it is UTF-8."""
        try:
            return unquote_to_bytes(self.raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the path is not valid UTF-8") from None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


class Connection:
    """One client connection, owned by one thread."""

    def __init__(self, sock: socket.socket, max_header_bytes: int, header_timeout: float,
                 idle_timeout: float, body_timeout: float) -> None:
        self.sock = sock
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.max_header_bytes = max_header_bytes
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.body_timeout = body_timeout
        self._buffer = bytearray()
        self.body: BodyReader | None = None
        self.answered_continue = False
        self.status = 0        # of the current request's response, once its head is sent
        self.sent = 0          # response body bytes sent for the current request
        self.request_id = ""   # returned as X-Request-ID
        self._send_buffer: memoryview | None = None  # for TLS downloads, made on first use

    # ---- requests ----------------------------------------------------------------------
    def read_request(self) -> Request | None:
        """The next request's head; None when the client closes (or idles out) between
        requests."""
        head = self._read_head()
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
            raise BadRequest(f"malformed request line {lines[0][:100]!r}")
        request = Request(parts[0], parts[1], parts[2])
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(f"malformed header line {line[:100]!r}")
            name, value = name.lower(), value.strip()
            request.headers[name] = f"{request.headers[name]}, {value}" \
                if name in request.headers else value
        self.answered_continue, self.status, self.sent = False, 0, 0
        self.body = BodyReader(self, request.headers)
        # Its body and the response get body_timeout, set once here (a system call each).
        self.sock.settimeout(self.body_timeout)
        return request

    def _read_head(self) -> bytes | None:
        self.sock.settimeout(self.idle_timeout)
        deadline = None  # set once the request's first byte arrived: its head is due by then
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end > self.max_header_bytes:
                raise BadRequest("request head too large", 431)
            if end >= 0:
                head = bytes(self._buffer[:end])
                del self._buffer[:end + 4]
                return head
            if len(self._buffer) > self.max_header_bytes:
                raise BadRequest("request head too large", 431)
            try:
                data = self.sock.recv(RECV)
            except (socket.timeout, ConnectionError, ssl.SSLError, OSError):
                if self._buffer:
                    raise BadRequest("incomplete request head", 408) from None
                return None
            if not data:
                if self._buffer:
                    raise ClientGone("closed mid-head")
                return None
            self._buffer += data
            if deadline is None:
                deadline = time.monotonic() + self.header_timeout
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))

    def recv_into(self, view: memoryview) -> int:
        """Body bytes: first what arrived with the head, then from the socket."""
        if self._buffer:
            size = min(len(view), len(self._buffer))
            view[:size] = self._buffer[:size]
            del self._buffer[:size]
            return size
        try:
            return self.sock.recv_into(view, len(view))
        except (socket.timeout, ConnectionError, ssl.SSLError) as exc:
            raise ClientGone(str(exc)) from None

    def read_line(self, limit: int = 4096) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > limit:
                raise BadRequest("chunk header line too long")
            try:
                data = self.sock.recv(RECV)
            except (socket.timeout, ConnectionError, ssl.SSLError) as exc:
                raise ClientGone(str(exc)) from None
            if not data:
                raise ClientGone("closed mid-body")
            self._buffer += data
        end = self._buffer.index(b"\r\n")
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        return line

    def expect_continue(self, request: Request) -> None:
        """Tell a client that waits (``Expect: 100-continue``) to send its body now."""
        if request.headers.get("expect", "").lower() == "100-continue" \
                and not self.answered_continue:
            self.answered_continue = True
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    # ---- responses ---------------------------------------------------------------------
    @property
    def responded(self) -> bool:
        """Whether the current request's response head is sent."""
        return bool(self.status)

    def send_head(self, status: int, headers: dict[str, str], close: bool = False,
                  body: bytes = b"") -> None:
        """The response head, and with it a short ``body`` (one write: one TLS record and
        one packet for a small answer)."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self.request_id:
            lines.append(f"X-Request-ID: {self.request_id}")
        if close:
            lines.append("Connection: close")
        self.status = status
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.sent += len(body)

    def send_text(self, status: int, text: str, headers: dict[str, str] | None = None,
                  close: bool = False) -> None:
        """A whole short plain-text answer (faults, refusals), head and body in one write."""
        body = text.encode()
        self.send_head(status, {"Content-Type": "text/plain; charset=utf-8",
                                "Content-Length": str(len(body)), **(headers or {})},
                       close=close, body=body)

    def send_body(self, data) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def send_file(self, fd: int, offset: int, count: int, immutable: bool = False) -> None:
        """``count`` bytes of ``fd`` from ``offset``: ``sendfile`` on a plain socket (no
        copy through Python); with TLS, from a mapping of the file when it is
        ``immutable`` (OpenSSL encrypts straight from the page cache: the copy into a
        buffer is a fifth of the CPU per byte), else positional reads into the
        connection's buffer."""
        end = offset + count
        if not self.tls:
            while offset < end:
                try:
                    sent = os.sendfile(self.sock.fileno(), fd, offset,
                                      min(end - offset, SENDFILE_CHUNK))
                except BlockingIOError:  # a socket with a timeout is non-blocking inside
                    if not select.select([], [self.sock], [], self.body_timeout)[1]:
                        raise ClientGone("the client stopped reading") from None
                    continue
                if not sent:
                    raise ClientGone("the file ended early")  # shrank under us
                offset += sent
                self.sent += sent
            return
        if immutable:
            self._send_mapped(fd, offset, end)
            return
        if self._send_buffer is None:
            self._send_buffer = memoryview(bytearray(SEND_BUFFER))
        buffer = self._send_buffer
        while offset < end:
            got = os.preadv(fd, [buffer[:min(len(buffer), end - offset)]], offset)
            if not got:
                raise ClientGone("the file ended early")
            self.send_body(buffer[:got])
            offset += got

    def _send_mapped(self, fd: int, offset: int, end: int) -> None:
        """Bytes ``offset`` to ``end`` of ``fd`` (a file no one truncates: see
        ``FileReadHandle``), a window at a time; ``MAP_POPULATE`` maps a window's pages in
        one call instead of a page fault per 64 KiB."""
        while offset < end:
            start = offset - offset % mmap.ALLOCATIONGRANULARITY
            length = min(MAP_WINDOW, end - start)
            window = mmap.mmap(fd, length, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                               prot=mmap.PROT_READ, offset=start)
            try:
                self.send_body(memoryview(window)[offset - start:])
            finally:
                # Unmapped now, or (the send failed) once the exception that still holds
                # a view of it is dropped.
                with contextlib.suppress(BufferError):
                    window.close()
            offset = start + length

    def linger(self, request: Request) -> None:
        """Before closing with a request body unread: read (and drop) up to ``LINGER`` bytes
        of it, so a client still sending sees the answer rather than a reset connection.
        Not when the client waits for ``100 Continue``: it sends nothing until told."""
        if self.body is None or self.body.done or (
                request.headers.get("expect", "").lower() == "100-continue"
                and not self.answered_continue):
            return
        try:
            self.body.drain(LINGER)
        except (ClientGone, BadRequest, OSError):
            pass

    def close(self) -> None:
        try:
            if self.tls:
                self.sock.settimeout(1)
                self.sock.unwrap()
        except (OSError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class BodyReader:
    """The request body as ``fill(view) -> count`` (0 at its end): Content-Length or chunked."""

    def __init__(self, conn: Connection, headers: dict[str, str]) -> None:
        self.conn = conn
        encoding = headers.get("transfer-encoding", "").lower()
        if encoding and encoding != "chunked":
            raise BadRequest(f"unsupported Transfer-Encoding {encoding!r}", 501)
        self.chunked = encoding == "chunked"
        length = headers.get("content-length")
        if self.chunked:
            self.left = 0            # of the current chunk
        elif length is None:
            self.left = 0
        elif length.isdigit():
            self.left = int(length)
        else:
            raise BadRequest(f"bad Content-Length {length!r}")
        self.done = not self.chunked and self.left == 0
        self._first_chunk = True
        self.received = 0

    def fill(self, view: memoryview) -> int:
        if self.done:
            return 0
        if self.chunked and not self.left:
            self._next_chunk()
            if self.done:
                return 0
        got = self.conn.recv_into(view[:min(len(view), self.left)])
        if not got:
            raise ClientGone("closed mid-body")
        self.left -= got
        self.received += got
        if not self.chunked and not self.left:
            self.done = True
        return got

    def _next_chunk(self) -> None:
        if not self._first_chunk and self.conn.read_line() != b"":
            raise BadRequest("malformed chunked body")
        self._first_chunk = False
        size = self.conn.read_line().split(b";")[0].strip()
        try:
            self.left = int(size, 16)
        except ValueError:
            raise BadRequest("malformed chunk size") from None
        if self.left == 0:
            while self.conn.read_line() != b"":  # trailers
                pass
            self.done = True

    def drain(self, limit: int) -> bool:
        """Read and drop what is left of the body (at most ``limit`` bytes); whether the
        connection can carry another request."""
        scratch = memoryview(bytearray(RECV))
        while not self.done and limit > 0:
            got = self.fill(scratch)
            limit -= got
        return self.done
