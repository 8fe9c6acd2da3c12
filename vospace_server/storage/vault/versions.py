"""Vault versions: the previous contents of a DataNode, kept when it is overwritten.

Blobs are immutable, so keeping a version costs one row: when an upload replaces a node's
blob, the old blob key moves into ``versions`` (same transaction) instead of being deleted.
Versions are numbered per node from 1 upwards and never renumbered. Retention (settings
``version_keep`` and ``version_max_age_days``) prunes the oldest beyond the count and any
older than the age each time a version is added. The rows follow the node by its id, so a
moved node keeps its history; a copy starts without one; deleting a node deletes its
versions. Versions do not count against quotas (they are bounded by the retention instead).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import (BigInteger, Column, Float, ForeignKey, Index, Integer, String, Table, Text,
                        delete, func, insert, select)
from sqlalchemy.engine import Connection, Row

from .schema import Id, metadata, nodes

# Tables change only through a migration (README, "Schema migrations").
versions = Table(
    "versions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("blob", Text, nullable=False),
    Column("md5", String(32), nullable=True),
    Column("length", BigInteger, nullable=False),
    Column("modified", Float, nullable=False),   # when this content was written
    Column("replaced", Float, nullable=False),   # when it stopped being current
    Column("content_type", Text, nullable=True),
    Index("ix_versions_node_number", "node_id", "number", unique=True),
)


@dataclass(frozen=True)
class Retention:
    keep: int = 10               # versions kept per node (0: keep none)
    max_age_days: float = 30.0   # versions older than this are pruned (0: no age limit)


@dataclass(frozen=True)
class Version:
    number: int
    length: int
    md5: str | None
    modified: float
    replaced: float
    content_type: str | None
    blob: str


def _version(row: Row) -> Version:
    return Version(row.number, row.length, row.md5, row.modified, row.replaced,
                   row.content_type, row.blob)


def keep(conn: Connection, node: Row, content_type: str | None, retention: Retention) -> list[str]:
    """Record ``node``'s current blob as its newest version; returns blob keys to delete
    after the commit (pruned versions, or the blob itself when nothing is kept)."""
    if not node.blob:
        return []
    if retention.keep <= 0:
        return [node.blob]
    latest = conn.execute(select(func.max(versions.c.number))
                          .where(versions.c.node_id == node.id)).scalar() or 0
    conn.execute(insert(versions).values(
        node_id=node.id, number=latest + 1, blob=node.blob, md5=node.md5, length=node.length,
        modified=node.modified, replaced=time.time(), content_type=content_type))
    return prune(conn, node.id, retention)


def prune(conn: Connection, node_id: int, retention: Retention) -> list[str]:
    rows = list(conn.execute(select(versions).where(versions.c.node_id == node_id)
                             .order_by(versions.c.number.desc())))
    cutoff = time.time() - retention.max_age_days * 86400 if retention.max_age_days > 0 else None
    doomed = [r for i, r in enumerate(rows)
              if i >= retention.keep or (cutoff is not None and r.replaced < cutoff)]
    if doomed:
        conn.execute(delete(versions).where(versions.c.id.in_([r.id for r in doomed])))
    return [r.blob for r in doomed]


def prune_all(conn: Connection, retention: Retention) -> list[str]:
    """Apply the retention to every node (age limits pass while nobody writes)."""
    keys: list[str] = []
    for node_id in list(conn.execute(select(versions.c.node_id).distinct()).scalars()):
        keys += prune(conn, node_id, retention)
    return keys


def listing(conn: Connection, node_id: int) -> list[Version]:
    return [_version(r) for r in conn.execute(
        select(versions).where(versions.c.node_id == node_id).order_by(versions.c.number))]


def one(conn: Connection, node_id: int, number: int) -> Version | None:
    row = conn.execute(select(versions).where(versions.c.node_id == node_id,
                                              versions.c.number == number)).first()
    return None if row is None else _version(row)


def remove(conn: Connection, node_id: int, number: int) -> str | None:
    """Delete one version row; returns its blob key (to delete after the commit)."""
    found = one(conn, node_id, number)
    if found is not None:
        conn.execute(delete(versions).where(versions.c.node_id == node_id,
                                            versions.c.number == number))
    return None if found is None else found.blob


def remove_subtree(conn: Connection, node_ids: list[int]) -> list[str]:
    """Delete the versions of the given nodes (being deleted); returns their blob keys."""
    keys: list[str] = []
    for start in range(0, len(node_ids), 500):
        chunk = node_ids[start:start + 500]
        keys += conn.execute(select(versions.c.blob).where(versions.c.node_id.in_(chunk))).scalars()
        conn.execute(delete(versions).where(versions.c.node_id.in_(chunk)))
    return keys


def blob_references(conn: Connection) -> dict[str, str]:
    """blob key -> "<node path>@v<number>" (for fsck, so versions are not orphans)."""
    query = select(versions.c.blob, nodes.c.path, versions.c.number).join(
        nodes, nodes.c.id == versions.c.node_id)
    return {r.blob: f"{r.path}@v{r.number}" for r in conn.execute(query)}
