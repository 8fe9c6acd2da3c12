"""The data port's listener: one thread per connection, blocking sockets, TLS in the thread.

``stop_accepting`` closes the listening socket at once (SIGTERM: new connections go to
the other replicas, or with ``--workers`` to the other workers); ``stop`` then lets
requests in progress finish for up to the shutdown timeout, closes idle keep-alive
connections, and finally cuts what is left (an upload cut that way is aborted and leaves
nothing, as any interrupted upload).
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Callable

from .http1 import BadRequest, ClientGone, Connection, Request

log = logging.getLogger("vospace.dataport")
Handler = Callable[[Request, Connection], bool]  # answers; whether the connection may go on
MAX_CONNECTIONS = 512
ACCEPT_WAKEUP = 0.5  # seconds: how soon the accepting thread sees a stop


class DataServer:
    def __init__(self, handler: Handler, listener: socket.socket, tls: ssl.SSLContext | None,
                 header_timeout: float, max_header_bytes: int, idle_timeout: float = 30,
                 body_timeout: float = 300) -> None:
        self.handler, self.tls, self.listener = handler, tls, listener
        self.limits = (max_header_bytes, header_timeout, idle_timeout, body_timeout)
        self._lock = threading.Lock()
        self._busy: set[Connection] = set()
        self._idle: set[Connection] = set()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept, name="dataport-accept",
                                          daemon=True)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start(self) -> "DataServer":
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        # A timeout, not shutdown(), ends the wait at stop: with --workers the supervisor
        # keeps the listening socket for the worker it starts in this one's place, and a
        # socket shut down stops listening for every process holding it.
        self.listener.settimeout(ACCEPT_WAKEUP)
        while not self._stopping:
            self._slots.acquire()
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                self._slots.release()
                continue
            except OSError:
                self._slots.release()
                return  # the listener was closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(sock,), name="dataport-conn",
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = None
        try:
            if self.tls is not None:
                sock.settimeout(self.limits[1])
                sock = self.tls.wrap_socket(sock, server_side=True)
            conn = Connection(sock, *self.limits)
            self._requests(conn)
        except (OSError, ssl.SSLError, ClientGone):
            pass  # a client that went away, or failed its TLS handshake
        except Exception:  # noqa: BLE001 - one connection's bug must not end the server
            log.exception("data port connection failed")
        finally:
            with self._lock:
                self._busy.discard(conn)
                self._idle.discard(conn)
            (conn or sock).close()
            self._slots.release()

    def _requests(self, conn: Connection) -> None:
        while not self._stopping:
            with self._lock:
                self._idle.add(conn)
            try:
                request = conn.read_request()
            except BadRequest as bad:
                conn.send_text(bad.status, f"{bad}\n", close=True)
                return
            finally:
                with self._lock:
                    self._idle.discard(conn)
                    self._busy.add(conn)
            if request is None or not self.handler(request, conn) or not request.keep_alive:
                return
            with self._lock:
                self._busy.discard(conn)

    def stop_accepting(self) -> None:
        self._stopping = True
        self.listener.close()

    def stop(self, timeout: float) -> None:
        """Stop accepting, wait up to ``timeout`` s for requests in progress, cut the rest."""
        self.stop_accepting()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                idle, busy = list(self._idle), len(self._busy)
            for conn in idle:  # waiting for a next request that will not be served
                _cut(conn)
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        with self._lock:
            left = list(self._busy)
        for conn in left:
            _cut(conn)


def _cut(conn: Connection) -> None:
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
