"""Bulk byte streams (GET and PUT bodies of /files) over the standard library's http.client.

Measured on one TLS stream to our server: http.client reads ~265 MB/s (as curl does) where
httpx's h11 path reads ~80 MB/s, so the FUSE filesystem (and anything streaming gigabytes)
moves file bodies through here; node calls stay on :mod:`vosclient.http`. Connections are
kept alive in a small pool; a vault GET's 303 to a pre-authorized URL is followed without
the credential (the URL is the credential), on a kept-alive pool of that URL's origin (the
server's data port: a fresh TLS connection per file halved small-file downloads).
"""
from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import threading
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

from . import errors
from .tls_socket import MemoryTLSSocket
from .transfer import digest_md5

CHUNK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)


def _chunked(chunks: Iterable) -> Iterator:
    """Chunked transfer encoding with each chunk's size line and end sent on their own,
    rather than http.client's ``encode_chunked``, which copies every chunk into a new
    bytes object to frame it (a MiB copy per MiB sent)."""
    for chunk in chunks:
        if len(chunk):
            yield b"%X\r\n" % len(chunk)
            yield chunk
            yield b"\r\n"
    yield b"0\r\n\r\n"


class MemoryTLSConnection(http.client.HTTPSConnection):
    """HTTPS whose TLS runs over memory buffers (see tls_socket: ~100x fewer syscalls)."""

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the plain TCP socket, TCP_NODELAY set
        self.sock = MemoryTLSSocket(self.sock, self._context, server_hostname=self.host)


