"""Listing a directory through a real mount: each entry reaches the kernel with its
attributes (readdirplus), so ``ls -l`` of a big directory costs no lookup per entry; and
the mount's read-ahead, which sets how big the kernel's read requests are."""
from __future__ import annotations

import os
import stat
import subprocess
import uuid

from arcfs.fuse_adapter import READ_AHEAD_KB

from .arcfs_mounts import mounted
from .waiting import wait_until

UNKNOWN_INO = 0xFFFFFFFF     # what libfuse puts in a listed entry it has no node for


def test_listed_entries_arrive_with_their_attributes(sqlite_server):
    """getdents' inode numbers are the nodes ``stat`` then shows: the listing made them
    (without readdirplus attributes every entry is UNKNOWN_INO and is looked up again).
    Sizes, types and modes are the server's, and a file written here and not uploaded yet
    is listed with its local size."""
    name = f"plus-{uuid.uuid4().hex[:8]}"
    on_disk = os.path.join(sqlite_server.data_dir, "arc", "home", "alice", name)
    os.makedirs(os.path.join(on_disk, "sub"))
    for i in range(300):
        with open(os.path.join(on_disk, f"f{i:03d}"), "wb") as fh:
            fh.write(b"x" * i)
    with mounted(sqlite_server, "alice", "arc") as mnt:
        listed = os.path.join(mnt, "home", "alice", name)
        with open(os.path.join(listed, "pending"), "wb") as fh:
            fh.write(b"y" * 7)
        entries = list(os.scandir(listed))
        assert len(entries) == 302
        for entry in entries:
            st = os.lstat(entry.path)
            assert entry.inode() != UNKNOWN_INO, entry.name
            assert entry.inode() == st.st_ino, entry.name
        sizes = {e.name: os.lstat(e.path).st_size for e in entries if e.is_file()}
        assert sizes == {**{f"f{i:03d}": i for i in range(300)}, "pending": 7}
        assert stat.S_ISDIR(os.lstat(os.path.join(listed, "sub")).st_mode)
        ls = subprocess.run(["ls", "-ln", listed], capture_output=True, text=True, check=True)
        lines = {line.split()[-1]: line.split() for line in ls.stdout.splitlines()[1:]}
        assert lines["f123"][4] == "123" and lines["pending"][4] == "7"
        assert lines["sub"][0].startswith("d")


def test_the_mount_reads_ahead_two_mib(sqlite_server):
    """The mount's read-ahead is widened from the kernel's 128 KiB default (which made a
    sequential read eight FUSE requests per MiB), once the mount is up; and the bytes read
    through it are the file's."""
    data = os.urandom(5 * 1024 * 1024 + 7)
    on_disk = os.path.join(sqlite_server.data_dir, "arc", "home", "alice",
                           f"ahead-{uuid.uuid4().hex[:8]}.bin")
    with open(on_disk, "wb") as fh:
        fh.write(data)
    with mounted(sqlite_server, "alice", "arc") as mnt:
        device = os.stat(mnt).st_dev
        setting = f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb"
        wait_until(lambda: open(setting).read().strip() == str(READ_AHEAD_KB), 10,
                   "the mount's read-ahead setting")
        with open(os.path.join(mnt, "home", "alice", os.path.basename(on_disk)), "rb") as fh:
            assert fh.read() == data
