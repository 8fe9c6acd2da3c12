"""VOSI capabilities and availability documents, and the registry's resource-caps text.

The CADC client's capabilities reader needs the literal ``xsi`` prefix on the root and
unqualified ``capability``/``interface``/``accessURL``/``securityMethod`` children; the
anonymous ``<securityMethod/>`` comes first so it also counts as the fallback interface.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

VOSI_CAP_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AVAIL_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
VS_NS = "http://www.ivoa.net/xml/VODataService/v1.1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

SECURITY_METHODS = (
    "ivo://ivoa.net/sso#token",
    "ivo://ivoa.net/sso#cookie",
    "ivo://ivoa.net/sso#BasicAA",
)


@dataclass(frozen=True)
class Capability:
    standard_id: str
    path: str           # relative to the service base URL
    use: str = "full"   # "base" where the client appends a node path
    secured: bool = True


VOSPACE_CAPABILITIES = (
    Capability("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities", secured=False),
    Capability("ivo://ivoa.net/std/VOSI#availability", "/availability", secured=False),
    Capability("ivo://ivoa.net/std/VOSpace/v2.0#nodes", "/nodes", use="base"),
    Capability("ivo://ivoa.net/std/VOSpace/v2.0#transfers", "/transfers"),
    Capability("ivo://ivoa.net/std/VOSpace#sync-2.1", "/synctrans"),
    Capability("ivo://ivoa.net/std/VOSpace#files-proto", "/files", use="base"),
    Capability("ivo://ivoa.net/std/VOSpace#recursive-delete-proto", "/async-delete"),
    Capability("ivo://ivoa.net/std/VOSpace#recursive-nodeprops-proto", "/async-setprops"),
)


def render_capabilities(base_url: str, capabilities: tuple[Capability, ...]) -> bytes:
    root = etree.Element(f"{{{VOSI_CAP_NS}}}capabilities",
                         nsmap={"vosi": VOSI_CAP_NS, "xsi": XSI_NS, "vs": VS_NS})
    for cap in capabilities:
        cap_el = etree.SubElement(root, "capability", standardID=cap.standard_id)
        iface = etree.SubElement(cap_el, "interface", role="std")
        iface.set(f"{{{XSI_NS}}}type", "vs:ParamHTTP")
        etree.SubElement(iface, "accessURL", use=cap.use).text = base_url + cap.path
        if cap.secured:
            etree.SubElement(iface, "securityMethod")
            for method in SECURITY_METHODS:
                etree.SubElement(iface, "securityMethod", standardID=method)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_availability(available: bool, note: str) -> bytes:
    root = etree.Element(f"{{{VOSI_AVAIL_NS}}}availability", nsmap={"vosi": VOSI_AVAIL_NS})
    etree.SubElement(root, f"{{{VOSI_AVAIL_NS}}}available").text = "true" if available else "false"
    etree.SubElement(root, f"{{{VOSI_AVAIL_NS}}}note").text = note
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_resource_caps(entries: dict[str, str]) -> str:
    """``resourceID = capabilitiesURL`` per line; the client splits on '=' so URLs hold none."""
    lines = ["# resource-caps: resourceID = capabilities URL"]
    lines += [f"{rid} = {url}" for rid, url in entries.items()]
    return "\n".join(lines) + "\n"
