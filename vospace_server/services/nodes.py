"""``/<service>/nodes/{path}``: getNode, createNode, setNode, deleteNode."""
from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import policy
from ..auth.groups import normalize_group_properties
from ..auth.identity import Caller
from ..protocol import properties as props
from ..protocol import uris
from ..protocol.faults import DuplicateNode, InvalidArgument, InvalidURI, PermissionDenied
from ..protocol.listing import Ordering, parse_ordering, window
from ..protocol.nodes import Detail, Node, NodeType
from ..protocol.xml_io import parse_node, render_node
from ..storage.rules import refuse_locked, refuse_protected
from ..storage.tree import KeepsCopies
from .endpoints import ServiceEndpoints
from .links import LinkResolver, resolver, shown_at
from .requests import caller_now, caller_of, deployment, read_body, run, xml_response

# Larger limits mean "everything"; clamped so that no database sees an out-of-range integer.
MAX_LIMIT = 2**31 - 1


class PathConvertor(Convertor):
    """Starlette's ``path`` convertor, but also matching newlines, so that a path holding
    control characters reaches ``normalize_path`` (InvalidURI) instead of a bare 404.

    It replaces the built-in ``path`` type for the whole app (Mounts use it too); it is
    registered on import, before ``create_app`` compiles any route.
    """

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("path", PathConvertor())

def node_path(request: Request) -> str:
    """The node path from the URL, percent-decoded once (by the server). Doubly-encoded
    forms such as ``%252e%252e`` arrive as ``%2e%2e`` and are refused by ``check_name``.
    The server's decoding replaces invalid UTF-8 silently, so the raw bytes are checked."""
    try:
        unquote_to_bytes(request.scope.get("raw_path", b"").decode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidURI("the node path is not valid UTF-8") from None
    return uris.normalize_path(request.path_params.get("path", ""))


def parse_detail(request: Request) -> Detail:
    value = request.query_params.get("detail", "max")
    try:
        return Detail(value)
    except ValueError:
        raise InvalidArgument(f"detail must be min, max or properties, not {value!r}") from None


def parse_limit(request: Request) -> int | None:
    value = request.query_params.get("limit")
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidArgument(f"limit must be a non-negative integer, not {value!r}")
    return min(int(value), MAX_LIMIT)


def check_link_target(target: str) -> None:
    """A link target must be an absolute URI (vos://, https://, ...) of sane length."""
    if "://" not in target or len(target) > uris.MAX_PATH_BYTES or any(c.isspace() for c in target):
        raise InvalidArgument(f"link target must be an absolute URI, not {target!r}")


def read_listing(links: LinkResolver, caller: Caller, path: str, ordering: Ordering,
                 start: str | None, limit: int | None) -> list[Node]:
    """The chain down to ``path`` after the read check, the node's ``children`` set to the
    ``start``/``limit`` window in ``ordering`` (name order pages in storage; any other
    needs the whole container). getNode and the web browser's listing both read this way.
    Links inside ``path`` are followed, the node at its end is shown as it is, named as
    asked (services/links.py). (On a worker thread: resolve and list in one hop.)"""
    chain = links.readable(caller, path, False)
    node = chain[-1]
    if node.is_container and limit != 0:
        if ordering.by_name_ascending:
            node.children = links.tree.list_children(node.path, start, limit)
        else:
            node.children = window(links.tree.list_children(node.path), ordering, start, limit)
    shown_at(node, path)
    return chain


class NodeEndpoints(ServiceEndpoints):
    def routes(self) -> list[Route]:
        methods = ["GET", "PUT", "POST", "DELETE"]
        return [Route("/nodes", self.dispatch, methods=methods),
                Route("/nodes/{path:path}", self.dispatch, methods=methods)]

    async def dispatch(self, request: Request) -> Response:
        handler = {"GET": self.get, "PUT": self.put, "POST": self.post,
                   "DELETE": self.delete}[request.method]
        return await handler(request, node_path(request))

    def _check_uri(self, request: Request, uri: str, path: str) -> None:
        """The document's uri attribute must name the node in the URL, in this service."""
        if uri == f"{self.service.base_uri}/{path}":  # the usual case, without parsing
            return
        if uris.path_in_service(uri, self.service.name,
                                deployment(request).settings.accepted_authorities) != path:
            raise InvalidURI(f"node uri {uri} does not match the request path /{path}")

    def _render(self, node: Node, detail: Detail = Detail.MAX, status: int = 200) -> Response:
        return xml_response(render_node(node, self.service.base_uri, detail), status)

    async def get(self, request: Request, path: str) -> Response:
        detail, limit = parse_detail(request), parse_limit(request)
        ordering = parse_ordering(request.query_params.get("sort"),
                                  request.query_params.get("order"))
        caller = await caller_of(request)
        start = self._start_name(request, path)
        chain = await run(read_listing, resolver(request, self.service), caller, path, ordering,
                          start, limit)
        node = chain[-1]
        tree = self.service.tree
        if caller.is_admin and node.type is NodeType.DATA and isinstance(tree, KeepsCopies):
            stored_at = uris.join(chain[-2].path, node.name)  # its own path, links followed
            copies = await run(tree.stored_copies, stored_at)
            if copies:
                node.properties[props.COPIES] = copies
        if detail is Detail.MAX and not caller.is_anonymous:
            node.properties.update(policy.access_properties(caller, chain))
            for child in node.children or ():
                child.properties.update(policy.access_properties(caller, chain + [child]))
        return self._render(node, detail)

    def _start_name(self, request: Request, path: str) -> str | None:
        """The ``uri`` paging parameter: the child to start at (inclusive)."""
        start_uri = request.query_params.get("uri")
        if not start_uri:
            return None
        start = uris.parse_vos_uri(start_uri).path
        if uris.parent_of(start) != path or start == path:
            raise InvalidURI(f"{start_uri} is not a child of /{path}")
        return uris.name_of(start)

    async def put(self, request: Request, path: str) -> Response:
        if path == "":
            raise DuplicateNode("the root container always exists")
        body = await read_body(request, deployment(request).settings.max_xml_bytes)
        uri, node = parse_node(body)
        self._check_uri(request, uri, path)
        node.path = path
        node.properties = normalize_group_properties(node.properties, self.service.authority)
        if node.is_link:
            check_link_target(node.target or "")
        tree = self.service.tree

        def check_and_create() -> Node:  # one worker-thread hop for the whole create
            caller = caller_now(request)
            if props.QUOTA in node.properties and not caller.is_admin:
                raise PermissionDenied("only administrators may set quotas")
            return tree.create(node, caller.name,
                               check=lambda chain: policy.require_write(caller, chain))

        return self._render(await run(check_and_create), status=201)

    async def post(self, request: Request, path: str) -> Response:
        body = await read_body(request, deployment(request).settings.max_xml_bytes)
        uri, update = parse_node(body)
        self._check_uri(request, uri, path)
        caller = await caller_of(request)
        tree = self.service.tree
        chain = await run(tree.resolve, path)
        policy.require_write(caller, chain)
        changes = normalize_group_properties(
            {u: v for u, v in update.properties.items() if u not in props.READ_ONLY},
            self.service.authority)
        policy.require_property_rights(caller, chain[-1], changes)
        updated = await run(tree.update_properties, path, changes)
        return self._render(updated)

    async def delete(self, request: Request, path: str) -> Response:
        tree = self.service.tree
        refuse_protected(tree, path)
        caller = await caller_of(request)
        chain = await run(tree.resolve, path)
        policy.require_write(caller, chain[:-1])
        refuse_locked(chain[-1])
        await run(tree.delete, path)
        return Response(status_code=200)
