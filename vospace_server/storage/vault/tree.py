"""VaultTree: the NodeTree over SQL metadata (see schema.py for the table layout)."""
from __future__ import annotations

import functools
import json
import time
from collections import namedtuple
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Callable, Iterator

from sqlalchemy import (and_, bindparam, case, delete, func, insert, literal, or_, select,
                        update)
from sqlalchemy.engine import Connection, Dialect, Engine, Row
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.exc import IntegrityError

from ...migrations import ensure_schema
from ...protocol import properties as props
from ...protocol import uris
from ...protocol.faults import (ContainerNotFound, DuplicateNode, InternalFault,
                                InvalidArgument, LinkFound, NodeBusy, NodeNotFound,
                                PermissionDenied)
from ...protocol.nodes import Node, NodeType
from ..common import (apply_changes, imposed, inherited, inherits, storable_properties,
                      with_defaults)
from .. import quota
from ..placement import final_destination
from ..streams import EmptyReadHandle, ReadHandle, Upload
from ..tree import Check
from ..transactions import is_sqlite, transaction
from . import usage, versions
from .blobs import BlobStore, new_key
from .copies import ReplicatedBlobStore
from .group_commit import GroupCommitter
from .schema import PathText, make_engine, nodes


# Built once: every node request runs them, and building a statement cost more CPU than
# executing it.
INSERT_NODE = insert(nodes)
NodeRow = namedtuple("NodeRow", [c.name for c in nodes.c])  # a row of select(nodes)


