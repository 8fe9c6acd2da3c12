"""The bytes of DataNodes: ``/{svc}/files/{path}`` and ``/{svc}/preauth/{token}/{path}``.

``/files`` authenticates the caller and asks the ACL policy (read for GET/HEAD, write on
the node, or on its parent for a new node, for PUT). On vault a GET answers 303 to a
pre-authorized URL, as CADC's vault does (the CADC client expects that redirect for any
service whose ID contains "vault"). ``/preauth`` checks only the signed token, which was
issued after the same ACL check. Both serve the same headers (see ``data_stream``).
"""
from __future__ import annotations

import functools
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..auth import policy
from ..auth.identity import Caller
from ..deployment import Service
from ..protocol import uris
from ..cutouts.params import View
from ..protocol.faults import ContainerNotFound, NodeNotFound
from ..protocol.nodes import Node
from ..storage import quota
from ..storage.rules import refuse_locked
from ..storage.streams import Upload
from ..storage.tree import Check, NodeTree
from .byte_rules import content_type
from .data_stream import receive_bytes, send_bytes
from .endpoints import ServiceEndpoints
from .links import ExternalTarget, resolver
from .views import requested_view, send_view
from .nodes import node_path
from .requests import base_url, caller_now, caller_of, data_base_url, deployment, run
from .versions import requested_version

METHODS = ["GET", "HEAD", "PUT"]


def put_check(caller: Caller, path: str, size: int | None = None) -> Check:
    """What a write of ``path``'s bytes needs, checked on the chain as the write reads it
    (down to the node, or to its parent when the node does not exist yet): write access, a
    node that is not locked, and with an announced ``size``, room under the quotas."""
    def check(chain: list[Node]) -> None:
        policy.require_write(caller, chain)
        existing = chain[-1].path == path
        if existing:
            refuse_locked(chain[-1])
        if size is not None:
            quota.require_room(chain[:-1] if existing else chain, size,
                               quota.usage_of(chain[-1]) if existing else 0)
    return check


def authorize_put(caller: Caller, tree: NodeTree, path: str, size: int | None = None) -> None:
    """``put_check`` ahead of the write (transfer negotiation): QuotaExceeded already now
    when an announced ``size`` cannot fit. (On a worker thread: both lookups cost one hop.)"""
    try:
        chain = tree.resolve(path)
    except NodeNotFound as exc:
        if exc.detail != path:
            raise ContainerNotFound(uris.parent_of(path)) from None
        try:
            chain = tree.resolve(uris.parent_of(path))
        except NodeNotFound:
            raise ContainerNotFound(uris.parent_of(path)) from None
    put_check(caller, path, size)(chain)


def preauth_url(request: Request, service: Service, path: str, direction: str,
                user: str, data_port: bool = True) -> str:
    """A pre-authorized URL, on the data port (when there is one) unless ``data_port`` is
    False: a web page's links stay on its own origin (a browser trusts a self-signed
    certificate per port)."""
    token = deployment(request).preauth.issue(service.name, path, direction, user)
    base = data_base_url(request) if data_port else base_url(request)
    return f"{base}/{service.name}/preauth/{token}/{quote(path)}"


def files_url(request: Request, service: Service, path: str) -> str:
    return f"{base_url(request)}/{service.name}/files/{quote(path)}"


class FileEndpoints(ServiceEndpoints):
    def routes(self) -> list[Route]:
        return [Route("/files/{path:path}", self.files, methods=METHODS),
                Route("/preauth/{token}/{path:path}", self.preauth, methods=METHODS)]

    async def files(self, request: Request) -> Response:
        path = node_path(request)
        tree = self.service.tree
        if request.method == "PUT":
            def authorized_upload() -> Upload:  # one worker hop: caller, node, permission
                caller = caller_now(request)
                return tree.begin_write(path, caller.name or "", content_type(request.headers),
                                        check=put_check(caller, path))

            return await receive_bytes(request, authorized_upload)
        caller = await caller_of(request)
        try:  # links in the path and at its end are followed for data
            chain = await run(resolver(request, self.service).readable, caller, path, True)
        except ExternalTarget as outside:
            if not outside.redirectable:
                raise
            return RedirectResponse(outside.target, status_code=303)
        path = chain[-1].path
        version = requested_version(request.query_params, tree)
        view = requested_view(request)  # checked now: a bad one is refused before the 303
        if request.method == "GET" and self.service.name == "vault":
            url = preauth_url(request, self.service, path, "get", caller.name or "")
            query = request.url.query  # the version and SODA view parameters go along
            return RedirectResponse(url + (f"?{query}" if query else ""), status_code=303)
        return await self._send(request, chain[-1], view, version)

    async def _send(self, request: Request, node: Node, view: View | None,
                    version: int | None) -> Response:
        """The node's bytes, or the FITS view the query asks for (services/views.py)."""
        if view is not None:
            return await send_view(request, self.service.tree, node, view, version)
        return await send_bytes(request, self.service.tree, node, version)

    async def preauth(self, request: Request) -> Response:
        path = node_path(request)
        direction = "put" if request.method == "PUT" else "get"
        grant = deployment(request).preauth.verify(
            request.path_params["token"], self.service.name, path, direction)
        tree = self.service.tree
        if direction == "put":
            return await receive_bytes(request, functools.partial(
                tree.begin_write, path, grant.user, content_type(request.headers)))
        node = (await run(tree.resolve, path))[-1]
        return await self._send(request, node, requested_view(request),
                                requested_version(request.query_params, tree))
