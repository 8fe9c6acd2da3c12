"""Quotas on containers (home and project roots), the same rules for vault and arc.

A container carrying the ``quota`` property (bytes; set by administrators only) is a quota
root. Its usage is its ``length``, the bytes stored below it, which each backend keeps up
to date incrementally (vault: SQL ``length`` column adjusted in the same transaction as
every write, delete, move and copy, see vault/usage.py; arc: a counter xattr on the root,
see arc/usage.py).
Nothing here walks a tree: the room left is computed from the ancestor chain that every
request resolves anyway.
"""
from __future__ import annotations

import re

from ..protocol import properties as props
from ..protocol.faults import InvalidArgument, QuotaExceeded
from ..protocol.nodes import Node

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGTP]?)(i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_size(text: str) -> int:
    """``10G`` / ``512M`` / ``1000`` -> bytes (binary units, as quota requests are phrased)."""
    match = _SIZE.match(text)
    if not match:
        raise InvalidArgument(f"not a size: {text!r} (use e.g. 1000, 512M, 10G)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def quota_of(node: Node) -> int | None:
    value = node.properties.get(props.QUOTA)
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def usage_of(node: Node) -> int:
    return int(node.properties.get(props.LENGTH) or 0)


def room(chain: list[Node]) -> int | None:
    """Bytes that may still be added below ``chain[-1]``; None when no quota applies.

    ``chain`` runs from the root down (as NodeTree.resolve returns it); every quota root
    on it limits what can be added."""
    left = None
    for node in chain:
        quota = quota_of(node) if node.is_container else None
        if quota is not None:
            free = max(quota - usage_of(node), 0)
            left = free if left is None else min(left, free)
    return left


def require_room(chain: list[Node], incoming: int, replacing: int = 0) -> None:
    """QuotaExceeded unless ``incoming`` bytes (replacing ``replacing`` bytes) fit."""
    left = room(chain)
    if left is not None and incoming - replacing > left:
        raise QuotaExceeded(f"/{chain[-1].path}: {incoming - replacing} more bytes do not fit "
                            f"in the {left} left under the quota")


def available_space(node: Node) -> str | None:
    """The ``availableSpace`` property of a quota root."""
    quota = quota_of(node)
    return None if quota is None else str(max(quota - usage_of(node), 0))


def upload_limit(chain: list[Node], replacing: int = 0) -> int | None:
    """The most bytes an upload below ``chain[-1]`` may hold (it replaces ``replacing``)."""
    left = room(chain)
    return None if left is None else left + replacing
