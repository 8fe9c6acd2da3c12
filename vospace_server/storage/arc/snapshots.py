"""Arc snapshots: read-only point-in-time copies of each home and project.

Every home (``home/<user>``) and project (``projects/<name>``) is a snapshot root. A
snapshot ``<stamp>`` (UTC, ``20261125T130000Z``) of root ``R`` is stored under
``<snapshot_dir>/R/<stamp>/`` (setting ``snapshot_dir``, by default next to the arc tree and
never inside it) and shown through the VOSpace API as ``R/.snapshots/<stamp>/...``, like
CephFS's ``.snap``: ``.snapshots`` is not listed in ``R`` but can be opened, its content is
readable with the permissions the files had, and every write below it is refused.

Method (why a later write never changes a snapshot): each regular file is *copied* into
the snapshot, by reflink (``FICLONE``: shared extents, copy-on-write, instant) where the
filesystem supports it (btrfs, XFS, CephFS lacks it but has native snapshots), otherwise by
``copy_file_range``/read-write, a full copy. Hard links are not used: a session writing a
file in place (``open(..., "r+")``) through the mounted filesystem would change a
hard-linked snapshot too. Sessions cannot reach ``snapshot_dir`` at all (only the arc tree
is mounted), so snapshots are read-only for POSIX access as well. Files with several hard
links are left out (arc never serves those; see beneath.py). A snapshot is built under a
temp name and renamed into place, so a half-made snapshot is never visible.
"""
from __future__ import annotations

import calendar
import fcntl
import logging
import os
import shutil
import stat
import time
from contextlib import contextmanager
from typing import Iterator

from ...background import BackgroundLoop
from ...protocol import properties as props
from ...protocol.faults import InvalidArgument, NodeNotFound, PermissionDenied
from ..streams import TEMP_PREFIX, temp_name
from . import layout
from .copying import copy_bytes
from .xattrs import INTERNAL, PREFIX

ENTRY = ".snapshots"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 7 * 86400}
log = logging.getLogger(__name__)
_ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")


def is_root(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and parts[0] in layout.TOP_LEVEL


def split(path: str) -> tuple[str, str] | None:
    """``R/.snapshots/rest`` -> (R, rest) for a snapshot root R; None for live paths."""
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] in layout.TOP_LEVEL and parts[2] == ENTRY:
        return "/".join(parts[:2]), "/".join(parts[3:])
    return None


def refuse_write(path: str) -> None:
    if split(path) is not None:
        raise PermissionDenied(f"/{path} is in a snapshot; snapshots are read-only")


def new_stamp(now: float | None = None) -> str:
    return time.strftime(STAMP_FORMAT, time.gmtime(time.time() if now is None else now))


def _copy_xattrs(src: str, dest_fd: int, drop: frozenset[str] = frozenset()) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if (name.startswith(PREFIX) or name in _ACL_XATTRS) and name not in drop:
            try:
                os.setxattr(dest_fd, name, os.getxattr(src, name, follow_symlinks=False))
            except OSError:
                pass


def _finish(fd: int, st: os.stat_result) -> None:
    """Owner, mode and times of the original (we run as root; otherwise best effort)."""
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree(src: str, dest: str, top_drop: frozenset[str] = frozenset()) -> None:
    """Copy directory ``src`` to new path ``dest`` preserving xattrs, ACLs, owners, modes
    and mtimes; temp files of uploads and hard-linked files are left out."""
    dirs: list[tuple[str, os.stat_result]] = []
    stack = [(src, dest)]
    while stack:
        s, d = stack.pop()
        st = os.lstat(s)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                continue
            src_fd = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                fd = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
                try:
                    copy_bytes(src_fd, fd)
                    _copy_xattrs(s, fd)
                    _finish(fd, st)
                finally:
                    os.close(fd)
            finally:
                os.close(src_fd)
        elif stat.S_ISDIR(st.st_mode):
            os.mkdir(d, 0o700)
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                _copy_xattrs(s, fd, top_drop if s == src else frozenset())
            finally:
                os.close(fd)
            dirs.append((d, st))
            with os.scandir(s) as entries:
                stack.extend((e.path, os.path.join(d, e.name)) for e in entries
                             if not e.name.startswith(TEMP_PREFIX))
    for d, st in reversed(dirs):  # after the children, so directory mtimes stay as they were
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            _finish(fd, st)
        finally:
            os.close(fd)


