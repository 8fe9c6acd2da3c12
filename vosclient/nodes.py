"""What the client knows about a node, parsed from the server's node documents.

Parsing goes through the project's one hardened XML layer (``protocol/xml_io``); documents
for createNode/setNode are rendered by it too, so client and server share one vocabulary.
"""
from __future__ import annotations

from datetime import datetime, timezone
from dataclasses import dataclass, field

from lxml import etree

from vospace_server.protocol import properties as props
from vospace_server.protocol.faults import VOSpaceFault
from vospace_server.protocol.nodes import Detail, Node as ProtocolNode, NodeType
from vospace_server.protocol.xml_io import (VOS_NS, XSI_TYPE, local_type, parse_properties,
                                            parse_xml, render_node)

from .errors import ServerError

CONTAINER, DATA, LINK = "ContainerNode", "DataNode", "LinkNode"
SHORT_NAMES = {"length", "date", "MD5", "type", "encoding", "creator", "ispublic", "groupread",
               "groupwrite", "quota", "description", "title", "mtime", "ctime", "btime"}


@dataclass
class Node:
    """A node as listed by the server; ``props`` is keyed by full property URI."""

    uri: str
    path: str
    type: str
    props: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    children: list["Node"] | None = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def isdir(self) -> bool:
        return self.type == CONTAINER

    @property
    def isfile(self) -> bool:
        return self.type == DATA

    @property
    def islink(self) -> bool:
        return self.type == LINK

    @property
    def size(self) -> int:
        try:
            return int(self.props.get(props.LENGTH) or 0)
        except ValueError:
            return 0

    @property
    def md5(self) -> str | None:
        return self.props.get(props.MD5) or None

    @property
    def mtime(self) -> float:
        """Seconds since the epoch of the node's ``date`` (UTC on the wire)."""
        value = self.props.get(props.DATE) or ""
        try:   # fromisoformat is C code: ~20x faster than strptime over a long listing
            return datetime.fromisoformat(value[:19]).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return 0.0

    @property
    def creator(self) -> str:
        return self.props.get(props.CREATOR) or ""

    @property
    def ispublic(self) -> bool:
        return (self.props.get(props.ISPUBLIC) or "").lower() == "true"

    @property
    def islocked(self) -> bool:
        return (self.props.get(props.ISLOCKED) or "").lower() == "true"

    @property
    def groupread(self) -> str:
        return self.props.get(props.GROUPREAD) or "NONE"

    @property
    def groupwrite(self) -> str:
        return self.props.get(props.GROUPWRITE) or "NONE"

    def prop(self, name: str) -> str | None:
        """A property by short name or URI (the CADC vtag stores bare names like ``tag``)."""
        return self.props.get(prop_uri(name), self.props.get(name))


def prop_uri(name: str) -> str:
    """``length`` -> the IVOA core URI; full URIs pass through; other short names are
    user properties in the ``ivo://ivoa.net/vospace/core#`` namespace (as vtag does)."""
    if "://" in name or name.startswith("ivo:"):
        return name
    if name in ("islocked", "readable", "writable", "inheritPermissions"):
        return props.CADC + name
    return props.CORE + name


def short_name(uri: str) -> str:
    return uri[len(props.CORE):] if uri.startswith(props.CORE) else uri


def _element_to_node(el: etree._Element) -> Node:
    uri = el.get("uri") or ""
    path = uri.partition("~")[2].partition("/")[2].rstrip("/")
    node = Node(uri=uri, path=path, type=local_type(el.get(XSI_TYPE)),
                props=parse_properties(el))
    target = el.find(f"{{{VOS_NS}}}target")
    if target is not None:
        node.target = (target.text or "").strip()
    nodes = el.find(f"{{{VOS_NS}}}nodes")
    if nodes is not None:
        node.children = [_element_to_node(c) for c in nodes.findall(f"{{{VOS_NS}}}node")]
    return node


def parse(body: bytes) -> Node:
    """A node document (with its listed children) from the server."""
    try:
        return _element_to_node(parse_xml(body))
    except VOSpaceFault as exc:
        raise ServerError(f"the server sent an unreadable node document: {exc.detail}") from None


def render(base_uri: str, path: str, type_: str, properties: dict[str, str | None] | None = None,
           target: str | None = None) -> bytes:
    """A node document for createNode (PUT) or setNode (POST)."""
    node = ProtocolNode(path=path, type=NodeType(type_), properties=dict(properties or {}),
                        target=target)
    if node.type is NodeType.CONTAINER:
        node.children = []
    return render_node(node, base_uri, Detail.PROPERTIES)
