"""The data port: a second listener of ``vospace serve`` only for the bulk bytes.

Transfer negotiation and vault's ``/files`` redirects hand out pre-authorized URLs on this
port (``data_port``; ``data_url`` when a proxy or another name fronts it), as CADC
separates its file service from its VOSpace service. It serves ``/{svc}/preauth/...``
with the same checks as the main port, on blocking sockets in threads (http1.py,
server.py, routes.py): TLS there runs at OpenSSL's speed, plain HTTP uses ``sendfile``,
and uploads are received, hashed and written at once. Stateless like the rest: every
replica runs one, and a proxy balances it like the main port (docker/nginx).
"""
from __future__ import annotations

import socket
import ssl

from ..config import Settings
from ..deployment import Deployment
from ..listeners import DATA_BACKLOG, listen
from ..tls_suites import prefer_aes128
from .routes import DataRoutes
from .server import DataServer


def start_data_server(settings: Settings, deployment: Deployment,
                      cert: tuple[str, str] | None,
                      listener: socket.socket | None = None) -> DataServer | None:
    """The data server on ``settings.data_port`` (TLS with ``cert``), or None when off;
    on ``listener`` when one is given (a worker's, bound by its supervisor)."""
    if not settings.data_port:
        return None
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*cert)
        prefer_aes128(context)
    listener = listener or listen(settings.host, settings.data_port, DATA_BACKLOG)
    return DataServer(DataRoutes(deployment), listener, context,
                      settings.header_timeout, settings.max_header_bytes).start()
