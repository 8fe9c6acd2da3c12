"""The one parser for node paths and ``vos://`` URIs.

A node path is held as a string without leading or trailing slash, ``""`` being the
service root. Every path that reaches storage went through :func:`normalize_path`, which
is where ``..`` and friends are refused, so no backend has to repeat that check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection
from urllib.parse import unquote, urlsplit

from .faults import InvalidURI

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_PERCENT_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")
_FORBIDDEN_CHARS = {"\x00", "\\"} | {chr(c) for c in range(0x01, 0x20)} | {"\x7f"}


def normalize_path(raw: str) -> str:
    """Return the canonical form of ``raw`` (already URL-decoded) or raise InvalidURI.

    Empty segments from doubled slashes are dropped; ``.`` and ``..`` segments are refused
    rather than resolved, because a client sending them is either confused or probing.
    """
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidURI(f"path longer than {MAX_PATH_BYTES} bytes")
    segments = [s for s in raw.split("/") if s != ""]
    for name in segments:
        check_name(name)
    return "/".join(segments)


def check_name(name: str) -> None:
    """Raise InvalidURI unless ``name`` is acceptable as one node name."""
    if name in (".", ".."):
        raise InvalidURI(f"'{name}' is not a valid node name")
    if any(ch in _FORBIDDEN_CHARS for ch in name):
        raise InvalidURI("node names may not contain control characters or backslashes")
    if _PERCENT_ESCAPE.search(name):
        # Clients would decode it differently (and ``%2e%2e`` is a doubly-encoded ``..``).
        raise InvalidURI("node names may not contain percent-encoded sequences such as %2e")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidURI("node name is not valid UTF-8") from exc
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidURI(f"node name longer than {MAX_NAME_BYTES} bytes")


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def name_of(path: str) -> str:
    return path.rpartition("/")[2]


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def ancestors(path: str) -> list[str]:
    """Every ancestor of ``path`` from the root down, excluding ``path`` itself."""
    parts = path.split("/") if path else []
    return ["/".join(parts[:i]) for i in range(len(parts))]


def is_within(path: str, root: str) -> bool:
    return root == "" or path == root or path.startswith(root + "/")


@dataclass(frozen=True)
class VOSURI:
    """A parsed ``vos://authority~service/path`` (``!`` accepted in place of ``~``)."""

    authority: str
    service: str
    path: str

    def __str__(self) -> str:
        return f"vos://{self.authority}~{self.service}/{self.path}"


def parse_vos_uri(uri: str) -> VOSURI:
    """Parse a vos URI; the path part is percent-decoded then normalized."""
    parts = urlsplit(uri.strip())
    if parts.scheme != "vos" or not parts.netloc:
        raise InvalidURI(f"not a vos:// URI: {uri}")
    netloc = parts.netloc.replace("!", "~")
    authority, sep, service = netloc.partition("~")
    if not sep or not authority or not service:
        raise InvalidURI(f"vos URI lacks an authority~service part: {uri}")
    return VOSURI(authority, service, normalize_path(unquote(parts.path)))


def path_in_service(uri: str, service: str, authorities: Collection[str]) -> str:
    """The node path of ``uri``, which must name a node of ``service`` under one of this
    deployment's ``authorities`` (InvalidURI otherwise)."""
    parsed = parse_vos_uri(uri)
    if parsed.service != service or parsed.authority not in authorities:
        raise InvalidURI(f"{uri} is not a node of the {service} service")
    return parsed.path
