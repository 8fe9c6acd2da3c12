"""Real arcfs mounts for tests: ``arcfs mount`` (background mode, as users run it) of a
running test server, always unmounted afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from .harness import Server

ARCFS = str(Path(sys.executable).parent / "arcfs")


def fresh_dir(mountpoint: str, prefix: str) -> str:
    """A new directory in alice's arc home, made through the mount, for one test."""
    path = os.path.join(mountpoint, "home", "alice", f"{prefix}-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    return path


def unmount(mountpoint: str) -> None:
    """Unmount whatever state the mount is in (no ismount check: it stats through the
    filesystem, which may be failing); lazily if it is busy."""
    for option in ("-u", "-uz"):
        if subprocess.run(["fusermount3", option, mountpoint],
                          capture_output=True).returncode == 0:
            return


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
