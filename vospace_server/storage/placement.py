"""Where a moved or copied node lands: the moveNode/copyNode rule both backends apply.

An existing container as destination receives the source inside it (under its own name);
any other existing destination is a DuplicateNode; otherwise the destination is the new
path, and its parent must be an existing container. A node never goes below itself.
"""
from __future__ import annotations

from typing import Callable

from ..protocol import uris
from ..protocol.faults import ContainerNotFound, DuplicateNode, InvalidArgument, NodeNotFound
from ..protocol.nodes import Node


def final_destination(resolve: Callable[[str], list[Node]], src: str, dest: str,
                      replace: bool = False) -> str:
    """The path ``src`` ends up at when moved/copied to ``dest`` (``resolve`` is the tree's).

    With ``replace`` (a move replacing its destination, as rename(2)) it is ``dest`` itself,
    whatever is there; the tree checks what may be replaced in the same step as the move."""
    final = dest if replace else _moved_or_copied_to(resolve, src, dest)
    if final == dest:  # a new (or replaced) name: its parent must be a container
        parent = uris.parent_of(dest)
        try:
            container = resolve(parent)[-1]
        except NodeNotFound:
            raise ContainerNotFound(f"/{parent}") from None
        if not container.is_container:
            raise ContainerNotFound(f"/{parent} is not a container")
    if src == "" or uris.is_within(final, src):
        raise InvalidArgument(f"/{src} cannot be placed at /{final}, inside itself")
    return final


def _moved_or_copied_to(resolve: Callable[[str], list[Node]], src: str, dest: str) -> str:
    """``dest`` when nothing is there, inside it when it is a container."""
    try:
        target = resolve(dest)[-1]
    except NodeNotFound:
        return dest
    if not target.is_container:
        raise DuplicateNode(f"/{dest} already exists")
    final = uris.join(dest, uris.name_of(src))
    try:
        resolve(final)
    except NodeNotFound:
        return final
    raise DuplicateNode(f"/{final} already exists")
