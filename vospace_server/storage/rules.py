"""Rules about nodes that every endpoint, job and backend applies the same way.

- Protected paths (``NodeTree.protected``: a service root, arc's ``home`` and ``projects``)
  are never deleted, moved away or replaced.
- A locked node (``islocked``) is never changed, deleted, moved or written: ``NodeLocked``
  (423), whichever endpoint or job met the lock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import properties as props
from ..protocol.faults import NodeLocked, PermissionDenied
from ..protocol.nodes import Node

if TYPE_CHECKING:
    from .tree import NodeTree


def refuse_protected(tree: NodeTree, path: str, action: str = "deleted") -> None:
    """PermissionDenied when ``path`` is one of the tree's fixed folders."""
    if path in tree.protected:
        raise PermissionDenied(f"/{path} cannot be {action}")


def refuse_locked(node: Node) -> None:
    if node.flag(props.ISLOCKED):
        raise NodeLocked(f"/{node.path} is locked")
