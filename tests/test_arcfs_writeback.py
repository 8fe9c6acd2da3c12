"""arcfs uploads after close (SEMANTICS.md [S2]) under failures, on real mounts of real
servers: the server stopped or the quota hit in the middle of a `tar -x`, fsync's verdict,
unmount with uploads pending, and reading a file back while its upload waits."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tarfile
import time

import pytest

from arcfs.writeback import MAX_PENDING
from vosclient.client import Client

from .arcfs_mounts import mounted
from .harness import make_server, requests_total
from .waiting import wait_until


def make_tarball(where: str, dirs: int, per_dir: int, size: int = 4096) -> tuple[str, dict]:
    """A tarball of ``dirs`` x ``per_dir`` files of random bytes; their contents by path."""
    tree = os.path.join(where, "tree")
    contents = {}
    for i in range(dirs * per_dir):
        rel = f"tree/d{i // per_dir:02d}/f{i:04d}"
        os.makedirs(os.path.join(where, os.path.dirname(rel)), exist_ok=True)
        data = os.urandom(size)
        with open(os.path.join(where, rel), "wb") as fh:
            fh.write(data)
        contents[rel] = data
    tarball = os.path.join(where, "t.tar")
    with tarfile.open(tarball, "w") as tar:
        tar.add(tree, arcname="tree")
    return tarball, contents


def stored(server, user: str, top: str) -> dict[str, bytes]:
    """Every file the server shows under ``top`` (a path in the arc service), with its bytes."""
    found = {}
    with Client(url=server.url, token=server.tokens[user], verify=False, retries=1,
                timeout=30) as client:
        for container, _, files in client.walk(f"arc:{top}"):
            for node in files:
                remote = container.child(node.name)
                found[remote.path[len(top) + 1:]] = client.read_bytes(remote)
    return found


def on_disk(server, rel: str) -> int:
    """How many visible files the server's arc tree holds below ``rel``."""
    root = os.path.join(server.data_dir, "arc", rel)
    return sum(1 for _, _, files in os.walk(root) for f in files if not f.startswith("."))


def test_server_stopped_mid_untar(tmp_path):
    """tar sees an error; after the restart the server holds complete files only."""
    tarball, contents = make_tarball(str(tmp_path), dirs=3, per_dir=25)
    server = make_server(str(tmp_path))
    try:
        with mounted(server, "alice", "arc") as mnt:
            target = os.path.join(mnt, "home", "alice", "x")
            os.mkdir(target)
            tar = subprocess.Popen(["tar", "-xf", tarball, "-C", target],
                                   stderr=subprocess.PIPE, text=True)
            try:
                wait_until(lambda: on_disk(server, "home/alice/x") >= 20 or
                           tar.poll() is not None, 60, "no upload arrived")
                assert tar.poll() is None, "tar finished before the server was stopped"
                server.stop(signal.SIGKILL)
                _, errors = tar.communicate(timeout=300)
            finally:
                if tar.poll() is None:
                    tar.kill()
            assert tar.returncode != 0 and "Input/output error" in errors, errors
            server.start()
            found = stored(server, "alice", "home/alice/x")
            assert 0 < len(found) < len(contents)
            for rel, data in found.items():
                assert data == contents[rel], rel          # whole files, never half
    finally:
        server.stop()


