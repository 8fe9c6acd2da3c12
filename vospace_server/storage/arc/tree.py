"""ArcTree: the NodeTree over a POSIX directory tree.

Directories are ContainerNodes, regular files DataNodes and symlinks LinkNodes. The
server never follows a symlink: every path is checked component by component with
``lstat``, a symlink in the middle of a path is answered with LinkFound, and link
targets are only ever read as text. Files written directly on disk (by sessions through
the mounted filesystem) appear as nodes with their stat length and date; a file without
a creator attribute belongs to the owner of its container.
"""
from __future__ import annotations

import bisect
import functools
import os
import posixpath
import shutil
import stat
from contextlib import contextmanager
from typing import Callable, Iterator

from ...protocol import properties as props
from ...protocol import uris
from ...protocol.faults import (ContainerNotFound, DuplicateNode, InvalidArgument, LinkFound,
                                NodeNotFound)
from ...protocol.nodes import Node, NodeType
from ..common import imposed, inherited, inherits, storable_properties, with_defaults
from .. import quota, release
from ..placement import final_destination
from ..streams import TEMP_PREFIX, FileReadHandle, TempFile, Upload, md5_of_fd, temp_name
from ..tree import Check
from ..rules import refuse_protected
from . import beneath, copying, layout, posix_acl, snapshots, usage, xattrs
from .attribute_cache import AttributeCache

# What the .snapshots entry of a home or project takes over from it (read access).
policy_properties = (props.CREATOR, props.ISPUBLIC, props.GROUPREAD, props.GROUPWRITE)


