"""Real arcfs mounts for tests: ``arcfs mount`` (background mode, as users run it) of a
running test server, always unmounted afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .harness import Server

ARCFS = str(Path(sys.executable).parent / "arcfs")


def unmount(mountpoint: str) -> None:
    if os.path.ismount(mountpoint):
        result = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True)
        if result.returncode != 0:
            subprocess.run(["fusermount3", "-uz", mountpoint], capture_output=True)


@contextmanager
def mounted(server: Server, user: str = "alice", service: str = "arc", *extra: str):
    """Mount ``service`` of ``server`` as ``user``; yields the mountpoint."""
    base = tempfile.mkdtemp(prefix="arcfs-test-")
    mountpoint = os.path.join(base, "mnt")
    cache = os.path.join(base, "cache")
    os.makedirs(mountpoint)
    os.makedirs(cache)
    env = dict(os.environ, ARCFS_TOKEN=server.tokens[user])
    result = subprocess.run([ARCFS, "mount", server.url, mountpoint, "--insecure", "--service",
                             service, "--cache-dir", cache, "--timeout", "5", *extra],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)
        shutil.rmtree(base, ignore_errors=True)