class ChainQuery:
    """``select(nodes)`` of the rows at some paths (an ancestor chain: every node request
    reads one), compiled once per number of paths (depth) for the engine's dialect, run on the
    connection's driver: through SQLAlchemy's execution layer it took 80 us of CPU here,
    at the driver 9 us. Same SQL, same connection and transaction."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[int, Compiled] = {}

    def _statement(self, count: int) -> Compiled:
        compiled = self._compiled.get(count)
        if compiled is None:
            wanted = [bindparam(f"p{i}") for i in range(count)]
            compiled = select(nodes).where(nodes.c.path.in_(wanted)).compile(dialect=self.dialect)
            self._compiled[count] = compiled
        return compiled

    def rows(self, conn: Connection, paths: list[str]) -> dict[str, NodeRow]:
        """The rows at ``paths`` that exist, by path."""
        compiled = self._statement(len(paths))
        params: dict[str, str] | list[str] = {f"p{i}": p for i, p in enumerate(paths)}
        if compiled.positional:
            params = [params[name] for name in compiled.positiontup or ()]
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(compiled.string, params)
            return {row.path: row for row in map(NodeRow._make, cursor.fetchall())}
        finally:
            cursor.close()


def subtree_clause(path: str):
    """SQL condition selecting ``path`` and everything below it."""
    if path == "":
        return nodes.c.path.isnot(None)
    return or_(nodes.c.path == path, and_(nodes.c.path > path + "/", nodes.c.path < path + "0"))


class VaultTree:
    """Node metadata in one SQL table; container ``length`` is kept as bytes used below it."""

    protected = frozenset({""})

    def __init__(self, database_url: str, root_owner: str, blobs: BlobStore,
                 retention: versions.Retention = versions.Retention(),
                 migrate: bool = True) -> None:
        self.engine: Engine = make_engine(database_url)
        ensure_schema(self.engine, migrate)  # every table of the database, not only vault's
        self.blobs = blobs
        self.retention = retention
        self._sqlite = is_sqlite(self.engine)
        self._chain_query = ChainQuery(self.engine.dialect)
        # SQLite: concurrent writes share one fsync (see group_commit.py). PostgreSQL
        # commits concurrent transactions in parallel by itself.
        self._group = GroupCommitter(self.engine) if self._sqlite else None
        self._ensure_root(root_owner)

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        if write and self._group is not None:
            with self._group.transaction() as conn:
                yield conn
            return
        with transaction(self.engine, write) as conn:
            yield conn

    def _ensure_root(self, owner: str) -> None:
        with self._tx(write=True) as conn:
            if conn.execute(select(nodes.c.id).where(nodes.c.path == "")).first() is None:
                now = time.time()
                conn.execute(insert(nodes).values(
                    path="", parent=None, name="", type=NodeType.CONTAINER.value, owner=owner,
                    length=0, created=now, modified=now, props="{}"))

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def _to_node(row: Row | NodeRow | SimpleNamespace) -> Node:
        properties: dict[str, str | None] = json.loads(row.props)
        properties[props.CREATOR] = row.owner
        properties[props.DATE] = props.format_date(row.modified)
        properties[props.LENGTH] = str(row.length)
        if row.md5:
            properties[props.MD5] = row.md5
        node = Node(path=row.path, type=NodeType(row.type), properties=with_defaults(properties),
                    target=row.target)
        if quota.quota_of(node) is not None:
            properties[props.AVAILABLE_SPACE] = quota.available_space(node)
        return node

    def _chain(self, conn: Connection, path: str) -> list[NodeRow]:
        wanted = uris.ancestors(path) + [path]
        rows = self._chain_query.rows(conn, wanted)
        chain = []
        for p in wanted:
            row = rows.get(p)
            if row is None:
                raise NodeNotFound(p)
            if row.type == NodeType.LINK.value and p != path:
                raise LinkFound(p)
            chain.append(row)
        return chain

    def resolve(self, path: str) -> list[Node]:
        with self._tx() as conn:
            return [self._to_node(r) for r in self._chain(conn, path)]

    def list_children(self, path: str, start: str | None = None,
                      limit: int | None = None) -> list[Node]:
        query = select(nodes).where(nodes.c.parent == path).order_by(nodes.c.name)
        if start is not None:
            query = query.where(nodes.c.name >= start)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [self._to_node(r) for r in conn.execute(query)]

    # -- writing ------------------------------------------------------------------------
    def create(self, node: Node, owner: str,
               check: Callable[[list[Node]], None] | None = None) -> Node:
        parent = uris.parent_of(node.path)
        stored = {k: v for k, v in storable_properties(node.properties).items() if v is not None}
        now = time.time()
        with self._tx(write=True) as conn:
            try:
                chain = self._chain(conn, parent)
            except NodeNotFound:
                raise ContainerNotFound(parent) from None
            if check is not None:
                check([self._to_node(r) for r in chain])
            if node.type is not NodeType.LINK:  # inheritPermissions of the parent folder
                stored = {k: v for k, v in inherited(json.loads(chain[-1].props), stored,
                                                     node.is_container).items() if v is not None}
            if chain[-1].type == NodeType.LINK.value:
                raise LinkFound(parent)
            if chain[-1].type != NodeType.CONTAINER.value:
                raise ContainerNotFound(f"{parent} is not a container")
            values = dict(path=node.path, parent=parent, name=uris.name_of(node.path),
                          type=node.type.value, owner=owner, length=0, md5=None, created=now,
                          modified=now, target=node.target, props=json.dumps(stored))
            try:  # the unique index on path is the duplicate check: one statement, no race
                conn.execute(INSERT_NODE, values)
            except IntegrityError:
                raise DuplicateNode(node.path) from None
            return self._to_node(SimpleNamespace(**values))  # the row as inserted

    def update_properties(self, path: str, changes: dict[str, str | None]) -> Node:
        changes = storable_properties(changes)
        with self._tx(write=True) as conn:
            row = self._chain(conn, path)[-1]
            merged = apply_changes(json.loads(row.props), changes)
            conn.execute(update(nodes).where(nodes.c.id == row.id).values(props=json.dumps(merged)))
            return self._to_node(conn.execute(select(nodes).where(nodes.c.id == row.id)).one())

    def delete(self, path: str) -> None:
        if path == "":
            raise PermissionDenied("the root container cannot be deleted")
        with self._tx(write=True) as conn:
            row = self._chain(conn, path)[-1]
            keys = list(conn.execute(select(nodes.c.blob).where(
                subtree_clause(path), nodes.c.blob.isnot(None))).scalars())
            ids = list(conn.execute(select(nodes.c.id).where(subtree_clause(path))).scalars())
            keys += versions.remove_subtree(conn, ids)
            conn.execute(delete(nodes).where(subtree_clause(path)))
            usage.add(conn, path, -row.length)
        for key in keys:  # after the commit: a crash here leaves only orphans for fsck
            self.blobs.delete(key)

    def recount(self, path: str = "") -> int:
        """Recompute every container ``length`` below (and the usage above) ``path`` from
        its DataNodes; returns the bytes under ``path`` (``vospace quota recount``)."""
        with self._tx(write=True) as conn:
            return usage.recount(conn, self._chain(conn, path)[-1], subtree_clause(path))

    # -- moving and copying -------------------------------------------------------------
    def move(self, src: str, dest: str, replace: bool = False) -> Node:
        """Rename the subtree in one UPDATE (paths are rewritten, no bytes move); a node
        replaced at the destination goes in the same transaction."""
        if src == "":
            raise PermissionDenied("the root container cannot be moved")
        final = final_destination(self.resolve, src, dest, replace)
        cut = len(src) + 1  # SQL substr is 1-based: the suffix after ``src``
        doomed: list[str] = []
        with self._tx(write=True) as conn:
            row = self._chain(conn, src)[-1]
            parent = self._chain(conn, uris.parent_of(final))[-1]
            if parent.type != NodeType.CONTAINER.value:
                raise ContainerNotFound(f"/{parent.path} is not a container")
            if replace:
                doomed = self._remove_replaced(conn, row, final)
            prefix = literal(final, PathText)
            try:
                conn.execute(update(nodes).where(subtree_clause(src)).values(
                    path=prefix + func.substr(nodes.c.path, cut),
                    parent=case((nodes.c.path == src, uris.parent_of(final)),
                                else_=prefix + func.substr(nodes.c.parent, cut)),
                    name=case((nodes.c.path == src, uris.name_of(final)), else_=nodes.c.name)))
            except IntegrityError:  # the destination appeared meanwhile
                raise DuplicateNode(f"/{final}") from None
            usage.add(conn, src, -row.length)
            usage.add(conn, final, row.length, exempt=frozenset(uris.ancestors(src)))
            self._impose_inherited(conn, parent, final)
            moved = self._to_node(conn.execute(select(nodes).where(nodes.c.path == final)).one())
        for key in doomed:  # after the commit, as in delete
            self.blobs.delete(key)
        return moved

    @staticmethod
    def _impose_inherited(conn: Connection, parent: Row, final: str) -> None:
        """A subtree moved or copied to ``final`` under an inheriting folder ``parent`` takes
        the folder's permissions (common.imposed), in the transaction that placed it."""
        folder = json.loads(parent.props)
        if not inherits(folder):
            return
        rows = conn.execute(select(nodes.c.id, nodes.c.type, nodes.c.props).where(
            subtree_clause(final), nodes.c.type != NodeType.LINK.value)).all()
        for row in rows:
            changes = imposed(folder, row.type == NodeType.CONTAINER.value)
            conn.execute(update(nodes).where(nodes.c.id == row.id).values(
                props=json.dumps(apply_changes(json.loads(row.props), changes))))

    def _remove_replaced(self, conn: Connection, row: Row, final: str) -> list[str]:
        """Delete the node a replacing move overwrites (rename(2)'s rules); its blob keys."""
        old = conn.execute(select(nodes).where(nodes.c.path == final)).first()
        if old is None:
            return []
        container = NodeType.CONTAINER.value
        if old.type == container and row.type != container:
            raise DuplicateNode(f"/{final} is a container")
        if old.type != container and row.type == container:
            raise DuplicateNode(f"/{final} is not a container")
        if old.type == container and conn.execute(
                select(nodes.c.id).where(nodes.c.parent == final).limit(1)).first():
            raise DuplicateNode(f"/{final} is a container that is not empty")
        keys = ([old.blob] if old.blob else []) + versions.remove_subtree(conn, [old.id])
        conn.execute(delete(nodes).where(nodes.c.id == old.id))
        usage.add(conn, final, -old.length)
        return keys

    def copy(self, src: str, dest: str, owner: str,
             check: Callable[[], None] | None = None) -> Node:
        """Copy the subtree's rows (owned by ``owner``) and their blobs (BlobStore.copy)."""
        final = final_destination(self.resolve, src, dest)
        with self._tx() as conn:
            self._chain(conn, src)
            rows = list(conn.execute(select(nodes).where(subtree_clause(src))
                                     .order_by(nodes.c.path)))
        keys: list[str] = []
        try:
            copies = []
            for row in rows:
                if check is not None:
                    check()
                key = None
                if row.blob:
                    key = new_key()
                    self.blobs.copy(row.blob, key)
                    keys.append(key)
                path = final + row.path[len(src):]
                copies.append(dict(
                    path=path, parent=uris.parent_of(path), name=uris.name_of(path),
                    type=row.type, owner=owner, length=row.length, md5=row.md5,
                    created=time.time(), modified=row.modified, target=row.target,
                    props=row.props, blob=key))
            with self._tx(write=True) as conn:
                parent = self._chain(conn, uris.parent_of(final))[-1]
                if parent.type != NodeType.CONTAINER.value:
                    raise ContainerNotFound(f"/{parent.path} is not a container")
                try:
                    conn.execute(insert(nodes), copies)
                except IntegrityError:
                    raise DuplicateNode(f"/{final}") from None
                usage.add(conn, final, rows[0].length)
                self._impose_inherited(conn, parent, final)
                return self._to_node(conn.execute(select(nodes).where(nodes.c.path == final)).one())
        except FileNotFoundError:  # a blob was replaced by an upload meanwhile
            for key in keys:
                self.blobs.delete(key)
            raise NodeBusy(f"/{src} changed during the copy; try again") from None
        except BaseException:
            for key in keys:
                self.blobs.delete(key)
            raise

    # -- bytes --------------------------------------------------------------------------
    def _writable_target(self, conn: Connection, path: str,
                         check: Check | None = None) -> tuple[NodeRow | None, list[NodeRow]]:
        """In one query: the DataNode row at ``path`` (None if it does not exist yet) and the
        rows of its parent's chain, which must end in a container. ``check`` sees the chain
        (down to the node if it exists) before anything is said about the node's kind."""
        parent = uris.parent_of(path)
        wanted = uris.ancestors(path)
        rows = self._chain_query.rows(conn, wanted + [path])
        chain = []
        for p in wanted:
            row = rows.get(p)
            if row is None:
                raise ContainerNotFound(parent)
            if row.type == NodeType.LINK.value:
                raise LinkFound(p)
            chain.append(row)
        row = rows.get(path)
        if check is not None:
            check([self._to_node(r) for r in (chain if row is None else chain + [row])])
        if chain[-1].type != NodeType.CONTAINER.value:
            raise ContainerNotFound(f"{parent} is not a container")
        if row is not None and row.type == NodeType.LINK.value:
            raise LinkFound(path)
        if row is not None and row.type != NodeType.DATA.value:
            raise InvalidArgument(f"/{path} is a container; only DataNodes hold bytes")
        return row, chain

    def begin_write(self, path: str, owner: str, content_type: str | None = None,
                    check: Check | None = None) -> Upload:
        if path == "":
            raise InvalidArgument("the root container holds no bytes")
        with self._tx() as conn:
            row, parent_rows = self._writable_target(conn, path, check)
        chain = [self._to_node(r) for r in parent_rows]
        key = new_key()
        upload = VaultUpload(self.blobs, key, functools.partial(
            self._publish, path, owner, content_type, key))
        upload.limit = quota.upload_limit(chain, row.length if row is not None else 0)
        return upload

    def _publish(self, path: str, owner: str, content_type: str | None, key: str, md5: str,
                 length: int) -> Node:
        """Point the node at blob ``key`` (creating the node if needed) in one transaction."""
        now = time.time()
        with self._tx(write=True) as conn:
            row, parent_rows = self._writable_target(conn, path)
            values = dict(blob=key, md5=md5, length=length, modified=now)
            if row is None:
                stored = {props.TYPE: content_type} if content_type else {}
                stored = {k: v for k, v in inherited(json.loads(parent_rows[-1].props or "{}"),
                                                     stored).items() if v is not None}
                published = dict(path=path, parent=uris.parent_of(path),
                                 name=uris.name_of(path), type=NodeType.DATA.value, owner=owner,
                                 created=now, target=None, props=json.dumps(stored), **values)
                conn.execute(insert(nodes).values(**published))
                doomed, old_length = [], 0
            else:
                old_props = json.loads(row.props)
                if content_type:
                    values["props"] = json.dumps(apply_changes(old_props,
                                                               {props.TYPE: content_type}))
                conn.execute(update(nodes).where(nodes.c.id == row.id).values(**values))
                published = {**row._asdict(), **values}
                doomed = versions.keep(conn, row, old_props.get(props.TYPE), self.retention)
                old_length = row.length
            # The chain was read in this transaction: only ancestors holding a quota need
            # their new lengths checked.
            usage.add(conn, path, length - old_length,
                      quota_holders=[r.path for r in parent_rows if usage.holds_quota(r)])
            node = self._to_node(SimpleNamespace(**published))  # the row as written
        for old_key in doomed:  # after the commit, as in delete
            self.blobs.delete(old_key)
        return node

    # -- versions (see versions.py) -----------------------------------------------------
    def _data_row(self, conn: Connection, path: str) -> Row:
        row = self._chain(conn, path)[-1]
        if row.type != NodeType.DATA.value:
            raise InvalidArgument(f"/{path} is not a DataNode; only DataNodes have versions")
        return row

    def _version(self, conn: Connection, path: str, number: int) -> versions.Version:
        found = versions.one(conn, self._data_row(conn, path).id, number)
        if found is None:
            raise NodeNotFound(f"/{path} has no version {number}")
        return found

    def list_versions(self, path: str) -> list[versions.Version]:
        """The kept versions of DataNode ``path``, oldest first."""
        with self._tx() as conn:
            return versions.listing(conn, self._data_row(conn, path).id)

    def open_version(self, path: str, number: int) -> ReadHandle:
        with self._tx() as conn:
            found = self._version(conn, path, number)
        try:
            return self.blobs.open(found.blob, found.md5, found.modified)
        except FileNotFoundError:  # pruned or deleted meanwhile
            raise NodeNotFound(f"/{path} has no version {number}") from None

    def restore_version(self, path: str, number: int, owner: str) -> Node:
        """Make version ``number`` current again; the current content becomes a version."""
        with self._tx() as conn:
            found = self._version(conn, path, number)
        key = new_key()
        try:
            self.blobs.copy(found.blob, key)
        except FileNotFoundError:
            raise NodeNotFound(f"/{path} has no version {number}") from None
        try:
            return self._publish(path, owner, found.content_type, key, found.md5 or "",
                                 found.length)
        except BaseException:
            self.blobs.delete(key)
            raise

    def prune_versions(self) -> int:
        """Apply the retention to all versions (``vospace versions prune``, e.g. daily from
        cron; writes prune their own node's versions anyway); returns how many went."""
        with self._tx(write=True) as conn:
            keys = versions.prune_all(conn, self.retention)
        for key in keys:
            self.blobs.delete(key)
        return len(keys)

    def delete_version(self, path: str, number: int) -> None:
        with self._tx(write=True) as conn:
            self._version(conn, path, number)
            key = versions.remove(conn, self._data_row(conn, path).id, number)
        if key:
            self.blobs.delete(key)

    def open_read(self, path: str) -> ReadHandle:
        for _attempt in range(3):
            with self._tx() as conn:
                row = self._chain(conn, path)[-1]
            if row.type != NodeType.DATA.value:
                raise InvalidArgument(f"/{path} is not a DataNode")
            if not row.blob:
                return EmptyReadHandle(row.modified)
            try:
                return self.blobs.open(row.blob, row.md5, row.modified, row.name)
            except FileNotFoundError:  # replaced meanwhile: the row now names a newer blob
                continue
        raise InternalFault(f"the bytes of /{path} are missing; run vospace fsck")

    def blob_references(self) -> dict[str, str]:
        """blob key -> node path, for fsck."""
        with self._tx() as conn:
            return dict(conn.execute(select(nodes.c.blob, nodes.c.path)
                                     .where(nodes.c.blob.isnot(None))).all())

    def version_references(self) -> dict[str, str]:
        """blob key -> "<path>@v<number>" of kept versions, so fsck keeps those blobs."""
        with self._tx() as conn:
            return versions.blob_references(conn)

    def forget_blob(self, path: str) -> None:
        """fsck repair of a node whose blob is gone: it becomes an empty DataNode."""
        with self._tx(write=True) as conn:
            row = self._chain(conn, path)[-1]
            conn.execute(update(nodes).where(nodes.c.id == row.id)
                         .values(blob=None, md5=None, length=0))
            usage.add(conn, path, -row.length)

    def stored_copies(self, path: str) -> str | None:
        if not isinstance(self.blobs, ReplicatedBlobStore):
            return None
        with self._tx() as conn:
            row = self._chain(conn, path)[-1]
        return self.blobs.describe(row.blob) if row.blob else None

    def close(self) -> None:
        if self._group is not None:
            self._group.close()
        self.engine.dispose()


class VaultUpload(Upload):
    """Bytes into a new blob ``key``; ``record(md5, length)`` then points the node at it in
    one transaction (the tree's ``_publish``), or the blob is deleted again."""

    def __init__(self, blobs: BlobStore, key: str, record: Callable[[str, int], Node]) -> None:
        super().__init__(blobs.writer(key))
        self.blobs, self.key, self.record = blobs, key, record

    def _publish(self, md5: str, length: int) -> Node:
        self.temp.sync()
        self.temp.publish()
        try:
            return self.record(md5, length)
        except BaseException:
            self.blobs.delete(self.key)
            raise
