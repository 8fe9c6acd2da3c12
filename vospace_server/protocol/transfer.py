"""VOSpace transfer documents: parse what clients POST, emit negotiated ones.

A transfer names a ``target`` node and a ``direction``: ``pushToVoSpace`` /
``pullFromVoSpace`` (data moves in or out; ``protocols`` list what the client can use),
or a ``vos://`` URI (move, or copy when ``keepBytes`` is true). The CADC client sends
``<vos:keepBytes>false</vos:keepBytes>`` for moves and never a view for plain copies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from .faults import InvalidArgument
from .xml_io import NSMAP, VOS_NS, parse_xml

PUSH_TO = "pushToVoSpace"
PULL_FROM = "pullFromVoSpace"
PUSH_FROM = "pushFromVoSpace"
PULL_TO = "pullToVoSpace"
CORE = "ivo://ivoa.net/vospace/core#"
HTTPS_GET, HTTPS_PUT = CORE + "httpsget", CORE + "httpsput"
HTTP_GET, HTTP_PUT = CORE + "httpget", CORE + "httpput"
MAX_PROTOCOLS = 16


def _vos(tag: str) -> str:
    return f"{{{VOS_NS}}}{tag}"


@dataclass
class Protocol:
    uri: str
    endpoint: str | None = None
    security_method: str | None = None


# A transfer <vos:param> (VOSpace 2.1 allows any): with "true" a move replaces an existing
# destination atomically, as POSIX rename(2) does (arcfs's rename; the CADC client never
# sends it). Without it an existing destination is a DuplicateNode, per the standard.
REPLACE_PARAM = "urn:vospace-server:transfer#replace"


@dataclass
class Transfer:
    target: str
    direction: str
    protocols: list[Protocol] = field(default_factory=list)
    view: str | None = None
    keep_bytes: bool = True
    params: dict[str, str] = field(default_factory=dict)

    @property
    def is_node_transfer(self) -> bool:
        """A move or copy between two nodes (direction is a vos:// URI)."""
        return self.direction.startswith("vos://")

    @property
    def is_move(self) -> bool:
        return self.is_node_transfer and not self.keep_bytes

    @property
    def replaces(self) -> bool:
        """A move that replaces an existing destination (REPLACE_PARAM)."""
        return self.is_move and self.params.get(REPLACE_PARAM, "").lower() == "true"


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_transfer(body: bytes) -> Transfer:
    """Parse a transfer document, or raise InvalidArgument."""
    root = parse_xml(body)
    if root.tag != _vos("transfer"):
        raise InvalidArgument(f"expected a {{{VOS_NS}}}transfer document, got {root.tag}")
    targets = root.findall(_vos("target"))
    if len(targets) != 1 or not _text(targets[0]):
        raise InvalidArgument("a transfer needs exactly one target")
    direction = _text(root.find(_vos("direction")))
    if not direction:
        raise InvalidArgument("a transfer needs a direction")
    if direction not in (PUSH_TO, PULL_FROM, PUSH_FROM, PULL_TO) and \
            not direction.startswith("vos://"):
        raise InvalidArgument(f"unknown transfer direction {direction!r}")
    keep = _text(root.find(_vos("keepBytes"))).lower()
    if keep not in ("", "true", "false"):
        raise InvalidArgument(f"keepBytes must be true or false, not {keep!r}")
    protocols = []
    for el in root.findall(_vos("protocol")):
        uri = (el.get("uri") or "").strip()
        if not uri:
            raise InvalidArgument("protocol without a uri attribute")
        sec = el.find(_vos("securityMethod"))
        protocols.append(Protocol(uri, _text(el.find(_vos("endpoint"))) or None,
                                  (sec.get("uri") or None) if sec is not None else None))
    if len(protocols) > MAX_PROTOCOLS:
        raise InvalidArgument(f"more than {MAX_PROTOCOLS} protocols")
    view = root.find(_vos("view"))
    params = {(p.get("uri") or ""): _text(p) for p in root.findall(_vos("param"))}
    return Transfer(target=_text(targets[0]), direction=direction, protocols=protocols,
                    view=view.get("uri") if view is not None else None,
                    keep_bytes=keep != "false", params=params)


def transfer_element(transfer: Transfer) -> etree._Element:
    """The transfer as an element (for a response, or a UWS jobInfo)."""
    root = etree.Element(_vos("transfer"), nsmap={"vos": NSMAP["vos"]}, version="2.1")
    etree.SubElement(root, _vos("target")).text = transfer.target
    etree.SubElement(root, _vos("direction")).text = transfer.direction
    if transfer.view:
        etree.SubElement(root, _vos("view"), uri=transfer.view)
    for proto in transfer.protocols:
        el = etree.SubElement(root, _vos("protocol"), uri=proto.uri)
        if proto.endpoint:
            etree.SubElement(el, _vos("endpoint")).text = proto.endpoint
        if proto.security_method:
            etree.SubElement(el, _vos("securityMethod"), uri=proto.security_method)
    if transfer.is_node_transfer:
        etree.SubElement(root, _vos("keepBytes")).text = "true" if transfer.keep_bytes else "false"
    for uri, value in transfer.params.items():
        etree.SubElement(root, _vos("param"), uri=uri).text = value
    return root


def render_transfer(transfer: Transfer) -> bytes:
    return etree.tostring(transfer_element(transfer), xml_declaration=True, encoding="UTF-8")