class SnapshotStore:
    """Snapshots of the homes and projects of the arc tree at ``tree_root``."""

    def __init__(self, tree_root: str, store: str) -> None:
        self.tree_root, self.store = tree_root, os.path.realpath(store)
        os.makedirs(self.store, exist_ok=True)

    def _live(self, root: str) -> str:
        if not is_root(root):
            raise InvalidArgument(f"/{root} is not a home or project (home/NAME, projects/NAME)")
        full = os.path.join(self.tree_root, root)
        if not os.path.isdir(full) or os.path.islink(full):
            raise NodeNotFound(root)
        return full

    def folder(self, root: str) -> str:
        """Where the snapshots of ``root`` live (created on first use)."""
        self._live(root)
        full = os.path.join(self.store, root)
        os.makedirs(full, exist_ok=True)
        return full

    def path_of(self, root: str, rest: str) -> str:
        """The stored file behind ``root/.snapshots/rest``."""
        return os.path.join(self.folder(root), rest) if rest else self.folder(root)

    def roots(self) -> list[str]:
        found = []
        for top in layout.TOP_LEVEL:
            base = os.path.join(self.tree_root, top)
            with os.scandir(base) as entries:
                found += [f"{top}/{e.name}" for e in entries
                          if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
        return sorted(found)

    def list(self, root: str) -> list[str]:
        return sorted(n for n in os.listdir(self.folder(root)) if not n.startswith(TEMP_PREFIX))

    def create(self, root: str, stamp: str | None = None) -> str:
        live, folder = self._live(root), self.folder(root)
        stamp = stamp or new_stamp()
        if os.path.lexists(os.path.join(folder, stamp)):
            raise InvalidArgument(f"snapshot {stamp} of /{root} exists")
        temp = os.path.join(folder, temp_name())
        try:
            copy_tree(live, temp, top_drop=frozenset({PREFIX + props.QUOTA, INTERNAL + "usage"}))
            os.rename(temp, os.path.join(folder, stamp))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return stamp

    def _existing(self, root: str, stamp: str) -> str:
        if "/" in stamp or stamp.startswith(".") or stamp not in self.list(root):
            raise NodeNotFound(f"/{root}/{ENTRY}/{stamp}")
        return os.path.join(self.folder(root), stamp)

    def delete(self, root: str, stamp: str) -> None:
        shutil.rmtree(self._existing(root, stamp))

    def prune(self, root: str, keep: int) -> list[str]:
        """Delete the oldest snapshots beyond ``keep``; returns their stamps."""
        doomed = self.list(root)[:-keep] if keep > 0 else self.list(root)
        for stamp in doomed:
            self.delete(root, stamp)
        return doomed

    def restore(self, root: str, stamp: str, rest: str = "") -> str:
        """Put ``rest`` (a file or folder; default everything) of snapshot ``stamp`` back
        into the live tree, replacing what is there now; returns the live path restored.
        Whatever is replaced is removed only after the copy succeeded."""
        source = os.path.join(self._existing(root, stamp), rest) if rest else \
            self._existing(root, stamp)
        if not os.path.lexists(source):
            raise NodeNotFound(f"/{root}/{ENTRY}/{stamp}/{rest}")
        live = os.path.join(self._live(root), rest) if rest else self._live(root)
        parent = os.path.dirname(live) if rest else live
        os.makedirs(parent, exist_ok=True)
        staged = os.path.join(parent, temp_name())
        aside = os.path.join(parent, temp_name())
        try:
            copy_tree(source, staged)
            if rest:
                if os.path.lexists(live):
                    os.rename(live, aside)
                os.rename(staged, live)
            else:  # the root itself stays (its quota and permissions); its content changes
                os.mkdir(aside)
                for name in os.listdir(live):
                    if not name.startswith(TEMP_PREFIX):
                        os.rename(os.path.join(live, name), os.path.join(aside, name))
                for name in os.listdir(staged):
                    os.rename(os.path.join(staged, name), os.path.join(live, name))
        finally:
            for leftover in (staged, aside):
                if os.path.isdir(leftover) and not os.path.islink(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
                elif os.path.lexists(leftover):
                    os.unlink(leftover)
        return f"{root}/{rest}" if rest else root


class Scheduler(BackgroundLoop):
    """Takes a snapshot of every home and project once per period (``snapshot_schedule``)
    and keeps the newest ``keep``; several servers may run one: an flock on the store lets
    exactly one of them work at a time, and a root whose newest snapshot is recent enough
    is skipped, so each period yields one snapshot per root."""

    CHECK_EVERY = 60.0  # seconds between looks at the clock
    thread_name = "snapshots"

    def __init__(self, store: SnapshotStore, schedule: str, keep: int) -> None:
        if schedule not in PERIODS:
            raise ValueError(f"snapshot_schedule must be one of {', '.join(PERIODS)} or empty")
        super().__init__()
        self.store, self.period, self.keep = store, PERIODS[schedule], keep

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for taken in self.run_once():
                    log.info("snapshot %s", taken)
            except Exception:  # keep the schedule alive; the next pass tries again
                log.exception("scheduled snapshots failed")
            self._stop.wait(self.CHECK_EVERY)

    def due(self, root: str, now: float) -> bool:
        stamps = self.store.list(root)
        if not stamps:
            return True
        last = calendar.timegm(time.strptime(stamps[-1], STAMP_FORMAT))
        return now - last >= self.period

    def run_once(self, now: float | None = None) -> list[str]:
        """One pass over all roots; returns "root@stamp" of the snapshots taken."""
        now = time.time() if now is None else now
        taken = []
        with self._exclusive() as mine:
            if not mine:
                return taken
            for root in self.store.roots():
                try:
                    if self.due(root, now):
                        taken.append(f"{root}@{self.store.create(root, new_stamp(now))}")
                    self.store.prune(root, self.keep)
                except (NodeNotFound, InvalidArgument):
                    continue  # removed or already snapshotted meanwhile
        return taken

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        fd = os.open(os.path.join(self.store.store, ".schedule.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)
