"""The filesystem: POSIX operations over ``vosclient.Client``, with no FUSE import.

Every method takes mount-relative paths (``/a/b``) and raises ``OSError(errno)`` on failure,
so the adapter only forwards calls and tests can drive it without a mount. Semantics, the
errno table and the consistency model are in ``SEMANTICS.md``.
"""
from __future__ import annotations

import errno
import logging
import mimetypes
import os
import posixpath
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote, unquote

from vosclient.client import Client
from vosclient.nodes import DATA, Node
from vosclient.transfer import NEGOTIATE_FROM
from vosclient.uris import Remote, normalize
from vospace_server.protocol import properties as P

from .cache import TTLCache
from .errnos import fs_error, remote_errors
from .handles import Handle, Handles
from .modes import mode_of, permission_changes
from .properties import (MTIME_PROP, UTIME_NOW, UTIME_OMIT, mtime_ns, mtime_stamp,
                         xattr_names, xattr_uri)
from .reader import RangeReader
from .spool import Spool
from .upload import StreamingUpload
from .writeback import WriteBack

log = logging.getLogger("arcfs")

FILL_CHUNK = 4 << 20
NO_QUOTA = 1 << 50          # statfs size shown when no quota applies (1 PiB)
BLOCK = 4096
NAME_MAX = 255
STREAM_FROM = 1 << 20      # a file sent while written once it holds this much


@dataclass
class Options:
    service: str = "arc"
    root: str = ""
    mountpoint: str = ""
    cache_dir: str | None = None
    attr_ttl: float = 1.0
    dir_ttl: float = 1.0
    group: str | None = None        # group URI granted by chmod g+r/g+w when a node has none
    cache_size: int = 0             # max spooled bytes (0: no limit); beyond it writes: ENOSPC
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    clock: Callable[[], float] = time.monotonic  # what the caches' TTLs are measured by


