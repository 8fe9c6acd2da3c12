"""uvicorn's server for the main port, shutting the data port down alongside."""
from __future__ import annotations

import asyncio
import socket
import threading
from types import FrameType

import uvicorn

from .server import DataServer


class MainServer(uvicorn.Server):
    """On SIGTERM/SIGINT the data port stops accepting at the same moment as the main port,
    and its transfers in progress get the same shutdown timeout, at the same time
    (``DataServer.stop``). Both are done before uvicorn re-raises the signal to end the
    process, as it does after a graceful shutdown."""

    def __init__(self, config: uvicorn.Config, data_server: DataServer | None,
                 timeout: float) -> None:
        super().__init__(config)
        self.data_server, self.timeout = data_server, timeout
        self._stopping: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.data_server is not None and self._stopping is None:
            self._stopping = threading.Thread(target=self.data_server.stop,
                                              args=(self.timeout,), daemon=True)
            self._stopping.start()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self._stopping is not None:
            await asyncio.to_thread(self._stopping.join)
