"""Listing a directory through a real mount: each entry reaches the kernel with its
attributes (readdirplus), so ``ls -l`` of a big directory costs no lookup per entry."""
from __future__ import annotations

import os
import stat
import subprocess
import uuid

from .arcfs_mounts import mounted

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