class ArcTree:
    protected = layout.PROTECTED

    def __init__(self, root: str, root_owner: str, base_uri: str,
                 snapshot_dir: str | None = None, ids: posix_acl.IdMap | None = None) -> None:
        self.root = os.path.realpath(root)
        # Snapshots live outside the tree (see snapshots.py), shown as R/.snapshots/.
        self.snapshots = snapshots.SnapshotStore(self.root, snapshot_dir or self.root + "-snapshots")
        self.base_uri = base_uri  # vos://authority~arc, to express symlinks as vos URIs
        # With an id map, permissions live in owners, modes and ACLs (see posix_acl.py).
        self.ids = ids
        self.attributes = AttributeCache()
        os.makedirs(self.root, exist_ok=True)
        if xattrs.read_properties(self.root).get(props.CREATOR) is None:
            xattrs.write_property(self.root, props.CREATOR, root_owner)
        for name in layout.TOP_LEVEL:
            top = os.path.join(self.root, name)
            if not os.path.isdir(top):
                os.mkdir(top)

    def _fs(self, path: str) -> str:
        inside = snapshots.split(path)
        if inside is not None:
            return self.snapshots.path_of(*inside)
        return os.path.join(self.root, path) if path else self.root

    def _beneath(self, path: str) -> tuple[str, str]:
        """(directory, relative path) to open ``path`` from without following symlinks."""
        inside = snapshots.split(path)
        if inside is not None:
            return self.snapshots.folder(inside[0]), inside[1]
        return self.root, path

    # -- reading ------------------------------------------------------------------------
    def _node(self, path: str, st: os.stat_result, inherited_owner: str,
              attributes: xattrs.StoredAttributes | None = None) -> Node:
        """The node at ``path`` (lstat ``st``), from its stored ``attributes`` (read from
        the inode, or the cache, when not given)."""
        full = self._fs(path)
        if stat.S_ISLNK(st.st_mode):
            node_type, properties = NodeType.LINK, {}
        else:
            node_type = NodeType.CONTAINER if stat.S_ISDIR(st.st_mode) else NodeType.DATA
            if attributes is None:
                attributes = self.attributes.read(full, st)
            properties = dict(attributes.properties)
            if self.ids is not None:
                for uri, value in posix_acl.read_back(attributes.acl, st, self.ids,
                                                      properties).items():
                    if value is None:
                        properties.pop(uri, None)
                    else:
                        properties[uri] = value
        with_defaults(properties)
        if props.CREATOR not in properties and self.ids is not None:
            # made directly on disk (a session, a shell): its uid says whose it is, as cavern
            # reports owners; files of unmapped uids (root) belong to the folder's owner
            properties[props.CREATOR] = self.ids.user_of(st.st_uid) or inherited_owner
        properties.setdefault(props.CREATOR, inherited_owner)
        properties[props.DATE] = props.format_date(st.st_mtime)
        properties[props.LENGTH] = str(st.st_size if node_type is NodeType.DATA else 0)
        if node_type is NodeType.CONTAINER and props.QUOTA in properties:
            properties[props.LENGTH] = str(usage.parse_usage(attributes.internal) or 0)
            properties[props.AVAILABLE_SPACE] = quota.available_space(
                Node(path=path, type=node_type, properties=properties))
        if node_type is NodeType.DATA:
            md5 = xattrs.valid_md5(attributes.internal.get(xattrs.MD5), st)
            if md5:
                properties[props.MD5] = md5
        node = Node(path=path, type=node_type, properties=properties)
        if node_type is NodeType.LINK:
            node.target = self._link_target(path, os.readlink(full))
        return node

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self._fs(path))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def resolve(self, path: str) -> list[Node]:
        chain: list[Node] = []
        owner = ""
        for p in uris.ancestors(path) + [path]:
            st = self._lstat(p)
            if st is None:
                raise NodeNotFound(p)
            if chain and not chain[-1].is_container:
                raise NodeNotFound(p)
            node = self._node(p, st, owner)
            if chain and snapshots.split(p) == (chain[-1].path, ""):  # R/.snapshots: as R
                node.properties.update({u: v for u in policy_properties
                                        if (v := chain[-1].properties.get(u)) is not None})
            if node.is_link and p != path:
                raise LinkFound(p)
            owner = node.owner or owner
            chain.append(node)
        return chain

    def list_children(self, path: str, start: str | None = None,
                      limit: int | None = None) -> list[Node]:
        container = self.resolve(path)[-1]
        if not container.is_container:
            return []
        names = sorted(n for n in os.listdir(self._fs(path)) if not n.startswith(TEMP_PREFIX))
        first = bisect.bisect_left(names, start) if start is not None else 0
        page = names[first:] if limit is None else names[first:first + limit]
        children = []
        for name in page:
            child = uris.join(path, name)
            st = self._lstat(child)
            if st is not None:  # removed between listdir and lstat
                children.append(self._node(child, st, container.owner or ""))
        return children

    # -- links --------------------------------------------------------------------------
    def _link_target(self, path: str, text: str) -> str:
        """A symlink's text as a URI: in-tree relative links become vos URIs of this service."""
        if "://" in text or text.startswith("/"):
            return text
        resolved = posixpath.normpath(posixpath.join(uris.parent_of(path), text))
        if resolved == ".." or resolved.startswith("../"):
            return text
        return f"{self.base_uri}/{'' if resolved == '.' else resolved}"

    def _symlink_text(self, path: str, target: str) -> str:
        prefix = self.base_uri + "/"
        if target.startswith(prefix):
            dest = uris.normalize_path(target[len(prefix):])
            return posixpath.relpath(dest or ".", uris.parent_of(path) or ".")
        return target

    # -- writing ------------------------------------------------------------------------
    def create(self, node: Node, owner: str,
               check: Callable[[list[Node]], None] | None = None) -> Node:
        snapshots.refuse_write(node.path)
        parent = uris.parent_of(node.path)
        try:
            chain = self.resolve(parent)
        except NodeNotFound:
            raise ContainerNotFound(parent) from None
        if check is not None:
            check(chain)
        if chain[-1].is_link:
            raise LinkFound(parent)
        if not chain[-1].is_container:
            raise ContainerNotFound(f"{parent} is not a container")
        stored = storable_properties(node.properties)
        if node.is_link and any(v is not None for v in stored.values()):
            raise InvalidArgument("arc cannot store properties on a LinkNode")
        if not node.is_link:
            stored = inherited(chain[-1].properties, stored, node.is_container)
        # Everything below happens relative to a parent fd opened without following any
        # symlink, so a directory swapped for a symlink after the checks above cannot move
        # the new entry, or the properties written on it, outside the tree.
        name = uris.name_of(node.path)
        written = None
        parent_fd = beneath.open_dir(self.root, parent)
        try:
            entry_fd = self._make_entry(node, name, parent_fd)
            try:
                if entry_fd is not None:
                    written = self._write_attributes(entry_fd, node.is_container, owner, stored)
            except BaseException:
                self._remove_entry(parent_fd, name, node.is_container)
                raise
            finally:
                if entry_fd is not None:
                    os.close(entry_fd)
            # Built from one lstat rather than resolve(): the chain was just checked above.
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(parent_fd)
        return self._node(node.path, st, chain[-1].owner or "", written)

    def _write_attributes(self, fd: int, is_dir: bool, owner: str,
                          stored: dict[str, str | None]) -> xattrs.StoredAttributes:
        """Creator, properties and permissions of a new entry (``fd``); what it now holds,
        so that the node answered is built without reading the attributes back."""
        properties = {props.CREATOR: owner}
        xattrs.write_property(fd, props.CREATOR, owner)
        for uri, value in stored.items():
            if value is not None:
                xattrs.write_property(fd, uri, value)
                properties[uri] = value
        acl = self._apply_permissions(fd, is_dir, owner, stored)
        return xattrs.StoredAttributes(properties, {}, acl)

    def _make_entry(self, node: Node, name: str, parent_fd: int) -> int | None:
        """Create the directory, file or symlink; an fd of it (None for a symlink)."""
        try:
            if node.type is NodeType.CONTAINER:
                os.mkdir(name, dir_fd=parent_fd)
                return os.open(name, beneath.DIR_FLAGS, dir_fd=parent_fd)
            if node.type is NodeType.DATA:
                return os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                               | os.O_CLOEXEC, 0o644, dir_fd=parent_fd)
            os.symlink(self._symlink_text(node.path, node.target or ""), name, dir_fd=parent_fd)
            return None
        except FileExistsError:
            raise DuplicateNode(node.path) from None

    @staticmethod
    def _remove_entry(parent_fd: int, name: str, is_dir: bool) -> None:
        """Undo a half-made create (a fresh entry: an empty directory at most)."""
        try:
            if is_dir:
                os.rmdir(name, dir_fd=parent_fd)
            else:
                os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            pass

    def update_properties(self, path: str, changes: dict[str, str | None]) -> Node:
        snapshots.refuse_write(path)
        changes = storable_properties(changes)
        node = self.resolve(path)[-1]
        if node.is_link:
            if changes:
                raise InvalidArgument("arc cannot store properties on a LinkNode")
            return node
        full = self._fs(path)
        # Written through an fd opened without following any symlink, so an entry swapped
        # for a symlink after the checks cannot redirect the write outside the tree.
        fd = beneath.open_dir(*self._beneath(path)) if node.is_container else \
            beneath.open_file(*self._beneath(path), os.O_RDONLY | os.O_NONBLOCK)
        try:
            if node.type is NodeType.DATA and changes:
                beneath.check_single_link(os.fstat(fd), path)
            for uri, value in changes.items():
                xattrs.write_property(fd, uri, value)
            wanted = posix_acl.permissions(node.properties)
            if any(uri in changes for uri in wanted):
                wanted.update({u: v for u, v in changes.items() if u in wanted})
                self._apply_permissions(fd, node.is_container, node.owner or "", wanted)
        finally:
            os.close(fd)
        if changes.get(props.QUOTA) is not None and node.is_container and \
                usage.read_usage(full) is None:
            usage.recount(full)  # a new quota root: count what is already there, once
        return self.resolve(path)[-1]

    def _apply_permissions(self, target: int | str, is_dir: bool, owner: str,
                           wanted: dict[str, str | None]) -> bytes | None:
        """Owner, group, mode and ACLs from the permission properties (with an id map);
        the access ACL left on ``target`` (None: none, or no id map)."""
        if self.ids is None:
            return None
        return posix_acl.apply(target, is_dir, self.ids.uid(owner), wanted, self.ids,
                               inherit=wanted.get(props.INHERIT_PERMISSIONS) == "true")

    # -- quotas (see arc/usage.py) ---------------------------------------------------------
    def _quota_roots(self, chain: list[Node]) -> list[tuple[str, int]]:
        """The quota roots on ``chain`` as (full path, quota)."""
        return [(self._fs(n.path), q) for n in chain
                if n.is_container and (q := quota.quota_of(n)) is not None]

    def recount(self, path: str = "") -> int:
        """Re-walk every quota root at or below ``path`` (after direct disk changes);
        returns the bytes under ``path``."""
        node = self.resolve(path)[-1]
        for folder, dirs, _files in os.walk(self._fs(path)):
            dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
            if xattrs.read_internal(folder, usage.USAGE) is not None or \
                    props.QUOTA in xattrs.read_properties(folder):
                usage.recount(folder)
        return usage.tree_size(self._fs(path)) if node.is_container else node.length

    def restore_snapshot(self, root: str, stamp: str, rest: str = "") -> str:
        """Put ``rest`` (default: everything) of snapshot ``stamp`` of home or project
        ``root`` back, then count the root's usage again (the restored bytes replace
        others); returns the live path restored."""
        restored = self.snapshots.restore(root, stamp, rest)
        self.recount(root)
        return restored

    def delete(self, path: str) -> None:
        refuse_protected(self, path)
        snapshots.refuse_write(path)
        chain = self.resolve(path)
        full = self._fs(path)
        with usage.change(self._quota_roots(chain[:-1])) as roots:
            size = usage.tree_size(full) if roots.roots else 0  # walk only when counted
            self._remove(full)
            roots.add(-size)

    def _remove(self, full: str) -> None:
        """Remove by name inside the parent opened with no symlink followed (see beneath.py),
        so a directory swapped for a symlink after the check cannot redirect the deletion."""
        parent, _, name = os.path.relpath(full, self.root).rpartition("/")
        dir_fd = beneath.open_dir(self.root, parent)
        try:
            _remove_at(dir_fd, name)
        finally:
            os.close(dir_fd)

    # -- moving and copying (see copying.py) ---------------------------------------------
    def move(self, src: str, dest: str, replace: bool = False) -> Node:
        """A rename (into ``dest`` when it is a container). Only with ``replace`` does it
        replace an existing node, atomically, with rename(2)'s rules."""
        refuse_protected(self, src, "moved")
        src_chain = self.resolve(src)
        final = final_destination(self.resolve, src, dest, replace)
        refuse_protected(self, final, "replaced")
        for path in (src, final):
            snapshots.refuse_write(path)
        dest_roots = self._quota_roots(self.resolve(uris.parent_of(final)))
        src_roots = self._quota_roots(src_chain[:-1])
        shared = frozenset(r for r, _ in src_roots if r in {d for d, _ in dest_roots})
        with usage.locked([r for r, _ in src_roots + dest_roots]):
            counted = len(shared) < len(src_roots) or len(shared) < len(dest_roots)
            size = usage.tree_size(self._fs(src)) if counted else 0
            # what a replaced node held leaves every destination root, shared ones included
            replaced = usage.tree_size(self._fs(final)) if replace and dest_roots else 0
            usage.Roots(dest_roots).require(size - replaced, exempt=shared)
            self._rename(src, final, replace)
            usage.Roots(src_roots).add(-size, exempt=shared)
            usage.Roots(dest_roots).add(size, exempt=shared)
            usage.Roots(dest_roots).add(-replaced)
        return self._impose_inherited(final)

    @contextmanager
    def _parents(self, src: str, final: str) -> Iterator[tuple[int, int]]:
        """The directories holding ``src`` and ``final``, each opened without following a
        symlink, so that a parent swapped for a symlink after the checks cannot take a node
        out of the tree or bring an outside one in: moves and copies work by name in them."""
        src_dir = beneath.open_dir(*self._beneath(uris.parent_of(src)))
        try:
            dest_dir = beneath.open_dir(*self._beneath(uris.parent_of(final)))
            try:
                yield src_dir, dest_dir
            finally:
                os.close(dest_dir)
        finally:
            os.close(src_dir)

    def _rename(self, src: str, final: str, replace: bool) -> None:
        rename = copying.rename_replace if replace else copying.rename_noreplace
        with self._parents(src, final) as (src_dir, dest_dir):
            rename(uris.name_of(src), uris.name_of(final), src_dir, dest_dir)

    def copy(self, src: str, dest: str, owner: str,
             check: Callable[[], None] | None = None) -> Node:
        """Copy into a hidden temp name next to the destination, then rename it into place,
        so a copy interrupted half-way is never visible (fsck removes the temp). Both sides
        are reached through directories opened without following symlinks (copying.py)."""
        self.resolve(src)
        final = final_destination(self.resolve, src, dest)
        snapshots.refuse_write(final)
        temp = temp_name()
        dest_roots = self._quota_roots(self.resolve(uris.parent_of(final)))
        permissions = None
        if self.ids is not None:
            uid = self.ids.uid(owner)
            permissions = lambda s_fd, st, d_fd: posix_acl.copy_permissions(  # noqa: E731
                s_fd, st, d_fd, uid)
        with self._parents(src, final) as (src_dir, dest_dir):
            try:
                if dest_roots:  # refuse before any byte is copied
                    usage.Roots(dest_roots).require(usage.tree_size(self._fs(src)))
                copying.copy_tree(src_dir, uris.name_of(src), dest_dir, temp, owner,
                                  TEMP_PREFIX, check, permissions)
                with usage.change(dest_roots) as roots:
                    size = usage.tree_size(os.path.join(self._fs(uris.parent_of(final)), temp)) \
                        if dest_roots else 0
                    roots.require(size)
                    copying.rename_noreplace(temp, uris.name_of(final), dest_dir, dest_dir)
                    roots.add(size)
            except BaseException:
                try:
                    _remove_at(dest_dir, temp)  # the half-made copy
                except FileNotFoundError:
                    pass
                raise
        return self._impose_inherited(final)

    def _impose_inherited(self, final: str) -> Node:
        """A subtree moved or copied to ``final`` under a folder with inheritPermissions
        takes the folder's permissions (common.imposed; ACLs included) node by node, links
        aside; returns the node at ``final``."""
        chain = self.resolve(final)
        folder = chain[-2].properties
        if not inherits(folder) or chain[-1].is_link:
            return chain[-1]
        paths = [final]
        if chain[-1].is_container:
            for top, dirs, files in os.walk(self._fs(final)):
                rel = os.path.relpath(top, self.root)
                paths += [f"{rel}/{name}" for name in dirs + files
                          if not os.path.islink(os.path.join(top, name))]
        for path in paths:
            node = self.resolve(path)[-1]
            self.update_properties(path, imposed(folder, node.is_container))
        return self.resolve(final)[-1]

    # -- bytes --------------------------------------------------------------------------
    def begin_write(self, path: str, owner: str, content_type: str | None = None,
                    check: Check | None = None) -> Upload:
        """A hidden temp file in the node's own directory, renamed over the node on commit."""
        snapshots.refuse_write(path)
        parent = uris.parent_of(path)
        try:
            chain = self.resolve(path)
        except NodeNotFound as exc:
            if exc.detail != path:
                raise ContainerNotFound(parent) from None
            try:
                chain = self.resolve(parent) + [None]
            except NodeNotFound:
                raise ContainerNotFound(parent) from None
        if check is not None:
            check(chain if chain[-1] is not None else chain[:-1])
        if path == "" or not chain[-2].is_container:
            raise ContainerNotFound(f"{parent} is not a container")
        node = chain[-1]
        if node is not None and node.is_link:
            raise LinkFound(path)
        if node is not None and node.is_container:
            raise InvalidArgument(f"/{path} is a container; only DataNodes hold bytes")
        dir_fd = beneath.open_dir(self.root, parent)
        try:
            temp = TempFile(temp_name(), uris.name_of(path), dir_fd=dir_fd)
        except BaseException:
            os.close(dir_fd)
            raise
        file_owner = node.owner if node is not None else owner
        permissions = posix_acl.permissions(node.properties) if node is not None else \
            inherited(chain[-2].properties, {})
        upload = ArcUpload(self, path, temp, file_owner, content_type, functools.partial(
            self._apply_permissions, is_dir=False, owner=file_owner, wanted=permissions))
        upload.quota_roots = self._quota_roots(chain[:-1])
        upload.limit = quota.upload_limit(chain[:-1], quota.usage_of(node) if node else 0)
        return upload

    def open_read(self, path: str) -> FileReadHandle:
        node = self.resolve(path)[-1]
        if node.type is not NodeType.DATA:
            raise LinkFound(path) if node.is_link else InvalidArgument(f"/{path} is not a DataNode")
        fd = beneath.open_file(*self._beneath(path), os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument(f"/{path} is not a regular file")
            beneath.check_single_link(st, path)
            md5 = xattrs.valid_md5(xattrs.read_internal(fd, xattrs.MD5), st)
            if md5 is None:  # written directly on disk: compute once, remember for this stamp
                md5 = md5_of_fd(fd)
                if os.fstat(fd).st_mtime_ns == st.st_mtime_ns:
                    _record_md5(fd, md5, st)
            return FileReadHandle(fd, st.st_size, md5, st.st_mtime)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        pass


def _record_md5(fd: int, md5: str, st: os.stat_result) -> None:
    """Remember ``md5`` for exactly this size and mtime, if the filesystem lets us."""
    try:
        xattrs.write_md5(fd, md5, st)
    except OSError:
        pass  # read-only or xattr-less filesystem: computed again next time


class ArcUpload(Upload):
    """``permit(fd)`` gives the new inode its owner, mode and ACLs (the tree's id map)."""

    def __init__(self, tree: ArcTree, path: str, temp: TempFile, owner: str,
                 content_type: str | None, permit: Callable[[int], None]) -> None:
        super().__init__(temp)
        self.tree, self.path, self.owner, self.content_type = tree, path, owner, content_type
        self.permit = permit
        self.quota_roots: list[tuple[str, int]] = []

    def _publish(self, md5: str, length: int) -> Node:
        fd = self.temp.fd
        self.temp.flush()
        st = os.fstat(fd)  # final size and mtime; the xattrs below change neither
        # The file being replaced stays open until after the answer: its blocks are freed
        # then, not inside the rename (release.py).
        old = release.hold(self.temp.final_path, self.temp.dir_fd)
        try:
            if old is not None:
                _copy_properties(old, fd)
            os.setxattr(fd, xattrs.PREFIX + props.CREATOR, self.owner.encode())
            if self.content_type:
                os.setxattr(fd, xattrs.PREFIX + props.TYPE, self.content_type.encode())
            xattrs.write_md5(fd, md5, st)
            self.permit(fd)
            os.fsync(fd)
            with usage.change(self.quota_roots) as roots:
                delta = length - _size_of(self.temp.dir_fd, self.temp.final_path)
                roots.require(delta)
                self.temp.publish()
                roots.add(delta)
        finally:
            if old is not None:
                release.close_later(old)
        return self.tree.resolve(self.path)[-1]


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove entry ``name`` of directory fd ``dir_fd``, a directory with everything below
    it (never following a symlink); FileNotFoundError if it is not there."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass  # removed meanwhile: gone either way


def _size_of(dir_fd: int | None, name: str) -> int:
    """Size of the regular file an upload replaces (0 if none)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _copy_properties(old_fd: int, fd: int) -> None:
    """Carry the replaced file's properties (ispublic, groups, ...) over to the new inode."""
    for name in os.listxattr(old_fd):
        if name.startswith(xattrs.PREFIX) and not name.startswith(xattrs.INTERNAL):
            try:
                os.setxattr(fd, name, os.getxattr(old_fd, name))
            except OSError:
                pass
