"""Ordering of container listings: the ``sort`` and ``order`` parameters of getNode.

The CADC client sends them for ``vls -t`` (``sort=…core#date``), ``vls -S``
(``sort=…core#length``) and ``vls -r`` (``order=desc``, no sort), and CADC's services honour
them, so we do too. Name order (the default) pages in storage by index; any other order
needs the whole container, so it is applied here, in memory, before the ``uri``/``limit``
window is cut out of it.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import properties as props
from .faults import InvalidArgument
from .nodes import Node

SORT_KEYS = (props.DATE, props.LENGTH)
ORDERS = ("asc", "desc")


@dataclass(frozen=True)
class Ordering:
    """``sort`` is a property URI or None (by name); ``descending`` flips the order."""

    sort: str | None = None
    descending: bool = False

    @property
    def by_name_ascending(self) -> bool:
        return self.sort is None and not self.descending


def parse_ordering(sort: str | None, order: str | None) -> Ordering:
    """Validate the raw query values (empty means absent) or raise InvalidArgument."""
    if sort and sort not in SORT_KEYS:
        raise InvalidArgument(f"cannot sort by {sort!r}; supported: {', '.join(SORT_KEYS)}")
    if order and order.lower() not in ORDERS:
        raise InvalidArgument(f"order must be asc or desc, not {order!r}")
    return Ordering(sort or None, (order or "").lower() == "desc")


def _key(node: Node, sort: str | None) -> tuple:
    if sort == props.LENGTH:
        return (int(node.properties.get(props.LENGTH) or 0), node.name)
    if sort == props.DATE:  # fixed-width ISO text: string order is time order
        return (node.properties.get(props.DATE) or "", node.name)
    return (node.name,)


def window(children: list[Node], ordering: Ordering, start: str | None,
           limit: int | None) -> list[Node]:
    """Sort ``children`` (all of a container) and return the page starting at the child
    named ``start`` (inclusive, as the CADC client's paging expects) of at most ``limit``."""
    ordered = sorted(children, key=lambda n: _key(n, ordering.sort), reverse=ordering.descending)
    first = 0
    if start is not None:
        first = next((i for i, n in enumerate(ordered) if n.name == start), len(ordered))
    return ordered[first:] if limit is None else ordered[first:first + limit]
