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

log = logging.getLogger("arcfs")

FILL_CHUNK = 4 << 20
NO_QUOTA = 1 << 50          # statfs size shown when no quota applies (1 PiB)
BLOCK = 4096
NAME_MAX = 255
BIG_DIR = 256              # entries from which an expired listing is refetched whole


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

    def close(self) -> None:
        """Upload what is still dirty (best effort) and drop local state."""
        for spool in list(self.spools.values()):
            if spool.dirty and not spool.unlinked:
                try:
                    self._upload(spool)
                except OSError as exc:
                    log.error("%s: not uploaded at unmount: %s", spool.path, exc)
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
                children = self._relist_big(parent)
            if isinstance(children, dict):
                if name not in children:
                    raise fs_error(errno.ENOENT)
                if children[name] is not None:
                    return children[name]
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
        spool = self.spools.get(path)
        if spool is not None:
            size = spool.size()
            ns = int(spool.mtime * 1e9)
            return self._stat(stat.S_IFREG | 0o600, size, ns, 1)
        node = self.node(path)
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
        with remote_errors():
            children = {child.name: child for child in self.client.iterdir(self.remote(path))}
        self.listings.put(path, children)
        return children

    def _relist_big(self, parent: str) -> dict[str, Node | None] | None:
        """A lookup in a big directory whose listing just expired (``ls -l`` of 10,000
        entries outlasting the TTL) lists it again, once for all the threads asking,
        rather than fetching its children one request each."""
        stale = self.listings.get_stale(parent)
        if not isinstance(stale, dict) or len(stale) < BIG_DIR:
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
        prefix = path.rstrip("/") + "/"
        pending = [p[len(prefix):] for p in list(self.spools)
                   if p.startswith(prefix) and "/" not in p[len(prefix):]]
        return [".", ".."] + names + [n for n in pending if n not in names]

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
                    quota, used = int(value), node.size
                    break
            if probe == "/":
                break
            probe = self._parent(probe)
        total = quota if quota is not None else NO_QUOTA
        free = max(total - (used or 0), 0)
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": total // BLOCK,
                "f_bfree": free // BLOCK, "f_bavail": free // BLOCK, "f_files": 1 << 32,
                "f_ffree": 1 << 31, "f_favail": 1 << 31, "f_namemax": 255}

    # ---- containers and links ------------------------------------------------------------
    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._require_parent(path)
        with remote_errors():
            self.client.mkdir(self.remote(path))
        self._created(path)

    def _require_parent(self, path: str) -> None:
        if not self.node(self._parent(path)).isdir:
            raise fs_error(errno.ENOTDIR)

    def rmdir(self, path: str) -> None:
        if path == "/":
            raise fs_error(errno.EBUSY)
        if not self.node(path).isdir:
            raise fs_error(errno.ENOTDIR)
        if self.listdir(path, fresh=True):
            raise fs_error(errno.ENOTEMPTY)
        with remote_errors():
            self.client.delete(self.remote(path))
        self._removed(path)

    def unlink(self, path: str) -> None:
        spool = self.spools.get(path)
        try:
            node = self.node(path)
        except OSError:
            if spool is None:
                raise
            node = None
        if node is not None and node.isdir:
            raise fs_error(errno.EISDIR)
        if spool is not None:
            self._detach(spool)
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
        spool = self.spools.get(old)
        if spool is not None and spool.dirty and not spool.unlinked:
            self._upload(spool)
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
        node = self.node(path)
        if node.islink:
            return
        changes = permission_changes(node, mode, self.o.group)
        if changes:
            self._set_props(path, changes)

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
        spool = self.spools.get(path)
        if spool is not None:
            spool.mtime = ns / 1e9
            if spool.dirty:
                self._upload(spool)
        node = self.node(path)
        if node.islink:
            return
        self._set_props(path, {MTIME_PROP: mtime_stamp(node, ns)})

    def listxattr(self, path: str) -> list[str]:
        return xattr_names(self.node(path))

    def getxattr(self, path: str, name: str) -> bytes:
        uri = xattr_uri(name)
        value = self.node(path).props.get(uri)
        if value is None:
            raise fs_error(errno.ENODATA)
        return value.encode()

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0) -> None:
        uri = xattr_uri(name)
        exists = self.node(path).props.get(uri) is not None
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
        if self.node(path).props.get(uri) is None:
            raise fs_error(errno.ENODATA)
        self._set_props(path, {uri: None})

    # ---- file data ------------------------------------------------------------------------
    def _open_range(self, remote: Remote):
        def open_range(start: int, end: int):
            with remote_errors():
                return self.client.open_stream(remote, start, end)
        return open_range

    def _fill(self, spool: Spool, remote: Remote, size: int) -> None:
        """Copy the remote content into a fresh spool (opened for writing, no O_TRUNC)."""
        with remote_errors():
            stream = self.client.open_stream(remote, 0, size)
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

    def open(self, path: str, flags: int) -> tuple[int, bool]:
        """A handle and whether the kernel may keep its cached pages (the content's ETag is
        the one seen at the previous open)."""
        writing = flags & os.O_ACCMODE != os.O_RDONLY
        if writing or flags & os.O_TRUNC:
            node = None if path in self.spools else self.node(path)
            if node is not None and node.isdir:
                raise fs_error(errno.EISDIR)
            spool = self._spool_for(path, node, truncate=bool(flags & os.O_TRUNC))
            return self.handles.add(Handle(path, spool=spool, writable=writing,
                                           append=bool(flags & os.O_APPEND))), False
        spool = self.spools.get(path)
        if spool is not None:
            with self.lock:
                spool.refs += 1
            return self.handles.add(Handle(path, spool=spool)), False
        node = self.node(path)
        if node.isdir:
            raise fs_error(errno.EISDIR)
        keep = node.md5 is not None and self.seen_md5.get(path) == node.md5
        self.seen_md5[path] = node.md5
        reader = RangeReader(self._open_range(self.remote(path)), node.size)
        return self.handles.add(Handle(path, reader=reader)), keep

    def create(self, path: str, mode: int = 0o644, flags: int = os.O_WRONLY) -> int:
        """A new, empty file; it reaches the server when the handle is flushed or closed."""
        parent = self.node(self._parent(path))
        if not parent.isdir:
            raise fs_error(errno.ENOTDIR)
        existing = self.node_or_none(path)
        if existing is not None:
            if flags & os.O_EXCL:
                raise fs_error(errno.EEXIST)
            if existing.isdir:
                raise fs_error(errno.EISDIR)
        spool = self._spool_for(path, None, truncate=existing is not None)
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
        with spool.lock:
            if handle.append:
                offset = spool.size()
            size = spool.size()
            if self.o.cache_size and offset + len(data) > size:
                self._check_space(offset + len(data) - size)
            # Any write at 0 into an empty spool may start streaming: not only a new file's
            # (dd and shell redirections open, dup2 and close first, and that flush already
            # created the empty file on the server).
            if spool.stream is None and offset == 0 and size == 0:
                spool.stream = self._start_stream(spool)
            written = spool.pwrite(data, offset)
            if spool.stream is not None:
                spool.stream.appended(offset, written)
            return written

    def _start_stream(self, spool: Spool) -> StreamingUpload:
        remote = self.remote(spool.path)
        content_type = mimetypes.guess_type(spool.path)[0] or "application/octet-stream"
        return StreamingUpload(
            spool.fd, lambda chunks: self.client.put_chunks(remote, chunks, content_type),
            spool.path)

    def _check_space(self, growth: int) -> None:
        used = sum(s.size() for s in list(self.spools.values()))
        if used + growth > self.o.cache_size:
            raise fs_error(errno.ENOSPC, "the local write cache (--cache-size) is full")

    def truncate(self, path: str, length: int) -> None:
        if length < 0:
            raise fs_error(errno.EINVAL)
        spool = self.spools.get(path)
        if spool is not None:
            with spool.lock:
                if spool.stream is not None and length != spool.size():
                    spool.stream.abort()
                spool.truncate(length)
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
        """Send the spool's content; returns once the server has stored it (or raises)."""
        with spool.lock:
            if not spool.dirty or spool.unlinked:
                return
            remote = self.remote(spool.path)
            content_type = mimetypes.guess_type(spool.path)[0] or "application/octet-stream"
            size = spool.size()
            stream, spool.stream = spool.stream, None
            with remote_errors():
                md5 = stream.finish(size) if stream is not None else None
            if md5 is None:
                with remote_errors(), open(spool.name, "rb") as fh:
                    md5 = self.client.put_stream(remote, fh, size, content_type)
            spool.dirty = False
            previous = self.attrs.get(spool.path)
            self._created(spool.path, self._uploaded_node(remote, previous, size, md5))
        self.seen_md5.pop(spool.path, None)

    def _uploaded_node(self, remote: Remote, previous, size: int, md5: str) -> Node:
        """The node as the upload left it, without asking: the server keeps the node's
        other properties on a PUT, and dates it about now."""
        props = dict(previous.props) if isinstance(previous, Node) else {}
        props.update({P.LENGTH: str(size), P.MD5: md5, P.DATE: P.format_date(time.time()),
                      P.TYPE: mimetypes.guess_type(remote.path)[0]})
        props.pop(MTIME_PROP, None)
        return Node(uri="", path=remote.path, type=DATA, props=props)

    def flush(self, fh: int) -> None:
        handle = self.handles.get(fh)
        if handle.writable and handle.spool is not None:
            self._upload(handle.spool)

    fsync = flush

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
            if spool.refs == 1 and spool.dirty and not spool.unlinked:
                self._upload(spool)   # written after the last flush (e.g. through mmap)
        except OSError as exc:
            log.error("%s: upload at release failed: %s", spool.path, exc)
        finally:
            self._drop(spool)
