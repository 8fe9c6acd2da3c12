"""Following LinkNodes for reads, as CADC's services do.

Storage never looks through a link (NodeTree answers LinkFound); whether to follow one is
decided here, per request. A link inside a path (``a/clink/file``) is followed for reads,
listings and downloads; a link at the end of a path only for data (``GET /files/a/dlink``,
a pull transfer): ``GET /nodes/a/dlink`` still shows the LinkNode itself. Reading through a
link needs read access along every path walked: the link's own chain and its target's.

A target is followed when it is a node of this service (a ``vos://`` URI of an accepted
authority with this service's name), at most ``MAX_LINKS`` times per request, so chains
and loops end in UnreadableLinkTarget. Any other target (``https://...``, another service,
another VOSpace) cannot be followed here: ExternalTarget (an UnreadableLinkTarget naming
it), which the data endpoint turns into a redirect when the target is an http(s) URL.
"""
from __future__ import annotations

from starlette.requests import Request

from ..auth import policy
from ..auth.identity import Caller
from ..deployment import Service
from ..protocol import uris
from ..protocol.faults import InvalidURI, LinkFound, UnreadableLinkTarget
from ..protocol.nodes import Node
from ..storage.tree import NodeTree
from .requests import deployment

MAX_LINKS = 16


class ExternalTarget(UnreadableLinkTarget):
    """A link whose target is outside this service; ``target`` is that URI."""

    def __init__(self, link: str, target: str) -> None:
        super().__init__(f"/{link} points outside this service, to {target}")
        self.target = target

    @property
    def redirectable(self) -> bool:
        return self.target.startswith(("https://", "http://"))


class LinkResolver:
    """Follows links in the paths of one service (``base_uri``, accepted ``authorities``)."""

    def __init__(self, tree: NodeTree, service: str, authorities: frozenset[str]) -> None:
        self.tree, self.service, self.authorities = tree, service, authorities

    def _local(self, link: Node) -> str:
        """The path of this service that ``link`` points to, else ExternalTarget."""
        target = link.target or ""
        try:
            return uris.path_in_service(target, self.service, self.authorities)
        except InvalidURI:
            raise ExternalTarget(link.path, target) from None

    def readable(self, caller: Caller, path: str, leaf: bool) -> list[Node]:
        """The chain (root..node) of the node ``path`` names, links inside it followed (and
        one at its end too with ``leaf``), after checking ``caller`` may read every node on
        the way. Blocking: call from a worker thread."""
        for _ in range(MAX_LINKS + 1):
            try:
                chain = self.tree.resolve(path)
            except LinkFound as found:
                link_path = found.detail.strip("/")
                link_chain = self.tree.resolve(link_path)
                policy.require_read(caller, link_chain)
                path = (self._local(link_chain[-1]) + path[len(link_path):]).strip("/")
                continue
            policy.require_read(caller, chain)
            if not (leaf and chain[-1].is_link):
                return chain
            path = self._local(chain[-1])
        raise UnreadableLinkTarget(f"more than {MAX_LINKS} links to follow from /{path}")


def resolver(request: Request, service: Service) -> LinkResolver:
    return LinkResolver(service.tree, service.name,
                        deployment(request).settings.accepted_authorities)


def shown_at(node: Node, path: str) -> Node:
    """``node`` (and its listed children) renamed to the path the client asked for, so a
    listing through a link pages and names its entries as the client addressed them."""
    node.path = path
    for child in node.children or ():
        child.path = uris.join(path, child.name)
    return node
