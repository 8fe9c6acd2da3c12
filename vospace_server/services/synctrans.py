"""``/{svc}/synctrans``: synchronous transfer negotiation (pushToVoSpace, pullFromVoSpace).

Two forms. A POSTed transfer document (what the CADC client sends) is answered with 303
to ``/{svc}/transfers/{id}/results/transferDetails``, where the negotiated document waits
in the shared job table as a job of kind ``sync`` born COMPLETED (the ``/transfers``
endpoints serve its phase, error and details). The query form ``?TARGET=&DIRECTION=
&PROTOCOL=`` answers the negotiated document directly, or with ``REQUEST=redirect`` on a
pull, 303 to the data. A package transfer (several targets, CADC's package view; see
protocol/package.py) is answered with 303 to ``/{svc}/pkg/{id}``. Endpoints: for each protocol the client offered, a pre-authorized
URL first (works with no credential), then the ``/files`` URL for the authenticated
security method when the client named one.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..auth.identity import Caller
from ..protocol import properties as props
from ..protocol import uris
from ..protocol.faults import InvalidArgument, ProtocolNotSupported
from ..protocol.package import parse_package
from ..protocol.transfer import (HTTP_GET, HTTP_PUT, HTTPS_GET, HTTPS_PUT, PULL_FROM, PUSH_TO,
                                 Protocol, Transfer, parse_transfer, render_transfer)
from ..storage.jobs import COMPLETED, Kind
from .endpoints import ServiceEndpoints
from .files import authorize_put, files_url, preauth_url
from .links import resolver
from .packages import start_package, target_path
from .requests import base_url, caller_of, deployment, read_body, run, xml_response

SUPPORTED = {PULL_FROM: (HTTPS_GET, HTTP_GET), PUSH_TO: (HTTPS_PUT, HTTP_PUT)}


def announced_length(transfer: Transfer) -> int | None:
    """The size a push announces (``<param uri="...#length">``), checked against quotas."""
    value = transfer.params.get(props.LENGTH, "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _query_transfer(request: Request) -> Transfer | None:
    """The transfer named by TARGET/DIRECTION/PROTOCOL query parameters (any case)."""
    params = {k.upper(): request.query_params.getlist(k) for k in request.query_params}
    if "TARGET" not in params:
        return None
    direction = (params.get("DIRECTION") or [""])[0]
    method = (params.get("SECURITYMETHOD") or [None])[0]
    protocols = [Protocol(uri=p, security_method=method) for p in params.get("PROTOCOL", [])]
    return Transfer(target=params["TARGET"][0], direction=direction, protocols=protocols)


class SyncTransfers(ServiceEndpoints):
    def routes(self) -> list[Route]:
        return [Route("/synctrans", self.negotiate, methods=["GET", "POST"])]

    async def _authorize(self, request: Request, caller: Caller, direction: str, path: str,
                         size: int | None = None) -> str:
        """The ACL check; returns the path whose bytes move (a pull follows links)."""
        if direction == PUSH_TO:
            await run(authorize_put, caller, self.service.tree, path, size)
            return path
        chain = await run(resolver(request, self.service).readable, caller, path, True)
        if chain[-1].is_container:
            raise InvalidArgument(f"/{path} is not a DataNode; only DataNodes can be pulled")
        return chain[-1].path

    def _endpoints(self, request: Request, transfer: Transfer, path: str,
                   caller: Caller) -> list[Protocol]:
        usable = [p for p in transfer.protocols if p.uri in SUPPORTED[transfer.direction]]
        if not usable:
            raise ProtocolNotSupported("requested transfer protocols are not supported; use "
                                       + " or ".join(SUPPORTED[transfer.direction]))
        direction = "put" if transfer.direction == PUSH_TO else "get"
        url = preauth_url(request, self.service, path, direction, caller.name or "")
        offered = [Protocol(uri=usable[0].uri, endpoint=url)]
        for proto in usable:
            if proto.security_method:
                offered.append(Protocol(uri=proto.uri, security_method=proto.security_method,
                                        endpoint=files_url(request, self.service, path)))
        return offered

    async def negotiated(self, request: Request, transfer: Transfer, caller: Caller) -> Transfer:
        """The ACL check and the endpoints for a push/pull; also what an async
        push/pull job on /transfers (services/uws.py) answers as its transferDetails."""
        if transfer.direction not in SUPPORTED:
            raise InvalidArgument(f"synctrans handles {PUSH_TO} and {PULL_FROM}; "
                                  f"use /transfers for {transfer.direction!r}")
        path = target_path(request, self.service, transfer.target)
        path = await self._authorize(request, caller, transfer.direction, path,
                                     announced_length(transfer))
        return Transfer(target=transfer.target, direction=transfer.direction,
                        view=transfer.view,
                        protocols=self._endpoints(request, transfer, path, caller))

    async def negotiate(self, request: Request) -> Response:
        transfer = _query_transfer(request)
        body = b""
        if transfer is None:
            if request.method != "POST":
                raise InvalidArgument("POST a transfer document, or give TARGET, DIRECTION "
                                      "and PROTOCOL parameters")
            body = await read_body(request, deployment(request).settings.max_xml_bytes)
            package = parse_package(body)
            if package is not None:
                return await start_package(request, self.service, package,
                                           await caller_of(request))
            transfer = parse_transfer(body)
        caller = await caller_of(request)
        result = await self.negotiated(request, transfer, caller)
        details = render_transfer(result)
        if not body:  # query form: answer directly
            redirect = request.query_params.get("REQUEST", "").lower() == "redirect"
            if redirect and transfer.direction == PULL_FROM:
                return RedirectResponse(result.protocols[0].endpoint or "", status_code=303)
            return xml_response(details)
        job = await run(deployment(request).jobs.create, Kind.SYNC, self.service.name,
                        caller.name, {}, body.decode("utf-8", "replace"), None, COMPLETED,
                        None, details.decode())
        return RedirectResponse(
            f"{base_url(request)}/{self.service.name}/transfers/{job.id}/results/transferDetails",
            status_code=303)
