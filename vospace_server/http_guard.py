"""uvicorn's httptools protocol with two limits it lacks: header size and header time.

httptools (llhttp) accepts headers of any size and uvicorn waits forever for a request's
headers once its first byte arrived, so a slowloris client could hold connections and
memory indefinitely. Here a connection must deliver each request head (request line and
headers) within ``header_timeout`` seconds and in at most ``max_header_bytes`` bytes; it is
answered 408 or 431 and closed otherwise. Bodies are not limited here (uploads may be
large and slow); the endpoints bound the bodies they parse.
"""
from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _reply(status: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 0\r\nconnection: close\r\n\r\n")


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized request head."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: float = 15.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0        # bytes received since the head began (slow heads)
        self._head_size = 0         # request line + headers as parsed (fast heads)
        self._head_too_large = False
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def configured(cls, header_timeout: float, max_header_bytes: int) -> type:
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout,
                                           "max_header_bytes": max_header_bytes})

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_reply(status))
            self.transport.close()

    def _too_slow(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(b"408 Request Timeout")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        self._in_head, self._head_size = True, 0
        self._arm()
        super().on_message_begin()

    # A head that arrives in one large read is measured here, as the parser reports it;
    # raising stops the parser, and uvicorn's parser-error path lands in send_400_response.
    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_header_bytes:
            self._head_too_large = True
            raise HeadTooLarge()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(b"431 Request Header Fields Too Large")
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._disarm()
        super().on_headers_complete()
