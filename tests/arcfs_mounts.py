"""Real arcfs mounts for tests: ``arcfs mount`` (background mode, as users run it) of a
running test server, always unmounted afterwards.

A mount's process logs into its cache directory, which goes with the mount: when a test
fails, what the mounts then live had logged is shown with it (here for a failure inside
``with mounted(...)``, by tests/conftest.py's report hook for a mount a fixture holds), so
an EIO from an upload that failed in the background keeps its cause.
"""
from __future__ import annotations

import glob
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
LIVE: dict[str, str] = {}      # mountpoint -> its cache directory, while mounted


def mount_log(cache: str, limit: int = 20_000) -> str:
    """The end of what a mount's process logged (``arcfs mount`` writes it into its cache
    directory)."""
    texts = []
    for path in sorted(glob.glob(os.path.join(cache, "arcfs-*.log"))):
        with open(path, errors="replace") as fh:
            texts.append(fh.read()[-limit:])
    return "".join(texts) or "(nothing logged)"


def live_mount_logs() -> dict[str, str]:
    """Each live mount's log, by mountpoint."""
    return {mountpoint: mount_log(cache) for mountpoint, cache in list(LIVE.items())}


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
    LIVE[mountpoint] = cache
    try:
        yield mountpoint
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            sys.stderr.write(f"log of the arcfs mount at {mountpoint}:\n{mount_log(cache)}\n")
        raise
    finally:
        LIVE.pop(mountpoint, None)
        unmount(mountpoint)
        shutil.rmtree(base, ignore_errors=True)