class Stream:
    """An open response body; ``read(n)`` returns up to n bytes (b"" at the end)."""

    def __init__(self, pool: "Bulk", conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self.pool = pool
        self.conn = conn
        self.response = response
        self.status = response.status
        self.headers = response.headers

    def read(self, size: int = -1) -> bytes:
        try:
            return self.response.read(None if size < 0 else size)
        except (OSError, http.client.HTTPException) as exc:
            self.close(reuse=False)
            raise errors.Unreachable(f"connection lost while reading: {exc}") from None

    def readinto(self, buffer) -> int:
        try:
            return self.response.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            self.close(reuse=False)
            raise errors.Unreachable(f"connection lost while reading: {exc}") from None

    def close(self, reuse: bool = True) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if reuse and self.response.isclosed():
            self.pool.release(conn)
        else:
            conn.close()


class Bulk:
    """A pool of keep-alive connections to one server for file bodies."""

    def __init__(self, base_url: str, auth_headers, verify: bool = True,
                 timeout: float = 120.0, max_idle: int = 8) -> None:
        parts = urlsplit(base_url)
        self.scheme, self.host = parts.scheme, parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.auth_headers = auth_headers
        self.timeout = timeout
        self.max_idle = max_idle
        self.verify = verify
        self.context = ssl.create_default_context() if verify else \
            ssl._create_unverified_context()  # noqa: SLF001 (tests: self-signed)
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.base_url = base_url.rstrip("/")
        self.others: dict[str, Bulk] = {}  # pools of the origins redirects lead to

    @property
    def tls_checks_bytes(self) -> bool:
        """Whether the connection itself rejects a byte changed on the way (HTTPS: TLS's
        authenticated encryption), so an upload need not be hashed to be checked."""
        return self.scheme == "https"

    def elsewhere(self, origin: str) -> "Bulk":
        """The pool of another origin (no credential is sent there), made on first use."""
        with self.lock:
            if origin not in self.others:
                self.others[origin] = Bulk(origin, dict, self.verify, self.timeout,
                                           self.max_idle)
            return self.others[origin]

    def at(self, url: str) -> tuple["Bulk", str]:
        """The pool that serves ``url`` (a path on this server, or a full URL: another
        origin's pool, which is sent no credential) and the request target to send it."""
        parts = urlsplit(urljoin(self.base_url + "/", url))
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if (parts.scheme, parts.hostname, port) == (self.scheme, self.host, self.port):
            return self, target
        return self.elsewhere(f"{parts.scheme}://{parts.netloc}"), target

    def _connect(self) -> http.client.HTTPConnection:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        if self.scheme == "https":
            return MemoryTLSConnection(self.host, self.port, timeout=self.timeout,
                                       context=self.context, blocksize=CHUNK)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                          blocksize=CHUNK)

    def release(self, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
            others, self.others = list(self.others.values()), {}
        for conn in idle:
            conn.close()
        for other in others:
            other.close()

    def _send(self, method: str, target: str, headers: dict[str, str], body=None,
              what: str = "") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """One request; a kept-alive connection the server closed meanwhile is retried once
        on a fresh one (only when the body can be sent again)."""
        for attempt in range(2):
            conn = self._connect()
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn, conn.getresponse()
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The server may refuse an upload before reading it all (413 over quota):
                # its answer is still there to read.
                try:
                    return conn, conn.getresponse()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    if attempt or body is not None:
                        raise errors.Unreachable(f"{what}: connection to {self.base_url} "
                                                 f"failed: {exc}") from None
            except (ConnectionRefusedError, socket.gaierror) as exc:
                conn.close()
                raise errors.Unreachable(f"{what}: cannot reach {self.base_url}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if attempt or (body is not None and not isinstance(body, bytes)):
                    raise errors.Unreachable(f"{what}: connection to {self.base_url} "
                                             f"failed: {exc}") from None
            except BaseException:
                conn.close()     # the body's producer gave up: the server sees the abort
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _fail(conn, response, what: str) -> errors.VOSError:
        body = response.read().decode("utf-8", "replace")
        conn.close()
        return errors.from_response(response.status, body, what)

    def get(self, url: str, start: int = 0, end: int | None = None, what: str = "",
            extra: dict[str, str] | None = None) -> Stream:
        """Bytes ``[start, end)`` (to the end when ``end`` is None) of ``url`` (a path on
        this server or a full URL), following redirects; ``extra`` headers (``If-Range``)
        go with every hop."""
        pool, url = self.at(url)
        if pool is not self:   # a negotiated URL: the data port's pool, no credential
            return pool.get(url, start, end, what, extra)
        headers = {**self.auth_headers(), **(extra or {})}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        target = url
        for _ in range(5):
            conn, response = self._send("GET", target, headers, what=what)
            if response.status in REDIRECTS:
                location = response.getheader("location") or ""
                response.read()
                self.release(conn)
                pool, target = self.at(location)
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
                if pool is not self:  # the data port or another host (a presigned S3 URL)
                    return pool.get(target, start, end, what, extra)
                continue
            if response.status >= 400:
                raise self._fail(conn, response, what)
            return Stream(self, conn, response)
        raise errors.ServerError(f"{what}: too many redirects")

    def put(self, url: str, fh: BinaryIO, size: int, content_type: str,
            what: str = "") -> str:
        """Send ``size`` bytes of ``fh`` as the new content; returns their MD5 (hex), checked
        against the digest the server echoes."""
        def body():
            left = size
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

        return self.put_chunks(url, body(), content_type, size, what)

    def put_chunks(self, url: str, chunks: Iterable[bytes], content_type: str,
                   size: int | None = None, what: str = "", hashed=None,
                   extra: dict[str, str] | None = None, tls_suffices: bool = False
                   ) -> str | None:
        """Send ``chunks`` as the new content (chunked transfer encoding when ``size`` is
        not known in advance); returns their MD5, checked against the server's digest.
        ``hashed`` is an MD5 the producer of ``chunks`` already feeds (on its own thread,
        so hashing overlaps sending); ``extra`` headers go with the request (``Digest``).

        With ``tls_suffices`` over HTTPS the chunks are not hashed here and the MD5 the
        server answers is returned (None if it sends none): TLS's authenticated encryption
        already rejects any byte changed on the way, the check the client's MD5 makes,
        which costs about 1.4 s of CPU per GiB here (a fifth of arcfs's write path).
        Plain HTTP is always hashed: TCP's checksum is too weak to rely on."""
        skip = tls_suffices and hashed is None and self.tls_checks_bytes
        md5 = hashed if hashed is not None else hashlib.md5()

        def body():
            for chunk in chunks:
                md5.update(chunk)
                yield chunk

        headers = {**self.auth_headers(), **(extra or {}), "Content-Type": content_type}
        if size is not None:
            headers["Content-Length"] = str(size)
        else:
            headers["Transfer-Encoding"] = "chunked"
        sent = chunks if hashed is not None or skip else body()
        conn, response = self._send("PUT", url, headers,
                                    body=sent if size is not None else _chunked(sent),
                                    what=what)
        if response.status >= 400:
            raise self._fail(conn, response, what)
        response.read()
        self.release(conn)
        echoed = digest_md5(response.headers)
        if skip:
            return echoed
        digest = md5.hexdigest()
        if echoed is not None and echoed != digest:
            raise errors.ChecksumMismatch(f"{what}: the server stored MD5 {echoed}, sent {digest}")
        return digest
