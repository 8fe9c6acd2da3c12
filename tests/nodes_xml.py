"""The one place tests write node documents and read node properties back."""
from __future__ import annotations

import httpx
from lxml import etree

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def node_xml(uri: str, node_type: str = "ContainerNode",
             properties: dict[str, str | None] | None = None, target: str | None = None,
             prefix: str = "vos") -> str:
    """A ``<vos:node>`` document; a None property value is sent as ``xsi:nil`` (delete)."""
    props = "".join(
        f'<{prefix}:property uri="{key}" xsi:nil="true"/>' if value is None else
        f'<{prefix}:property uri="{key}">{value}</{prefix}:property>'
        for key, value in (properties or {}).items())
    extra = f"<{prefix}:target>{target}</{prefix}:target>" if target else ""
    return (f'<{prefix}:node xmlns:{prefix}="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
            f'uri="{uri}" xsi:type="vos:{node_type}">'
            f"<{prefix}:properties>{props}</{prefix}:properties>{extra}</{prefix}:node>")


def properties_of(xml: bytes, node_uri: str | None = None) -> dict[str, str]:
    """The properties of the document's node (or of its child node ``node_uri``)."""
    root = etree.fromstring(xml)
    el = root if node_uri is None else next(
        n for n in root.iter(f"{{{VOS_NS}}}node") if n.get("uri") == node_uri)
    return {p.get("uri"): p.text or "" for p in el.find(f"{{{VOS_NS}}}properties")}


def fetch_properties(client: httpx.Client, url: str) -> dict[str, str]:
    """GET a node (without its children) and return its properties."""
    r = client.get(url, params={"limit": 0})
    assert r.status_code == 200, r.text
    return properties_of(r.content)
