"""``/vault/versions/{path}``: the kept previous contents of a vault DataNode.

- ``GET``: JSON list ``{"node": uri, "versions": [{"version", "length", "MD5", "date",
  "replaced", "type"}]}``, oldest first (read access).
- ``GET /vault/files/{path}?version=N``: the bytes of version N (see files.py).
- ``POST ?restore=N``: version N becomes the current content (the current content becomes
  a new version); answers the node XML (write access; quotas apply).
- ``DELETE ?version=N``: forget version N (write access).
"""
from __future__ import annotations

from typing import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import policy
from ..protocol import properties as props
from ..protocol.faults import InvalidArgument
from ..protocol.nodes import Detail
from ..protocol.xml_io import render_node
from ..storage.rules import refuse_locked
from ..storage.tree import KeepsVersions, NodeTree
from .endpoints import ServiceEndpoints
from .nodes import node_path
from .requests import caller_of, run, xml_response


def requested_version(query: Mapping[str, str], tree: NodeTree) -> int | None:
    """The ``version`` asked for in the query (None when absent), from a tree that keeps
    versions (InvalidArgument otherwise)."""
    number = version_number(query)
    if number is not None and not isinstance(tree, KeepsVersions):
        raise InvalidArgument("this service keeps no versions (arc has snapshots: .snapshots/)")
    return number


def version_number(query: Mapping[str, str], name: str = "version") -> int | None:
    """The positive integer query parameter ``name`` (None when absent)."""
    value = query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1 or len(value) > 12:
        raise InvalidArgument(f"{name} must be a version number (1, 2, ...), not {value!r}")
    return int(value)


class VersionEndpoints(ServiceEndpoints):
    def routes(self) -> list[Route]:
        return [Route("/versions/{path:path}", self.dispatch, methods=["GET", "POST", "DELETE"])]

    async def dispatch(self, request: Request) -> Response:
        path = node_path(request)
        caller = await caller_of(request)
        tree = self.service.tree
        chain = await run(tree.resolve, path)
        if request.method == "GET":
            policy.require_read(caller, chain)
            found = await run(tree.list_versions, path)
            return JSONResponse({"node": f"{self.service.base_uri}/{path}", "versions": [
                {"version": v.number, "length": v.length, "MD5": v.md5,
                 "date": props.format_date(v.modified), "replaced": props.format_date(v.replaced),
                 "type": v.content_type} for v in found]})
        policy.require_write(caller, chain)
        refuse_locked(chain[-1])
        if request.method == "DELETE":
            number = version_number(request.query_params)
            if number is None:
                raise InvalidArgument("give ?version=N to delete")
            await run(tree.delete_version, path, number)
            return Response(status_code=200)
        number = version_number(request.query_params, "restore")
        if number is None:
            raise InvalidArgument("give ?restore=N to restore version N")
        node = await run(tree.restore_version, path, number, chain[-1].owner or caller.name)
        return xml_response(render_node(node, self.service.base_uri, Detail.MAX), 200)