class ArcFS:
    """POSIX operations on one VOSpace service subtree (``root``) through ``client``."""

    def __init__(self, client: Client, options: Options | None = None) -> None:
        self.client = client
        self.o = options or Options()
        self.root = normalize(self.o.root)
        self.cache_dir = self.o.cache_dir or tempfile.mkdtemp(prefix="arcfs-cache-")
        os.makedirs(self.cache_dir, exist_ok=True)
        self.attrs: TTLCache[Node | None] = TTLCache(self.o.attr_ttl, clock=self.o.clock)
        # listing of a directory: child name -> its node (None: made here, not yet fetched)
        self.listings: TTLCache[dict[str, Node | None]] = TTLCache(self.o.dir_ttl,
                                                                   clock=self.o.clock)
        self.relist_locks: dict[str, threading.Lock] = {}
        self.spools: dict[str, Spool] = {}
        self.handles = Handles()
        self.seen_md5: dict[str, str | None] = {}
        self.lock = threading.RLock()
        self.writeback = WriteBack()

    def close(self) -> None:
        """Unmount: upload what is still dirty, wait for every pending upload, log what did
        not arrive, and drop local state."""
        for spool in list(self.spools.values()):
            self._write_back(spool)
        for failure in self.writeback.drain():
            log.error("%s: not uploaded at unmount: %s", failure.what, failure.error)
        for spool in list(self.spools.values()):
            spool.discard()
        self.spools.clear()

    # ---- addressing ---------------------------------------------------------------------
    def remote(self, path: str) -> Remote:
        rel = normalize(path)
        return Remote(self.o.service, f"{self.root}/{rel}".strip("/") if self.root else rel)

    @staticmethod
    def _parent(path: str) -> str:
        parent = os.path.dirname(path.rstrip("/"))
        return parent or "/"

    def _created(self, path: str, node: Node | None = None) -> None:
        """This mount made ``path``: add it to its parent's cached listing (keeping that
        listing's expiry) and cache its node when known."""
        name = os.path.basename(path)
        self.listings.update(self._parent(path), lambda children: {**children, name: node})
        if node is not None:
            self.attrs.put(path, node)
        else:
            self.attrs.pop(path)

    def _removed(self, path: str) -> None:
        """This mount removed ``path``: a negative entry, and gone from the listing."""
        name = os.path.basename(path)
        self.listings.update(self._parent(path),
                             lambda children: {k: v for k, v in children.items() if k != name})
        self.attrs.pop_tree(path)
        self.listings.pop_tree(path)
        self.attrs.put(path, None)

    # ---- metadata -----------------------------------------------------------------------
    def node_or_none(self, path: str) -> Node | None:
        """The node at ``path``, or None where there is none (other errors still raise)."""
        try:
            return self.node(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return None

    def node(self, path: str) -> Node:
        """The node at ``path`` (from the cache when fresh); ENOENT if there is none."""
        if len(os.path.basename(path).encode()) > NAME_MAX:
            raise fs_error(errno.ENAMETOOLONG)
        cached = self.attrs.get(path)
        if cached is None:
            raise fs_error(errno.ENOENT)
        if isinstance(cached, Node):
            return cached
        if path != "/":
            parent, name = self._parent(path), os.path.basename(path)
            children = self.listings.get(parent)
            if not isinstance(children, dict):
                children = self._relist(parent)
            if isinstance(children, dict):
                if name not in children:
                    raise fs_error(errno.ENOENT)
                if children[name] is not None:
                    return children[name]
        return self._fetch_node(path)

    def _fetch_node(self, path: str) -> Node:
        """The node at ``path`` as the server has it now, cached."""
        try:
            with remote_errors():
                node = self.client.get_node(self.remote(path))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                self.attrs.put(path, None)
            raise
        self.attrs.put(path, node)
        return node

    def getattr(self, path: str) -> dict:
        written = self._spool_stat(path)
        return written if written is not None else self._node_stat(self.node(path))

    def _spool_stat(self, path: str) -> dict | None:
        """The attributes of a file written here (its upload pending or not): its spool's."""
        with self.lock:    # a spool in the map is not discarded meanwhile
            spool = self.spools.get(path)
            if spool is None:
                return None
            return self._stat(stat.S_IFREG | 0o600, spool.size(), int(spool.mtime * 1e9), 1)

    def _node_stat(self, node: Node) -> dict:
        size = len(node.target or "") if node.islink else node.size
        return self._stat(mode_of(node), size, mtime_ns(node), 2 if node.isdir else 1)

    def _stat(self, mode: int, size: int, ns: int, nlink: int) -> dict:
        return {"st_mode": mode, "st_size": size, "st_nlink": nlink, "st_uid": self.o.uid,
                "st_gid": self.o.gid, "st_mtime": ns, "st_ctime": ns, "st_atime": ns,
                "st_blocks": (size + 511) // 512, "st_blksize": 1 << 20}

    def listdir(self, path: str, fresh: bool = False) -> list[str]:
        return list(self._listing(path, fresh))

    def _listing(self, path: str, fresh: bool = False) -> dict[str, Node | None]:
        """The children of a directory with their nodes (one request per 5,000)."""
        children = None if fresh else self.listings.get(path)
        if isinstance(children, dict):
            return children
        pending = self._pending_in(path)
        with remote_errors():
            children = {child.name: child for child in
                        self.client.iterdir(self.remote(path), detail="properties")}
        # an upload that finished while the listing was on its way: it is there too
        for name, spool in pending.items():
            if name not in children and not spool.unlinked and \
                    spool.path == f"{path.rstrip('/')}/{name}":
                children[name] = None
        self.listings.put(path, children)
        return children

    def _pending_in(self, path: str) -> dict[str, Spool]:
        """The files of directory ``path`` written here and not uploaded (or not yet)."""
        prefix = path.rstrip("/") + "/"
        with self.lock:
            return {p[len(prefix):]: s for p, s in self.spools.items()
                    if p.startswith(prefix) and "/" not in p[len(prefix):]}

    def _relist(self, parent: str) -> dict[str, Node | None] | None:
        """A lookup in a directory whose listing expired (``ls -l`` of 10,000 entries
        outlasting the TTL, ``tar -x`` creating names in a directory it made) lists it
        again, once for all the threads asking, rather than fetching its children one
        request each."""
        if not isinstance(self.listings.get_stale(parent), dict):
            return None
        with self.lock:
            lock = self.relist_locks.setdefault(parent, threading.Lock())
        with lock:
            children = self.listings.get(parent)
            if isinstance(children, dict):
                return children
            try:
                return self._listing(parent, fresh=True)
            except OSError:
                return None

    def readdir(self, path: str) -> list[str]:
        if not self.node(path).isdir:
            raise fs_error(errno.ENOTDIR)
        names = self.listdir(path)
        pending = self._pending_in(path)
        listed = set(names)
        return [".", ".."] + names + [n for n in pending if n not in listed]

    def listed_stat(self, path: str) -> dict | None:
        """What ``getattr`` of a just-listed entry answers when this mount knows it without
        asking the server (a pending upload's spool, the node cache, the parent's listing;
        in that order, as ``getattr``), else None. ``readdirplus`` hands it to the kernel
        with the entry, so ``ls -l`` needs no lookup per entry; it is asked while each
        chunk of the listing is sent, so that what the kernel gets is as fresh as a
        lookup's answer (the kernel drops attributes older than a write it saw)."""
        written = self._spool_stat(path)
        if written is not None:
            return written
        cached = self.attrs.get(path)
        if cached is None:
            return None
        if not isinstance(cached, Node):
            children = self.listings.get(self._parent(path))
            cached = children.get(os.path.basename(path)) if isinstance(children, dict) \
                else None
        return None if cached is None else self._node_stat(cached)

    def statfs(self, path: str = "/") -> dict:
        """Quota and usage of the nearest container with a quota (else the mount root's)."""
        quota, used = None, None
        probe = path if path else "/"
        while True:
            try:
                node = self.node(probe)
            except OSError:
                node = None
            if node is not None and node.isdir:
                used = node.size if used is None else used
                value = node.props.get(P.QUOTA)
                if value and value.isdigit():
                    quota = int(value)
                    break
            if probe == "/":
                break
            probe = self._parent(probe)
        pending = self._pending_bytes(probe)
        if quota is not None:
            # the usage asked afresh, after the pending bytes are summed: a cached size
            # predates the uploads this mount finished since (their bytes were then in
            # neither), and one finishing in between is counted twice, not missed
            used = self._fetch_node(probe).size
        total = quota if quota is not None else NO_QUOTA
        free = max(total - (used or 0) - pending, 0)
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": total // BLOCK,
                "f_bfree": free // BLOCK, "f_bavail": free // BLOCK, "f_files": 1 << 32,
                "f_ffree": 1 << 31, "f_favail": 1 << 31, "f_namemax": 255}

    def _pending_bytes(self, path: str) -> int:
        """Bytes written below ``path`` through this mount and not uploaded yet (this
        mount's ``df`` counts them, as it shows the files)."""
        prefix = path.rstrip("/") + "/"
        with self.lock:
            return sum(s.size() for p, s in self.spools.items()
                       if s.dirty and p.startswith(prefix))

    # ---- containers and links ------------------------------------------------------------
    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._require_parent(path)
        with remote_errors():
            self.client.mkdir(self.remote(path))
        self._created(path)
        self.listings.put(path, {})       # new, so empty: lookups of names in it are local

    def _require_parent(self, path: str) -> None:
        if not self.node(self._parent(path)).isdir:
            raise fs_error(errno.ENOTDIR)

    def rmdir(self, path: str) -> None:
        if path == "/":
            raise fs_error(errno.EBUSY)
        if not self.node(path).isdir:
            raise fs_error(errno.ENOTDIR)
        if self.listdir(path, fresh=True) or any(p.startswith(path + "/")
                                                 for p in list(self.spools)):
            raise fs_error(errno.ENOTEMPTY)
        with remote_errors():
            self.client.delete(self.remote(path))
        self._removed(path)

    def unlink(self, path: str) -> None:
        spool = self.spools.get(path)
        if spool is not None:
            self._detach(spool)       # after an upload in flight, which may create the node
        try:
            node = self.node(path)
        except OSError:
            if spool is None:
                raise
            node = None
        if node is not None and node.isdir:
            raise fs_error(errno.EISDIR)
        if node is not None:
            with remote_errors():
                self.client.delete(self.remote(path))
        self._removed(path)

    def symlink(self, path: str, target: str) -> None:
        """``ln -s target path``: a LinkNode. The server wants a URI, so a target inside the
        mount becomes its node URI (arc stores it as a relative symlink; other clients
        resolve it) and any other path a ``file://`` URI."""
        self._require_parent(path)
        if not target:
            raise fs_error(errno.ENOENT)
        mount = self.o.mountpoint.rstrip("/")
        inner: str | None = None
        if not os.path.isabs(target):
            inner = posixpath.normpath(posixpath.join(self._parent(path), target))
        elif mount and (target == mount or target.startswith(mount + "/")):
            inner = target[len(mount):] or "/"
        with remote_errors():
            stored = self.client.node_uri(self.remote(inner)) if inner is not None \
                else "file://" + quote(target)
            self.client.link(self.remote(path), stored)
        self._created(path)

    def readlink(self, path: str) -> str:
        """Links to nodes inside the mount read back relative to the link's directory."""
        node = self.node(path)
        if not node.islink:
            raise fs_error(errno.EINVAL)
        target = node.target or ""
        with remote_errors():
            base = self.client.base_uri(self.o.service) + "/"
        if target.startswith(base):
            inner = normalize(target[len(base):])
            if not self.root or inner == self.root or inner.startswith(self.root + "/"):
                dest = "/" + inner[len(self.root):].lstrip("/")
                return posixpath.relpath(dest, self._parent(path))
        if target.startswith("file://"):
            return unquote(target[len("file://"):])
        return target

    def _detach(self, spool) -> None:
        """An open file's name is gone (unlinked, or replaced by a rename): its handles keep
        working on the spool, which is never uploaded under that name again."""
        with self.lock:
            spool.unlinked = True
            if self.spools.get(spool.path) is spool:
                self.spools.pop(spool.path)
        with spool.lock:
            stream, spool.stream = spool.stream, None
            if stream is not None:
                stream.abort()

    def rename(self, old: str, new: str) -> None:
        """One server-side move; an existing destination is replaced atomically in that same
        move, as POSIX says (the save-by-rename of editors never loses the old file)."""
        if old == new:
            return
        if new.startswith(old.rstrip("/") + "/"):
            raise fs_error(errno.EINVAL)
        with self.lock:   # what is pending there goes first, as the move must see it
            pending = [s for p, s in self.spools.items() if p in (old, new)
                       or p.startswith(old.rstrip("/") + "/") or p.startswith(new + "/")]
        for spool in pending:
            if not spool.unlinked:
                self._upload(spool)   # now, or after the pending upload in flight
        src = self.node(old)
        self._require_parent(new)
        dst = self.node_or_none(new)
        if dst is not None:
            if dst.isdir:
                if not src.isdir:
                    raise fs_error(errno.EISDIR)
                if self.listdir(new, fresh=True):
                    raise fs_error(errno.ENOTEMPTY)
            elif src.isdir:
                raise fs_error(errno.ENOTDIR)
        with remote_errors():
            self.client.move(self.remote(old), self.remote(new), replace=dst is not None)
        if dst is not None:
            replaced = self.spools.get(new)
            if replaced is not None:
                self._detach(replaced)
            self._removed(new)
        self._removed(old)
        self.attrs.pop(new)
        self._created(new)
        with self.lock:
            for key in [k for k in self.spools if k == old or k.startswith(old + "/")]:
                moved = self.spools.pop(key)
                moved.path = new + key[len(old):]
                self.spools[moved.path] = moved
            self.handles.renamed(old, new)
            self.seen_md5.pop(old, None)

    # ---- ACL and properties ---------------------------------------------------------------
    def chmod(self, path: str, mode: int) -> None:
        """o+r <-> ispublic; g+r / g+w <-> groupread / groupwrite (the node's group, or the
        mount's --group when it has none; without either, g bits cannot be granted)."""
        if self._defer(path, mode=mode):
            return
        node = self.node(path)
        if node.islink:
            return
        changes = permission_changes(node, mode, self.o.group)
        if changes:
            self._set_props(path, changes)

    def _defer(self, path: str, **change: int) -> bool:
        """A ``chmod`` or ``utimens`` of a file open with unsent writes (``tar`` sets both
        before ``close``): kept with the spool and sent right after its upload, in one
        request (True). False when nothing is unsent, once a queued upload is done (a
        closed file is changed on the server, as any other)."""
        spool = self.spools.get(path)
        if spool is None:
            return False
        self.writeback.settle(spool)
        with spool.lock:
            if not spool.dirty or spool.unlinked:
                return False
            spool.deferred.update(change)
            if "mtime_ns" in change:
                spool.mtime = change["mtime_ns"] / 1e9
            return True

    def _apply_deferred(self, spool: Spool) -> None:
        """After an upload: the chmod and utimens kept for it (see ``_defer``)."""
        deferred, spool.deferred = spool.deferred, {}
        if not deferred:
            return
        node = self.node(spool.path)
        changes = {}
        if "mode" in deferred:
            changes.update(permission_changes(node, deferred["mode"], self.o.group))
        if "mtime_ns" in deferred:
            changes[MTIME_PROP] = mtime_stamp(node, deferred["mtime_ns"])
        if changes:
            self._set_props(spool.path, changes)

    def _set_props(self, path: str, changes: dict[str, str | None]) -> Node:
        known = self.node(path)
        with remote_errors():
            node = self.client.set_props(self.remote(path), changes, current=known)
        self.attrs.put(path, node)
        name = os.path.basename(path)
        self.listings.update(self._parent(path),
                             lambda children: {**children, name: node} if name in children
                             else children)
        return node

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        """The server's dates are its own; a time set here is kept in a property and shown
        as long as the content is unchanged."""
        ns = times[1] if times else UTIME_NOW
        if ns == UTIME_OMIT:
            return
        if ns == UTIME_NOW:
            ns = time.time_ns()
        if self._defer(path, mtime_ns=ns):
            return
        node = self.node(path)
        if node.islink:
            return
        self._set_props(path, {MTIME_PROP: mtime_stamp(node, ns)})

    def _settled(self, path: str) -> Node:
        """The node once a pending upload of it is done (its properties are the server's)."""
        spool = self.spools.get(path)
        if spool is not None:
            self.writeback.settle(spool)
        return self.node(path)

    def listxattr(self, path: str) -> list[str]:
        return xattr_names(self._settled(path))

    def getxattr(self, path: str, name: str) -> bytes:
        uri = xattr_uri(name)
        value = self._settled(path).props.get(uri)
        if value is None:
            raise fs_error(errno.ENODATA)
        return value.encode()

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0) -> None:
        uri = xattr_uri(name)
        exists = self._settled(path).props.get(uri) is not None
        if flags & os.XATTR_CREATE and exists:
            raise fs_error(errno.EEXIST)
        if flags & os.XATTR_REPLACE and not exists:
            raise fs_error(errno.ENODATA)
        try:
            text = value.decode()
        except UnicodeDecodeError:
            raise fs_error(errno.EINVAL, "property values are text") from None
        self._set_props(path, {uri: text})

    def removexattr(self, path: str, name: str) -> None:
        uri = xattr_uri(name)
        if self._settled(path).props.get(uri) is None:
            raise fs_error(errno.ENODATA)
        self._set_props(path, {uri: None})

    # ---- file data ------------------------------------------------------------------------
    def _open_range(self, remote: Remote, size: int):
        """The range reads of one handle: a big file's go to the pre-authorized URL a pull
        negotiation hands out (the data port), negotiated at its first read and then kept,
        a small file's to /files (see vosclient/sources.py; an expired or refused URL falls
        back to /files for the rest of the handle)."""
        source = self.client.byte_source(remote, negotiate=size >= NEGOTIATE_FROM)

        def open_range(start: int, end: int):
            with remote_errors():
                return source.open(start, end)
        return open_range

    def _fill(self, spool: Spool, remote: Remote, size: int) -> None:
        """Copy the remote content into a fresh spool (opened for writing, no O_TRUNC)."""
        with remote_errors():
            stream = self.client.open_stream(remote, 0, size, negotiate=size >= NEGOTIATE_FROM)
            try:
                spool.fill(iter(lambda: stream.read(FILL_CHUNK), b""))
            finally:
                stream.close()

    def _spool_for(self, path: str, node: Node | None, truncate: bool) -> Spool:
        with self.lock:
            spool = self.spools.get(path)
            if spool is None:
                spool = Spool(self.cache_dir, path)
                self.spools[path] = spool
                fresh = True
            else:
                fresh = False
            spool.refs += 1
        with spool.lock:
            if fresh and node is not None and node.size and not truncate:
                try:
                    self._fill(spool, self.remote(path), node.size)
                except OSError:
                    self._drop(spool)
                    raise
            if fresh and node is None:
                spool.dirty = True          # a new file: close creates it even if empty
            if truncate and (spool.size() or node is None or node.size):
                spool.truncate(0)
        return spool

    def _drop(self, spool: Spool) -> None:
        with self.lock:
            spool.refs -= 1
            if spool.refs > 0:
                return
            if self.spools.get(spool.path) is spool:
                del self.spools[spool.path]
        spool.discard()

    def _hold(self, path: str) -> Spool | None:
        """The spool of ``path`` (written here, its upload pending or not), with a reference
        taken under the lock: it stays in the map, its bytes with it, until ``_drop``."""
        with self.lock:
            spool = self.spools.get(path)
            if spool is not None:
                spool.refs += 1
            return spool

    def open(self, path: str, flags: int) -> tuple[int, bool]:
        """A handle and whether the kernel may keep its cached pages (the content's ETag is
        the one seen at the previous open)."""
        writing = flags & os.O_ACCMODE != os.O_RDONLY
        if writing or flags & os.O_TRUNC:
            # held while the handle's own spool is taken: an upload finishing meanwhile
            # must not leave a fresh empty spool taken for a new file (appends and patches
            # of its content would replace it on the server)
            pending = self._hold(path)
            try:
                node = None if pending is not None else self.node(path)
                if node is not None and node.isdir:
                    raise fs_error(errno.EISDIR)
                spool = self._spool_for(path, node, truncate=bool(flags & os.O_TRUNC))
            finally:
                if pending is not None:
                    self._drop(pending)
            return self.handles.add(Handle(path, spool=spool, writable=writing,
                                           append=bool(flags & os.O_APPEND))), False
        spool = self._hold(path)   # a pending upload's spool: read-after-write sees its bytes
        if spool is not None:
            return self.handles.add(Handle(path, spool=spool)), False
        node = self.node(path)
        if node.isdir:
            raise fs_error(errno.EISDIR)
        keep = node.md5 is not None and self.seen_md5.get(path) == node.md5
        self.seen_md5[path] = node.md5
        reader = RangeReader(self._open_range(self.remote(path), node.size), node.size)
        return self.handles.add(Handle(path, reader=reader)), keep

    def create(self, path: str, mode: int = 0o644, flags: int = os.O_WRONLY) -> int:
        """A new, empty file; its upload is queued when the handle is flushed or closed."""
        parent = self.node(self._parent(path))
        if not parent.isdir:
            raise fs_error(errno.ENOTDIR)
        pending = self._hold(path)     # written here, maybe not on the server yet (see open)
        try:
            existing = None if pending is not None else self.node_or_none(path)
            if pending is not None or existing is not None:
                if flags & os.O_EXCL:
                    raise fs_error(errno.EEXIST)
                if existing is not None and existing.isdir:
                    raise fs_error(errno.EISDIR)
            spool = self._spool_for(path, None,
                                    truncate=pending is not None or existing is not None)
        finally:
            if pending is not None:
                self._drop(pending)
        if existing is not None:
            spool.dirty = True
        return self.handles.add(Handle(path, spool=spool, writable=True))

    def read(self, fh: int, size: int, offset: int) -> bytes:
        handle = self.handles.get(fh)
        if handle.spool is not None:
            return handle.spool.pread(size, offset)
        assert handle.reader is not None
        return handle.reader.read(offset, size)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        handle = self.handles.get(fh)
        if not handle.writable or handle.spool is None:
            raise fs_error(errno.EBADF)
        spool = handle.spool
        if self.o.cache_size:   # before the lock: it may wait for queued uploads of this spool
            size = spool.size()
            end = (size if handle.append else offset) + len(data)
            if end > size:
                self._check_space(end - size)
        with spool.lock:
            if handle.append:
                offset = spool.size()
            size = spool.size()
            # A file growing by appends is sent while written once it is big enough to be
            # worth a connection of its own (small files go whole, after close). Whatever
            # the spool holds goes first: a new file's bytes, or a file opened without
            # O_TRUNC and appended to.
            if spool.stream is None and offset == size and size + len(data) >= STREAM_FROM:
                spool.stream = self._start_stream(spool)
                spool.stream.appended(0, size)
            if spool.stream is None or spool.stream.aborted:
                return spool.pwrite(data, offset)
            return self._stream_write(spool, spool.stream, data, offset)

    @staticmethod
    def _stream_write(spool: Spool, stream: StreamingUpload, data: bytes, offset: int) -> int:
        """A write while the file streams: copied into the upload's buffers, sent from
        memory and written to the spool from there, both behind the writer's back; what
        no buffer is free for goes to the spool and is read back from it to be sent."""
        taken = stream.write(offset, data)
        if taken:
            spool.written_behind()
        if taken == len(data):
            return taken
        written = spool.pwrite(memoryview(data)[taken:], offset + taken)
        stream.appended(offset + taken, written)
        return taken + written

    def _start_stream(self, spool: Spool) -> StreamingUpload:
        remote = self.remote(spool.path)
        content_type = mimetypes.guess_type(spool.path)[0] or "application/octet-stream"
        return StreamingUpload(
            spool.fd, lambda chunks: self.client.put_chunks(remote, chunks, content_type,
                                                            tls_suffices=True, negotiate=True),
            spool.path, spool.pwrite_direct)

    def _check_space(self, growth: int) -> None:
        """ENOSPC when the spools would outgrow --cache-size, once the pending uploads
        (whose spools then go) are done."""
        for attempt in range(2):
            with self.lock:
                used = sum(s.size() for s in self.spools.values())
            if used + growth <= self.o.cache_size:
                return
            if not attempt:
                self.writeback.idle()
        raise fs_error(errno.ENOSPC, "the local write cache (--cache-size) is full")

    def truncate(self, path: str, length: int) -> None:
        if length < 0:
            raise fs_error(errno.EINVAL)
        spool = self._hold(path)
        if spool is not None:
            try:
                with spool.lock:
                    if spool.stream is not None and length != spool.size():
                        spool.stream.abort()
                    spool.truncate(length)
                self._write_back(spool)
            finally:
                self._drop(spool)
            return
        node = self.node(path)
        if node.isdir:
            raise fs_error(errno.EISDIR)
        if length == node.size:
            return
        spool = self._spool_for(path, node, truncate=False)
        try:
            with spool.lock:
                spool.truncate(length)
            self._upload(spool)
        finally:
            self._drop(spool)

    def _upload(self, spool: Spool) -> None:
        """Send the spool's content, then the chmod/utimens kept for it; returns once the
        server has stored them (or raises)."""
        with spool.lock:
            if not spool.dirty or spool.unlinked:
                return
            remote = self.remote(spool.path)
            content_type = mimetypes.guess_type(spool.path)[0] or "application/octet-stream"
            size = spool.size()
            stream, spool.stream = spool.stream, None
            with remote_errors():
                streamed, md5 = stream.finish(size) if stream is not None else (False, None)
            if not streamed:
                spool.settle()   # a spool that lacks bytes written behind is not sent
                # through its descriptor: the spool file's name may be gone (unmounted
                # and its cache directory removed while this upload waited)
                with remote_errors(), os.fdopen(os.dup(spool.fd), "rb") as fh:
                    fh.seek(0)
                    md5 = self.client.put_stream(remote, fh, size, content_type)
            spool.dirty = False
            previous = self.attrs.get(spool.path)
            self._created(spool.path, self._uploaded_node(remote, previous, size, md5))
            self.seen_md5.pop(spool.path, None)
            self._apply_deferred(spool)

    def _uploaded_node(self, remote: Remote, previous, size: int, md5: str | None) -> Node:
        """The node as the upload left it, without asking: the server keeps the node's
        other properties on a PUT, and dates it about now."""
        props = dict(previous.props) if isinstance(previous, Node) else {}
        props.update({P.LENGTH: str(size), P.MD5: md5, P.DATE: P.format_date(time.time()),
                      P.TYPE: mimetypes.guess_type(remote.path)[0]})
        props.pop(MTIME_PROP, None)
        return Node(uri="", path=remote.path, type=DATA, props=props)

    def _write_back(self, spool: Spool) -> None:
        """Queue the spool's upload (the job holds a reference: the spool, and what this
        mount shows of the file, stay until the server has it)."""
        if not spool.dirty or spool.unlinked:
            return
        with self.lock:
            spool.refs += 1
        if not self.writeback.submit(spool, spool.path, lambda: self._upload_queued(spool),
                                     lambda: self._drop(spool)):
            self._drop(spool)      # the pending job uploads once more after its current run

    def _upload_queued(self, spool: Spool) -> None:
        """A queued upload. One that fails is reported (see ``WriteBack``) and its bytes are
        not sent again, as the kernel drops pages whose writeback failed: no retries
        behind the program's back, each failure reported once."""
        try:
            self._upload(spool)
        except OSError:
            with spool.lock:
                spool.dirty = False
                spool.deferred = {}
            raise

    def _report_failure(self) -> None:
        """A pending upload that failed since the last report: returned by this call."""
        failure = self.writeback.take_failure()
        if failure is not None:
            raise fs_error(failure.error.errno or errno.EIO,
                           f"{failure.what} was not stored: {failure.error.strerror}")

    def flush(self, fh: int) -> None:
        """``close``: the upload is queued, not awaited; an earlier upload's failure not
        reported yet is returned here."""
        handle = self.handles.get(fh)
        if handle.writable and handle.spool is not None:
            self._write_back(handle.spool)
            self._report_failure()

    def fsync(self, fh: int) -> None:
        """Returns once the file's content is on the server, or with the error that kept it
        from getting there."""
        handle = self.handles.get(fh)
        if handle.spool is not None:
            self._write_back(handle.spool)
            self.writeback.wait(handle.spool)

    def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        if handle is None:
            return
        if handle.reader is not None:
            handle.reader.close()
        spool = handle.spool
        if spool is None:
            return
        try:
            if spool.refs == 1:
                self._write_back(spool)   # written after the last flush (e.g. through mmap)
        finally:
            self._drop(spool)
