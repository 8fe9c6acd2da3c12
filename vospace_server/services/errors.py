"""The one place faults become HTTP responses: ``FaultName: detail`` in text/plain."""
from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..protocol.faults import InternalFault, VOSpaceFault, storage_fault
from .audit import log_event
from .requests import base_url

log = logging.getLogger("vospace")


def fault_response(fault: VOSpaceFault, login_url: str | None = None) -> Response:
    """The fault as text/plain; a 401 challenges the client and says where to log in."""
    response = PlainTextResponse(fault.body(), status_code=fault.status,
                                 headers=dict(fault.headers))
    if fault.status == 401:
        for challenge in auth_challenges(login_url):
            response.headers.append("WWW-Authenticate", challenge)
    return response


def auth_challenges(login_url: str | None) -> list[str]:
    """RFC 6750 Bearer plus the IVOA SSO ``ivoa_bearer`` form CADC's services send."""
    if not login_url:
        return ['Bearer realm="vospace"']
    return [f'Bearer realm="vospace", login_url="{login_url}"',
            f'ivoa_bearer standard_id="ivo://ivoa.net/sso#tls-with-password", '
            f'access_url="{login_url}"']


async def handle_fault(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, VOSpaceFault)
    if exc.status in (401, 403):
        log_event("denied", request.scope, status=exc.status, reason=exc.detail)
    return fault_response(exc, f"{base_url(request)}/ac/login")


async def handle_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code,
                             headers=getattr(exc, "headers", None))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    fault = storage_fault(exc)
    if fault is not None:
        log.error("%s on %s %s: %s", fault.fault_name, request.method, request.url.path, exc)
        return fault_response(fault)
    log.exception("internal error on %s %s", request.method, request.url.path)
    return fault_response(InternalFault("unexpected server error; see the server log"))
