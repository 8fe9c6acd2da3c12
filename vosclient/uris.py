"""Remote names the tools accept: ``vos:path`` / ``vault:path`` (vault), ``arc:path`` (arc),
and full ``vos://authority~service/path`` URIs.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import InvalidArgument

SHORT_PREFIXES = {"vos": "vault", "vault": "vault", "arc": "arc"}


@dataclass(frozen=True)
class Remote:
    """One node: the service (``vault`` or ``arc``) and its path without a leading slash."""

    service: str
    path: str

    def __str__(self) -> str:
        prefix = "vos" if self.service == "vault" else self.service
        return f"{prefix}:{self.path}"

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def parent(self) -> "Remote":
        return Remote(self.service, self.path.rpartition("/")[0])

    def child(self, name: str) -> "Remote":
        return Remote(self.service, f"{self.path}/{name}" if self.path else name)


def is_remote(name: str) -> bool:
    """Does ``name`` address a node (rather than a local file)?"""
    scheme, sep, _ = name.partition(":")
    return bool(sep) and (scheme in SHORT_PREFIXES or (scheme == "vos" and name.startswith("vos://")))


def normalize(path: str) -> str:
    """``a//b/./c/`` -> ``a/b/c``; ``..`` resolves as in POSIX (never above the root)."""
    if not path.strip("/"):
        return ""
    return posixpath.normpath("/" + path).lstrip("/")


def parse(name: str) -> Remote:
    """Parse a remote name or raise InvalidArgument."""
    if name.startswith("vos://"):
        parts = urlsplit(name)
        authority, sep, service = parts.netloc.replace("!", "~").partition("~")
        if not sep or not service:
            raise InvalidArgument(f"not a vos://authority~service/path URI: {name}")
        return Remote(service, normalize(unquote(parts.path)))
    scheme, sep, path = name.partition(":")
    if not sep or scheme not in SHORT_PREFIXES:
        raise InvalidArgument(f"not a remote name (vos:path, arc:path or vos://...): {name}")
    return Remote(SHORT_PREFIXES[scheme], normalize(path))


def has_wildcard(name: str) -> bool:
    return any(c in name for c in "*?[")
