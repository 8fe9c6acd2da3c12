"""The one place faults become HTTP responses: ``FaultName: detail`` in text/plain."""
from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..protocol.faults import InternalFault, VOSpaceFault

log = logging.getLogger("vospace")


def fault_response(fault: VOSpaceFault) -> Response:
    headers = dict(fault.headers)
    if fault.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="vospace"')
    return PlainTextResponse(fault.body(), status_code=fault.status, headers=headers)


async def handle_fault(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VOSpaceFault)
    if exc.status in (401, 403):
        log.info("denied %s %s: %s", request.method, request.url.path, exc.detail)
    return fault_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code,
                             headers=getattr(exc, "headers", None))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return fault_response(InternalFault("unexpected server error; see the server log"))
