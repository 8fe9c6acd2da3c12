"""TLS over memory BIOs for the bulk connections: the same protocol with far fewer syscalls.

An ``ssl.SSLSocket`` lets OpenSSL read the socket itself, and OpenSSL (without read-ahead,
which Python cannot switch on) reads each 16 KiB record with two ``read`` calls, header
then body: 131,000 syscalls per GiB downloaded, and on the send side one ``write`` per
record. Here the plain socket is read and written in MiB pieces and OpenSSL works on
memory buffers (``ssl.SSLObject``, as asyncio does), so a GiB costs about a thousand
syscalls each way. Certificate and host name checks are the context's, as with
``wrap_socket``.

:class:`MemoryTLSSocket` offers what ``http.client`` uses of a socket: ``sendall``,
``makefile("rb")``, ``settimeout`` and ``close``.
"""
from __future__ import annotations

import io
import socket
import ssl

RECEIVE = 1 << 20   # bytes asked of the kernel per recv
SEND = 1 << 20      # plaintext encrypted per flush


class MemoryTLSSocket:
    def __init__(self, sock: socket.socket, context: ssl.SSLContext,
                 server_hostname: str | None) -> None:
        self.sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing,
                                     server_hostname=server_hostname)
        self._buffer = bytearray(RECEIVE)
        self._files = 0          # open makefile() readers
        self._closed = False
        self._handshake()

    # -- plumbing between the BIOs and the socket ----------------------------------------
    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _fill(self) -> bool:
        """Move what the socket has (waiting for at least a byte) into the incoming BIO;
        False at the end of the stream."""
        got = self.sock.recv_into(self._buffer)
        if not got:
            self._incoming.write_eof()
            return False
        self._incoming.write(memoryview(self._buffer)[:got])
        return True

    def _handshake(self) -> None:
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ConnectionResetError("the server closed the connection during "
                                               "the TLS handshake") from None

    # -- the socket interface http.client uses -------------------------------------------
    def sendall(self, data) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), SEND):
            self._tls.write(view[start:start + SEND])
            self._flush()

    def recv_into(self, buffer, nbytes: int = 0) -> int:
        """Decrypt into ``buffer`` every whole record already received (one record per
        SSL read), waiting on the socket only when there is none."""
        view = memoryview(buffer).cast("B")
        wanted = nbytes or len(view)
        done = 0
        while done < wanted:
            try:
                got = self._tls.read(wanted - done, view[done:wanted])
            except ssl.SSLWantReadError:
                if done or not self._fill():
                    return done
                continue
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                return done
            if not got:
                return done
            done += got
        return done

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reading is supported")
        self._files += 1
        return io.BufferedReader(_Reader(self), buffering or io.DEFAULT_BUFFER_SIZE)

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def setsockopt(self, *args) -> None:
        self.sock.setsockopt(*args)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        """As a socket's: the connection closes once no makefile() reader is open either
        (http.client closes its connection under a response that announced ``Connection:
        close``, whose body is still to be read: an upload refused early, 413 or 403)."""
        self._closed = True
        if self._files <= 0:
            self.sock.close()

    def _file_closed(self) -> None:
        self._files -= 1
        if self._closed and self._files <= 0:
            self.sock.close()


class _Reader(io.RawIOBase):
    """The raw stream under ``makefile``: closing it leaves the connection open (the
    connection is closed by ``http.client`` through the socket, as with SocketIO)."""

    def __init__(self, tls: MemoryTLSSocket) -> None:
        self._tls = tls

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._tls.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._tls._file_closed()  # noqa: SLF001 (the socket's own reader)
        super().close()
