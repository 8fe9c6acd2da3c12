"""The thin mfusepy layer: forwards each FUSE callback to :class:`arcfs.logic.ArcFS`.

Only FUSE specifics live here: the fuse_file_info flags (``keep_cache``), libfuse 3's
``init`` settings (max_read must match the mount option, kernel cache timeouts), the
mount's read-ahead, and the shape of the callbacks' arguments.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import threading
import time

import mfusepy

from .logic import ArcFS

log = logging.getLogger("arcfs")
MAX_READ = 1 << 20
# The kernel reads ahead at most min(this mount's backing device's read_ahead_kb, our
# max_readahead); the device starts at the kernel's 128 KiB default, so sequential reads
# came as 128 KiB requests, eight Python callbacks per MiB. Widened after the mount (as
# root). Measured on a 1 GiB dd: 128 KiB 450-500 MiB/s, 512 KiB 610-660, 1 MiB 670-770,
# 2 MiB 680-700, 4 MiB 320-350 (requests overtake the read-ahead worker).
READ_AHEAD_KB = 2048
FUSE_FILL_DIR_PLUS = 1 << 1      # libfuse 3: this entry's attributes are complete
FUSE_CAP_READDIRPLUS_AUTO = 1 << 14


_thread_kept = threading.local()


def keep_thread_state() -> None:
    """Keep this libfuse thread's Python thread state for the thread's life.

    A ctypes callback from a thread Python did not start makes a thread state on entry and
    deletes it on return (PyGILState_Ensure/Release), and with it the 16 KiB chunk of its
    frame stack: an mmap and a munmap per FUSE request, and each munmap flushes the TLBs
    of every core the process runs on. Measured with 10 KiB writes (``tar -x``): 2.5 of
    each per write, 22% of arcfs's CPU (untar of small files: 15%). One more Ensure, never
    released, keeps the state (and this thread-local flag, which lives in it) for the
    thread's life; libfuse's worker threads (10 at most) are not ended while mounted."""
    if not getattr(_thread_kept, "done", False):
        ctypes.pythonapi.PyGILState_Ensure()
        _thread_kept.done = True


class ReaddirPlusFUSE(mfusepy.FUSE):
    """mfusepy's FUSE whose ``readdir`` hands libfuse each entry's full attributes with
    ``FUSE_FILL_DIR_PLUS`` and its offset: libfuse 3.14 then answers the kernel's
    READDIRPLUS with them (its ``fill_dir_plus`` makes the entry's node without calling
    ``getattr``, but only for entries given with a non-zero offset), so ``ls -l`` of
    10,000 entries costs no LOOKUP per entry. mfusepy 3.1.1 passes only the file type
    and no flag, which leaves the kernel to look every entry up again."""

    def _wrapper(self, func, *args, **kwargs):
        keep_thread_state()
        return super()._wrapper(func, *args, **kwargs)

    def readdir_fuse_3(self, path, buf, filler, offset, fip, flags) -> int:
        st = mfusepy.c_stat()
        entries = self.operations.readdir_with_offset(None if path is None else path.decode(
            self.encoding, self.errors), offset, fip.contents.fh)
        for name, attrs, off in entries:
            encoded = name.encode(self.encoding, self.errors)
            if attrs:
                ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
                mfusepy.set_st_attrs(st, attrs, use_ns=True)
                full = filler(buf, encoded, st, off, FUSE_FILL_DIR_PLUS)
            else:
                full = filler(buf, encoded, None, off, 0)
            if full:
                break
        return 0


class ArcFSOperations(mfusepy.Operations):
    use_ns = True

    def __init__(self, fs: ArcFS, attr_ttl: float, dir_ttl: float, mountpoint: str) -> None:
        self.fs = fs
        self.mountpoint = mountpoint
        self.attr_ttl = attr_ttl
        self.dir_ttl = dir_ttl
        # open directory handle -> the names read at offset 0, which the kernel's later
        # requests (one per buffer of ~200 entries) continue from
        self.dirs: dict[int, list[str]] = {}
        self.dir_numbers = itertools.count(1)

    def init_with_config(self, conn, config) -> None:
        if conn is not None:
            if hasattr(conn, "max_read"):
                conn.max_read = MAX_READ
            conn.max_readahead = READ_AHEAD_KB << 10
            conn.max_write = MAX_READ
            conn.max_background = 64
            conn.congestion_threshold = 48
            # every chunk of a listing as READDIRPLUS, not only the first (the kernel's
            # "auto" mode reads the rest plain, and each of those entries costs a LOOKUP)
            conn.want &= ~FUSE_CAP_READDIRPLUS_AUTO
        if config is not None:
            config.entry_timeout = self.dir_ttl
            config.negative_timeout = self.dir_ttl
            config.attr_timeout = self.attr_ttl
            config.hard_remove = 1     # unlink of an open file: no .fuse_hidden renames
        threading.Thread(target=widen_read_ahead, args=(self.mountpoint, READ_AHEAD_KB),
                         name="arcfs-read-ahead-setting", daemon=True).start()

    def destroy(self, path) -> None:
        self.fs.close()

    def getattr(self, path, fh=None):
        return self.fs.getattr(path)

    def opendir(self, path):
        return next(self.dir_numbers)

    def readdir_with_offset(self, path, offset, fh):
        """The entries from ``offset`` on, each with its attributes (asked as the entry is
        sent, see ``ArcFS.listed_stat``) and the offset of the next one; offset 0 reads the
        directory afresh (``rewinddir`` too)."""
        if offset == 0 or fh not in self.dirs:
            self.dirs[fh] = self.fs.readdir(path)
        names = self.dirs[fh]
        prefix = path.rstrip("/") + "/"
        return ((names[i], None if i < 2 else self.fs.listed_stat(prefix + names[i]), i + 1)
                for i in range(offset, len(names)))

    def releasedir(self, path, fh):
        self.dirs.pop(fh, None)

    def statfs(self, path):
        return self.fs.statfs(path)

    def mkdir(self, path, mode):
        self.fs.mkdir(path, mode)

    def rmdir(self, path):
        self.fs.rmdir(path)

    def unlink(self, path):
        self.fs.unlink(path)

    def rename(self, old, new):
        self.fs.rename(old, new)

    def symlink(self, target, source):
        self.fs.symlink(target, source)

    def readlink(self, path):
        return self.fs.readlink(path)

    def chmod(self, path, mode):
        self.fs.chmod(path, mode)

    def chown(self, path, uid, gid):
        if uid not in (-1, self.fs.o.uid) or gid not in (-1, self.fs.o.gid):
            raise OSError(errno.EPERM, "ownership is the server's")

    def utimens(self, path, times=None):
        self.fs.utimens(path, times)

    def truncate(self, path, length, fh=None):
        self.fs.truncate(path, length)

    def open(self, path, fi):
        fi.fh, keep = self.fs.open(path, fi.flags)
        fi.keep_cache = 1 if keep else 0
        return 0

    def create(self, path, mode, fi):
        fi.fh = self.fs.create(path, mode, fi.flags)
        return 0

    def read(self, path, size, offset, fi):
        return self.fs.read(fi.fh, size, offset)

    def write(self, path, data, offset, fi):
        return self.fs.write(fi.fh, data, offset)

    def flush(self, path, fi):
        self.fs.flush(fi.fh)

    def fsync(self, path, datasync, fi):
        self.fs.fsync(fi.fh)

    def release(self, path, fi):
        self.fs.release(fi.fh)

    def getxattr(self, path, name, position=0):
        return self.fs.getxattr(path, name)

    def setxattr(self, path, name, value, options, position=0):
        self.fs.setxattr(path, name, value, options)

    def listxattr(self, path):
        return self.fs.listxattr(path)

    def removexattr(self, path, name):
        self.fs.removexattr(path, name)

    def access(self, path, amode):
        self.fs.getattr(path)     # existence; the server enforces permissions


def widen_read_ahead(mountpoint: str, kib: int, timeout: float = 10.0) -> None:
    """Set the mount's ``read_ahead_kb`` once the kernel has its answer to ``init`` (which
    sets the device's read-ahead to the smaller of the two): the ``stat`` of the mount's
    root waits for that, and tells the device. Root only, and not where /sys is read-only
    (many containers): reads then stay at 128 KiB requests, slower but the same."""
    parent_device = os.stat(os.path.dirname(os.path.abspath(mountpoint))).st_dev
    deadline = time.monotonic() + timeout
    while (device := os.stat(mountpoint).st_dev) == parent_device:
        if time.monotonic() > deadline:
            return  # never mounted: the mount's own error says why
        time.sleep(0.05)
    setting = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
    try:
        with open(setting, "w") as fh:
            fh.write(str(kib))
    except OSError as exc:
        log.info("read-ahead left at the kernel's default (%s: %s)", setting, exc.strerror)


def mount(fs: ArcFS, mountpoint: str, foreground: bool = True, attr_ttl: float = 1.0,
          dir_ttl: float = 1.0, allow_other: bool = False, fsname: str = "arcfs") -> None:
    """Serve ``fs`` at ``mountpoint`` until it is unmounted (blocks)."""
    mountpoint = os.fspath(mountpoint)
    options = {"fsname": fsname, "subtype": "arcfs", "max_read": MAX_READ,
               "default_permissions": False}
    if allow_other:
        options["allow_other"] = True
    ReaddirPlusFUSE(ArcFSOperations(fs, attr_ttl, dir_ttl, mountpoint), mountpoint, raw_fi=True,
                    foreground=foreground, nothreads=False, **options)
