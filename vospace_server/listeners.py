"""The listening sockets of ``vospace serve``: bound here by the process that serves them,
or by the supervisor of ``--workers`` (workers.py), one set per worker."""
from __future__ import annotations

import socket

MAIN_BACKLOG = 2048  # uvicorn's default
DATA_BACKLOG = 128   # the data port's


def listen(host: str, port: int, backlog: int, shared: bool = False) -> socket.socket:
    """A listening TCP socket on ``host``:``port``; ValueError (one line for the command)
    when the address is taken or not ours. ``shared``: one of several on the same port
    (``SO_REUSEPORT``), among which the kernel spreads new connections evenly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    return sock
