"""Parse and emit VOSpace node documents with lxml.

Parsing is hardened: DOCTYPEs (and so entity declarations) are refused outright, the
parser never resolves entities nor touches the network, and size is bounded by the
caller. Elements are matched by namespace and local name, never by prefix, because the
CADC client sends auto-generated prefixes; ``xsi:type`` is resolved by its local part.
"""
from __future__ import annotations

import re

from lxml import etree

from . import properties as props
from .faults import InvalidArgument, TypeNotSupported
from .nodes import Detail, Node, NodeType

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI_NS}}}type"
XSI_NIL = f"{{{XSI_NS}}}nil"
NSMAP = {"vos": VOS_NS, "xsi": XSI_NS}
MAX_DEPTH = 32

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _vos(tag: str) -> str:
    return f"{{{VOS_NS}}}{tag}"


def parse_xml(body: bytes) -> etree._Element:
    """Parse an untrusted XML document, or raise InvalidArgument."""
    if not body.strip():
        raise InvalidArgument("empty XML document")
    if _DOCTYPE.search(body):
        raise InvalidArgument("XML documents with a DOCTYPE or entity declarations are refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidArgument(f"malformed XML: {exc}") from None
    if _depth(root) > MAX_DEPTH:
        raise InvalidArgument(f"XML nested deeper than {MAX_DEPTH} levels")
    return root


def _depth(root: etree._Element) -> int:
    deepest = 0
    for el in root.iter():
        depth = 0
        while el is not None and depth <= MAX_DEPTH:
            el = el.getparent()
            depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
    return deepest


def local_type(value: str | None) -> str:
    return (value or "").rpartition(":")[2]


def parse_node(body: bytes) -> tuple[str, Node]:
    """Parse a node document into (uri attribute, Node with path unset)."""
    root = parse_xml(body)
    if root.tag != _vos("node"):
        raise InvalidArgument(f"expected a {{{VOS_NS}}}node document, got {root.tag}")
    uri = root.get("uri")
    if not uri:
        raise InvalidArgument("node document lacks the uri attribute")
    try:
        node_type = NodeType(local_type(root.get(XSI_TYPE)))
    except ValueError:
        raise TypeNotSupported(f"unsupported node type {root.get(XSI_TYPE)!r}") from None
    node = Node(path="", type=node_type, properties=parse_properties(root))
    if node_type is NodeType.LINK:
        target = root.find(_vos("target"))
        if target is None or not (target.text or "").strip():
            raise InvalidArgument("LinkNode requires a target")
        node.target = target.text.strip()
    return uri, node


def parse_properties(root: etree._Element) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    container = root.find(_vos("properties"))
    if container is None:
        return found
    for prop in container.findall(_vos("property")):
        uri = (prop.get("uri") or "").strip()
        if not uri:
            raise InvalidArgument("property without a uri attribute")
        if len(uri.encode()) > props.MAX_URI_BYTES:
            raise InvalidArgument("property URI too long")
        nil = (prop.get(XSI_NIL) or "").lower() == "true"
        value = None if nil else (prop.text or "")
        if value is not None and len(value.encode()) > props.MAX_VALUE_BYTES:
            raise InvalidArgument(f"value of {uri} longer than {props.MAX_VALUE_BYTES} bytes")
        found[props.canonical_uri(uri)] = value
    return found


def _property_elements(parent: etree._Element, node: Node) -> None:
    container = etree.SubElement(parent, _vos("properties"))
    for uri in sorted(node.properties):
        value = node.properties[uri]
        el = etree.SubElement(container, _vos("property"), uri=uri)
        if uri in props.READ_ONLY:
            el.set("readOnly", "true")
        if value is None:
            el.set(XSI_NIL, "true")
        else:
            el.text = _xml_safe(value)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


def _node_element(node: Node, base_uri: str, detail: Detail, tag: str,
                  parent: etree._Element | None) -> etree._Element:
    attrs = {"uri": f"{base_uri}/{node.path}" if node.path else base_uri + "/"}
    if parent is None:
        el = etree.Element(tag, attrs, nsmap=NSMAP)
    else:
        el = etree.SubElement(parent, tag, attrs)
    el.set(XSI_TYPE, f"vos:{node.type.value}")
    if node.type is not NodeType.LINK:
        el.set("busy", "true" if node.busy else "false")
    if detail is not Detail.MIN:
        _property_elements(el, node)
    if node.type is NodeType.DATA:
        etree.SubElement(etree.SubElement(el, _vos("accepts")), _vos("view"),
                         uri="ivo://ivoa.net/vospace/core#defaultview")
        etree.SubElement(etree.SubElement(el, _vos("provides")), _vos("view"),
                         uri="ivo://ivoa.net/vospace/core#defaultview")
    elif node.type is NodeType.CONTAINER:
        nodes = etree.SubElement(el, _vos("nodes"))
        for child in node.children or ():
            _node_element(child, base_uri, detail, _vos("node"), nodes)
    else:
        etree.SubElement(el, _vos("target")).text = _xml_safe(node.target or "")
    return el


def render_node(node: Node, base_uri: str, detail: Detail = Detail.MAX) -> bytes:
    """Serialize ``node`` (and ``node.children`` if listed) as a node document.

    ``base_uri`` is ``vos://authority~service``; children carry the same detail level,
    so each one has its full properties (the CADC ``vls -l`` reads ``#date`` off every child).
    """
    root = _node_element(node, base_uri, detail, _vos("node"), None)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
