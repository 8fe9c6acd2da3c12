"""Connections from the session proxy to one session's app (its runner's ``app_endpoint``).

Every connection is made by ``connect_app``: locally the session's unix socket, checked to be
listened on by the session's user (``connect_unix``: the folder is the user's, the name could
be a symlink to any socket root reaches); in Kubernetes the session's Service. HTTP goes
through httpcore (httpx's transport) with a network backend that hands it exactly those
sockets, so no request is ever sent anywhere else; websockets through the ``websockets``
client given the same socket.
"""
from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httpcore

from .model import Session
from .runners.local import connect_unix

CONNECT_TIMEOUT = 10.0
READ_CHUNK = 1024 * 1024


def connect_app(endpoint: str, session: Session) -> socket.socket:
    """A blocking connect to ``endpoint`` (``unix:<path>`` or ``http://host:port``)."""
    if endpoint.startswith("unix:"):
        return connect_unix(endpoint[len("unix:"):], CONNECT_TIMEOUT, session.uid)
    parts = urlsplit(endpoint)
    return socket.create_connection((parts.hostname, parts.port or 80), CONNECT_TIMEOUT)


async def open_app_socket(endpoint: str, session: Session) -> socket.socket:
    sock = await asyncio.to_thread(connect_app, endpoint, session)
    sock.setblocking(False)
    return sock


class SocketStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connected socket (asyncio streams underneath)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to READ_CHUNK bytes even when httpcore asks for its 64 KiB: h11 takes any
        amount, and fewer, larger chunks are what makes a big download fast."""
        return await asyncio.wait_for(self.reader.read(max(max_bytes, READ_CHUNK)), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writer.write(buffer)
        await asyncio.wait_for(self.writer.drain(), timeout)

    async def aclose(self) -> None:
        self.writer.close()

    def get_extra_info(self, info: str) -> object:
        return self.writer.get_extra_info(info)


class AppBackend(httpcore.AsyncNetworkBackend):
    """Whatever host httpcore asks for, the connection goes to the session's app."""

    def __init__(self, endpoint: str, session: Session) -> None:
        self.endpoint, self.session = endpoint, session

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: object = None) -> httpcore.AsyncNetworkStream:
        sock = await open_app_socket(self.endpoint, self.session)
        reader, writer = await asyncio.open_connection(sock=sock, limit=READ_CHUNK)
        return SocketStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def app_pool(endpoint: str, session: Session) -> httpcore.AsyncConnectionPool:
    """A pool for one proxied request (connections to a local socket cost next to nothing)."""
    return httpcore.AsyncConnectionPool(network_backend=AppBackend(endpoint, session),
                                        max_connections=1)
