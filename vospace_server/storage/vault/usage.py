"""Vault quota bookkeeping: each container's ``length`` is the bytes stored below it.

Every write, delete, move and copy adjusts the ancestors' lengths in its own transaction
(``add``), and growth is checked against the quotas on the way, so concurrent writers can
never overshoot a quota together: QuotaExceeded rolls the whole change back. ``recount``
rebuilds the lengths from the DataNodes (``vospace quota recount``).
"""
from __future__ import annotations

import json

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from ...protocol import properties as props
from ...protocol import uris
from ...protocol.faults import QuotaExceeded
from ...protocol.nodes import NodeType
from .schema import nodes

QUOTA_MARK = '#quota"'  # how a quota property looks inside a row's JSON props


def holds_quota(row: Row) -> bool:
    return QUOTA_MARK in row.props


def add(conn: Connection, path: str, delta: int, exempt: frozenset[str] = frozenset(),
        quota_holders: list[str] | None = None) -> None:
    """Add ``delta`` bytes to every ancestor container of ``path``; growth is checked
    against the quotas on them (except ``exempt`` ones, which a move only passes through;
    only ``quota_holders`` when the caller read them in this transaction)."""
    if delta:
        above = uris.ancestors(path)
        conn.execute(update(nodes).where(nodes.c.path.in_(above))
                     .values(length=nodes.c.length + delta))
        checked = above if quota_holders is None else quota_holders
        checked = [p for p in checked if p not in exempt]
        if delta > 0 and checked:
            _enforce_quotas(conn, checked)


def _enforce_quotas(conn: Connection, paths: list[str]) -> None:
    rows = conn.execute(select(nodes.c.path, nodes.c.length, nodes.c.props)
                        .where(nodes.c.path.in_(paths), nodes.c.props.like(f"%{QUOTA_MARK}%")))
    for row in rows:
        limit = json.loads(row.props).get(props.QUOTA)
        if limit is not None and row.length > int(limit):
            raise QuotaExceeded(f"/{row.path} would hold {row.length} bytes, over its "
                                f"quota of {limit}")


def recount(conn: Connection, top: Row, subtree) -> int:
    """Recompute every container ``length`` in ``subtree`` (an SQL condition selecting
    ``top`` and everything below it) from its DataNodes, and the usage above ``top``;
    returns the bytes under ``top``."""
    totals: dict[str, int] = {}
    data: list[tuple[str, int]] = []
    for row in conn.execute(select(nodes.c.path, nodes.c.type, nodes.c.length)
                            .where(subtree)):
        if row.type == NodeType.CONTAINER.value:
            totals.setdefault(row.path, 0)
        elif row.type == NodeType.DATA.value:
            data.append((row.path, row.length))
    for file_path, length in data:
        for above in uris.ancestors(file_path):
            if above in totals:
                totals[above] += length
    for container, total in totals.items():
        conn.execute(update(nodes).where(nodes.c.path == container).values(length=total))
    total = totals.get(top.path, top.length)
    if top.type == NodeType.CONTAINER.value and total != top.length:
        conn.execute(update(nodes).where(nodes.c.path.in_(uris.ancestors(top.path)))
                     .values(length=nodes.c.length + (total - top.length)))
    return total
