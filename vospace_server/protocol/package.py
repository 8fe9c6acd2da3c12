"""Package requests: a transfer document asking for many nodes as one TAR or ZIP archive.

This is how CADC's services are asked for a package (storage-ui's batch download, the
``/pkg`` endpoint of cavern and vault): a ``pullFromVoSpace`` transfer with one ``target``
per node (several are allowed, unlike other transfers) and the view
``vos://cadc.nrc.ca~vospace/CADC/std/Pkg-1.0`` whose ``ivo://ivoa.net/vospace/core#format``
parameter names the archive type (``application/zip`` or ``application/x-tar``). POSTed to
``/synctrans`` it is answered with 303 to ``/pkg/{job id}``, whose GET streams the archive.
"""
from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .faults import InvalidArgument
from .transfer import PULL_FROM
from .xml_io import VOS_NS, parse_xml

PACKAGE_VIEW = "vos://cadc.nrc.ca~vospace/CADC/std/Pkg-1.0"
FORMAT_PARAM = "ivo://ivoa.net/vospace/core#format"
FORMATS = {"application/zip": "zip", "application/x-tar": "tar"}
MEDIA_TYPES = {short: media for media, short in FORMATS.items()}
MAX_TARGETS = 10_000


@dataclass(frozen=True)
class PackageRequest:
    targets: tuple[str, ...]   # vos:// URIs, in the order given
    format: str                # "zip" or "tar"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def archive_format(value: str) -> str:
    """``zip``/``tar`` from a media type or a short name (the web form sends ``zip``)."""
    value = value.strip().lower()
    if value in MEDIA_TYPES:
        return value
    if value in FORMATS:
        return FORMATS[value]
    raise InvalidArgument(f"package format must be application/zip or application/x-tar, "
                          f"not {value!r}")


def check_targets(targets: list[str]) -> tuple[str, ...]:
    if not targets or any(not t for t in targets):
        raise InvalidArgument("a package needs at least one target")
    if len(targets) > MAX_TARGETS:
        raise InvalidArgument(f"a package holds at most {MAX_TARGETS} targets")
    return tuple(targets)


def _vos(tag: str) -> str:
    return f"{{{VOS_NS}}}{tag}"


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_package(body: bytes) -> PackageRequest | None:
    """The package a transfer document asks for; None when it is no package request."""
    root = parse_xml(body)
    view = root.find(_vos("view"))
    if root.tag != _vos("transfer") or view is None or view.get("uri") != PACKAGE_VIEW:
        return None
    if _text(root.find(_vos("direction"))) != PULL_FROM:
        raise InvalidArgument(f"a package is a {PULL_FROM} transfer")
    formats = [_text(p) for p in view.findall(_vos("param")) if p.get("uri") == FORMAT_PARAM]
    return PackageRequest(check_targets([_text(t) for t in root.findall(_vos("target"))]),
                          archive_format(formats[0] if formats else "application/zip"))


def render_package(request: PackageRequest) -> bytes:
    """The transfer document of ``request`` (kept as the job's request)."""
    root = etree.Element(_vos("transfer"), nsmap={"vos": VOS_NS}, version="2.1")
    for target in request.targets:
        etree.SubElement(root, _vos("target")).text = target
    etree.SubElement(root, _vos("direction")).text = PULL_FROM
    view = etree.SubElement(root, _vos("view"), uri=PACKAGE_VIEW)
    etree.SubElement(view, _vos("param"), uri=FORMAT_PARAM).text = request.media_type
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