def test_fsync_ok_means_stored_even_if_the_server_dies_next(tmp_path):
    """Every file whose fsync succeeded is on the server after a crash and restart; the
    first fsync after the crash fails."""
    server = make_server(str(tmp_path))
    try:
        with mounted(server, "alice", "arc") as mnt:
            target = os.path.join(mnt, "home", "alice", "y")
            os.mkdir(target)
            durable, failed = {}, None
            for i in range(400):
                data = os.urandom(3000)
                path = os.path.join(target, f"f{i:03d}")
                try:
                    with open(path, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                except OSError as exc:
                    failed = exc
                    break
                durable[f"f{i:03d}"] = data
                if i == 30:
                    server.stop(signal.SIGKILL)
            assert failed is not None and len(durable) == 31, (failed, len(durable))
            server.start()
            assert stored(server, "alice", "home/alice/y") == durable
    finally:
        server.stop()


def test_quota_hit_mid_untar(sqlite_server):
    """EDQUOT reaches tar; what the server kept fits the quota and is whole.

    The tarball holds 200 files more than may wait for upload: tar's closes past that
    wait for uploads, so one of them comes after a refused upload, however slow the
    machine (with fewer files, tar could finish before any upload was refused)."""
    with mounted(sqlite_server, "alice", "arc") as mnt:
        name = f"q-{os.urandom(4).hex()}"
        target = os.path.join(mnt, "home", "alice", name)
        os.mkdir(target)
        result = sqlite_server.vospace("quota", "set", f"arc:home/alice/{name}", "200K")
        assert result.returncode == 0, result.stderr
        work = os.path.join(os.path.dirname(mnt), "src")
        os.mkdir(work)
        tarball, contents = make_tarball(work, dirs=2, per_dir=(MAX_PENDING + 200) // 2)
        tar = subprocess.run(["tar", "-xf", tarball, "-C", target], capture_output=True,
                             text=True, timeout=300)
        assert tar.returncode != 0 and "Disk quota exceeded" in tar.stderr, tar.stderr
        found = stored(sqlite_server, "alice", f"home/alice/{name}")
        assert 0 < len(found) < len(contents)
        assert sum(map(len, found.values())) <= 200 * 1024
        for rel, data in found.items():
            assert data == contents[rel], rel


def test_unmount_uploads_what_is_pending(sqlite_server):
    """Files closed while the server was not answering reach it after the unmount."""
    name = f"u-{os.urandom(4).hex()}"
    files = {f"f{i:03d}": os.urandom(2000) for i in range(100)}
    with mounted(sqlite_server, "alice", "arc", "--attr-ttl", "60", "--dir-ttl", "60") as mnt:
        target = os.path.join(mnt, "home", "alice", name)
        os.mkdir(target)
        os.stat(target)
        sqlite_server.proc.send_signal(signal.SIGSTOP)
        try:
            for rel, data in files.items():
                with open(os.path.join(target, rel), "wb") as fh:
                    fh.write(data)
            assert on_disk(sqlite_server, f"home/alice/{name}") == 0    # all pending
            subprocess.run(["fusermount3", "-u", mnt], check=True)
        finally:
            sqlite_server.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: on_disk(sqlite_server, f"home/alice/{name}") == len(files), 60,
               "the pending uploads did not arrive after the unmount")
    assert stored(sqlite_server, "alice", f"home/alice/{name}") == files


def test_read_after_write_of_a_pending_file(sqlite_server):
    """close() returns before the upload; the mount shows the new bytes meanwhile; fsync
    waits for the upload."""
    name = f"r-{os.urandom(4).hex()}"
    data = os.urandom(100_000)
    with mounted(sqlite_server, "alice", "arc", "--attr-ttl", "60", "--dir-ttl", "60") as mnt:
        target = os.path.join(mnt, "home", "alice", name)
        os.mkdir(target)
        os.stat(target)
        path = os.path.join(target, "new.bin")
        sqlite_server.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with open(path, "wb") as fh:
                fh.write(data)
            assert time.monotonic() - started < 2           # not waiting for the server
            assert os.path.getsize(path) == len(data) and os.listdir(target) == ["new.bin"]
            with open(path, "rb") as fh:
                assert fh.read() == data
            assert on_disk(sqlite_server, f"home/alice/{name}") == 0    # still pending
        finally:
            sqlite_server.proc.send_signal(signal.SIGCONT)
        with open(path, "r+b") as fh:
            os.fsync(fh.fileno())
            assert on_disk(sqlite_server, f"home/alice/{name}") == 1
        assert stored(sqlite_server, "alice", f"home/alice/{name}") == {"new.bin": data}


def test_big_file_streamed_while_the_server_stalls(sqlite_server):
    """A big file written in MiB blocks streams to the server from memory while written
    (to the pre-authorized URL transfer negotiation hands out: the data port);
    while the server is stopped the writer waits a moment, then goes on into the spool
    without the upload (the mount reads the file back meanwhile); once the server is back,
    fsync waits for the rest, and the server holds the bytes with their MD5. Unaligned
    writes at the end are read back from the spool."""
    name = f"big-{os.urandom(4).hex()}"
    data = os.urandom(24 << 20) + os.urandom(5000) + os.urandom(1 << 20)
    data_port_puts = preauth_puts(sqlite_server)
    with mounted(sqlite_server, "alice", "arc") as mnt:
        os.mkdir(os.path.join(mnt, "home", "alice", name))
        path = os.path.join(mnt, "home", "alice", name, "big.bin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        reader = os.open(path, os.O_RDONLY)   # (opened now: a lookup would need the server)
        try:
            os.write(fd, data[:1 << 20])                      # the upload starts
            sqlite_server.proc.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                for at in range(1 << 20, 24 << 20, 1 << 20):
                    assert os.write(fd, data[at:at + (1 << 20)]) == 1 << 20
                assert time.monotonic() - started < 4        # one short wait, not one a write
                assert os.pread(reader, 25 << 20, 0) == data[:24 << 20]
            finally:
                sqlite_server.proc.send_signal(signal.SIGCONT)
            os.write(fd, data[24 << 20:(24 << 20) + 5000])
            os.write(fd, data[(24 << 20) + 5000:])
            os.fsync(fd)
        finally:
            os.close(reader)
            os.close(fd)
        assert stored(sqlite_server, "alice", f"home/alice/{name}") == {"big.bin": data}
        with Client(url=sqlite_server.url, token=sqlite_server.tokens["alice"], verify=False,
                    retries=1, timeout=30) as client:
            node = client.get_node(f"arc:home/alice/{name}/big.bin")
        assert node.md5 == hashlib.md5(data).hexdigest()
    assert preauth_puts(sqlite_server) == data_port_puts + 1   # sent to the negotiated URL


def preauth_puts(server) -> float:
    """How many PUTs to pre-authorized URLs (the data port) the server has stored."""
    return requests_total(server, "arc", "preauth", "PUT", "201")


@pytest.fixture(autouse=True)
def _no_stopped_server(sqlite_server):
    yield
    sqlite_server.proc.send_signal(signal.SIGCONT)
