"""Vault copies in several blob stores (``blob_copies``), with real S3 servers (moto in
server mode on 127.0.0.1) and local files: background copies, failover reads, MD5-checked
reads, fsck of every copy, deletes everywhere, and a server killed while copying."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
import sqlalchemy

from .harness import Server, free_port, make_server, wait_for
from .waiting import wait_until

COPY_PROPERTY = "urn:vospace-server:node#copies"


class Moto:
    """One moto S3 server on loopback (in-memory: stopping it loses its objects)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                      "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.url, proc=self.proc)

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="test",
                            aws_secret_access_key="test", region_name="us-east-1")

    def keys(self, bucket: str) -> list[str]:
        return [o["Key"] for o in self.client().list_objects_v2(Bucket=bucket).get("Contents", [])]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


@pytest.fixture()
def motos():
    started: list[Moto] = []

    def start() -> Moto:
        started.append(Moto())
        return started[-1]
    yield start
    for moto in started:
        moto.stop()


@pytest.fixture()
def servers():
    started: list[Server] = []
    yield started
    for server in started:
        # Killed, a supervisor (--workers) would leave its shared directory behind.
        running = server.proc is not None and server.proc.poll() is None
        server.stop(signal.SIGKILL if running and server.workers == 1 else signal.SIGTERM)


def s3_copy_url(moto: Moto, bucket: str, name: str, redirect: bool = True) -> str:
    return (f"s3://test:test@{bucket}/copies?endpoint={moto.url}"
            f"{'' if redirect else '&redirect=0'}#{name}")


def copies_status(server: Server) -> str:
    result = server.vospace("copies", "status")
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_copied(server: Server, stores: int = 2, timeout: float = 120) -> str:
    """Until the queue is empty and every file has a good copy in every store."""
    def copied() -> str | None:
        status = copies_status(server)
        if "backlog: 0 queued" in status and f"fewer than {stores} good copies: 0" in status:
            return status
        return None
    return wait_until(copied, timeout, "every copy made", interval=0.5, retry=())


def upload(server: Server, files: dict[str, bytes]) -> None:
    with server.client("alice") as c:
        for path, data in files.items():
            r = c.put(f"/vault/files/{path}", content=data)
            assert r.status_code == 201, r.text


def download(server: Server, path: str) -> bytes:
    with server.client("alice") as c:
        r = c.get(f"/vault/files/{path}", follow_redirects=True)
        assert r.status_code == 200, r.text
        return r.content


def blob_key(server: Server, path: str) -> str:
    url = server.env.get("VOSPACE_DATABASE_URL") or \
        f"sqlite:///{os.path.join(server.data_dir, 'vospace.db')}"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT blob FROM nodes WHERE path = :p"),
                                {"p": path}).scalar_one()
    finally:
        engine.dispose()


def local_blob(root: str, key: str) -> str:
    return os.path.join(root, key[:2], key)


def sample_files(prefix: str) -> dict[str, bytes]:
    return {f"alice/{prefix}-small.txt": os.urandom(1500),
            f"alice/{prefix}-empty-ish.bin": b"x",
            f"alice/{prefix}-large.bin": os.urandom(9 * 1024 * 1024 + 11)}  # multipart, 3 chunks


def test_two_s3_stores_reads_fail_over_when_the_primary_is_down(tmp_path, motos, servers):
    primary, second = motos(), motos()
    env = {"VOSPACE_BLOB_URL": "s3://vault-a/blobs", "VOSPACE_S3_ENDPOINT_URL": primary.url,
           "VOSPACE_S3_ACCESS_KEY": "test", "VOSPACE_S3_SECRET_KEY": "test",
           "VOSPACE_BLOB_COPIES": s3_copy_url(second, "vault-b", "site-b")}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env))
    files = sample_files("s3")
    upload(server, files)
    status = wait_copied(server)
    assert "stores: primary, site-b (primary: primary)" in status
    assert sorted(primary.keys("vault-a")) == sorted(f"blobs/{blob_key(server, p)}" for p in files)
    assert sorted(second.keys("vault-b")) == sorted(f"copies/{blob_key(server, p)}" for p in files)

    path = "alice/s3-small.txt"
    md5 = hashlib.md5(files[path]).hexdigest()
    with server.client("admin") as admin:
        node = admin.get(f"/vault/nodes/{path}").text
    assert re.search(rf'uri="{re.escape(COPY_PROPERTY)}" readOnly="true">primary=ok:{md5} '
                     rf'site-b=ok:{md5}<', node), node
    with server.client("alice") as alice:
        assert COPY_PROPERTY not in alice.get(f"/vault/nodes/{path}").text

    primary.stop()
    for path, data in files.items():
        assert download(server, path) == data
    with server.client() as anonymous:
        ready = anonymous.get("/readyz")
    assert ready.status_code == 503 and "primary" in ready.json()["problems"]["vault blobs"]


def test_missing_and_corrupt_copies_are_reported_and_repaired(tmp_path, motos, servers):
    moto = motos()
    env = {"VOSPACE_BLOB_COPIES": s3_copy_url(moto, "vault-copy", "remote", redirect=False)}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env))
    files = sample_files("fsck")
    upload(server, files)
    wait_copied(server)
    blobs = os.path.join(server.data_dir, "blobs")
    gone, bad = "alice/fsck-large.bin", "alice/fsck-small.txt"

    def damage() -> None:
        os.unlink(local_blob(blobs, blob_key(server, gone)))
        with open(local_blob(blobs, blob_key(server, bad)), "r+b") as fh:
            fh.seek(100)
            fh.write(bytes([files[bad][100] ^ 0xFF]))

    # fsck reads every copy, finds both, and repairs them from the S3 copy
    damage()
    check = server.vospace("fsck")
    assert check.returncode == 1
    assert f"missing copy: primary:/{gone}" in check.stdout, check.stdout
    assert f"corrupt copy: primary:/{bad}" in check.stdout, check.stdout
    repair = server.vospace("fsck", "--repair")
    assert repair.returncode == 0 and "2 problem(s) repaired" in repair.stdout, repair.stdout
    for path in (gone, bad):
        with open(local_blob(blobs, blob_key(server, path)), "rb") as fh:
            assert fh.read() == files[path]
    assert "0 problem(s)" in server.vospace("fsck").stdout

    # reads of damaged copies succeed from the other one, report it, and the copier
    # makes the damaged copies again in the background
    damage()
    for path, data in files.items():
        assert download(server, path) == data
    with open(server.log_path) as fh:
        log = fh.read()
    assert f"the copy in primary is missing" in log and "the copy in primary is corrupt" in log
    with server.client("admin") as admin:
        metrics = admin.get("/metrics").text
    assert 'vospace_copy_problems_total{problem="missing",store="primary"} 1.0' in metrics
    assert 'vospace_copy_problems_total{problem="corrupt",store="primary"} 1.0' in metrics
    wait_copied(server)
    for path in (gone, bad):
        with open(local_blob(blobs, blob_key(server, path)), "rb") as fh:
            assert fh.read() == files[path]
    assert "0 problem(s)" in server.vospace("fsck").stdout


def test_a_corrupt_early_chunk_fails_one_read_then_reads_use_the_good_copy(tmp_path, motos,
                                                                           servers):
    moto = motos()
    env = {"VOSPACE_BLOB_COPIES": s3_copy_url(moto, "vault-copy", "remote", redirect=False)}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env))
    data = os.urandom(9 * 1024 * 1024)
    upload(server, {"alice/big.bin": data})
    wait_copied(server)
    with open(local_blob(os.path.join(server.data_dir, "blobs"),
                         blob_key(server, "alice/big.bin")), "r+b") as fh:
        fh.write(bytes([data[0] ^ 1]))
    with server.client("alice") as c:  # cut short: the client never takes bad bytes as good
        with pytest.raises(httpx.RemoteProtocolError, match="without sending complete"):
            c.get("/vault/files/alice/big.bin", follow_redirects=True)
    assert download(server, "alice/big.bin") == data
    assert "the copy in primary is corrupt" in Path(server.log_path).read_text()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_deletes_remove_every_copy(request, database, tmp_path, motos, servers):
    moto = motos()
    copy_dir = tmp_path / "second-disk"
    env = {"VOSPACE_BLOB_COPIES": f"file://{copy_dir}#disk2 "
                                  + s3_copy_url(moto, "vault-copy", "remote")}
    url = request.getfixturevalue("postgres").create_database() if database != "sqlite" else None
    servers.append(server := make_server(str(tmp_path), url, users=("alice",), extra_env=env))
    files = sample_files("del")
    upload(server, files)
    wait_copied(server, stores=3)
    keys = {blob_key(server, p) for p in files}
    assert {os.path.basename(p) for p in copy_dir.glob("*/*")} == keys
    assert set(moto.keys("vault-copy")) == {f"copies/{k}" for k in keys}
    with server.client("alice") as c:
        for path in files:
            assert c.delete(f"/vault/nodes/{path}").status_code == 200
    assert list(copy_dir.glob("*/*")) == [] and moto.keys("vault-copy") == []
    assert list(Path(server.data_dir, "blobs").glob("[0-9a-f][0-9a-f]/*")) == []
    assert "backlog: 0 queued" in copies_status(server)


def test_killed_server_finishes_the_copy_queue_after_restart(tmp_path, motos, servers):
    moto = motos()
    env = {"VOSPACE_BLOB_COPIES": s3_copy_url(moto, "vault-copy", "remote")}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env))
    files = {f"alice/kill-{n}.bin": os.urandom(12 * 1024 * 1024 + n) for n in range(6)}
    upload(server, files)
    db = os.path.join(server.data_dir, "vospace.db")
    def copy_running() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM copy_queue WHERE runner IS NOT NULL"
                                ).fetchone()[0]
    wait_until(copy_running, 60, "a copy to start", interval=0.02, retry=())
    server.stop(signal.SIGKILL)  # while a copy is running
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM copy_queue").fetchone()[0]
    assert left > 0, "everything was copied before the kill; nothing was tested"
    server.start()
    wait_copied(server)
    check = server.vospace("fsck")
    assert not re.search(r"(missing|corrupt) (copy|blob)", check.stdout), check.stdout
    assert set(moto.keys("vault-copy")) >= {f"copies/{blob_key(server, p)}" for p in files}
    for path, data in files.items():
        assert download(server, path) == data


def test_another_process_takes_over_the_queue_of_a_killed_one(tmp_path, postgres, servers):
    """Two servers on one PostgreSQL and the same stores share the copy queue; when the one
    running a copy is killed, the other finishes its task too, without any restart."""
    shared = {"VOSPACE_BLOB_DIR": str(tmp_path / "blobs"),
              "VOSPACE_BLOB_COPIES": f"file://{tmp_path / 'disk2'}#disk2"}
    url = postgres.create_database()
    servers.append(make_server(str(tmp_path), url, users=("alice",), extra_env=shared))
    servers.append(make_server(str(tmp_path), url, users=("alice",), extra_env=shared))
    files = {f"alice/pair-{n}.bin": os.urandom(12 * 1024 * 1024 + n) for n in range(6)}
    upload(servers[0], files)
    by_pid = {server.proc.pid: server for server in servers}
    engine = sqlalchemy.create_engine(url)
    def copy_runners() -> list[str]:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(
                "SELECT runner FROM copy_queue WHERE runner IS NOT NULL")).scalars().all()
    try:  # kill the server that is running a copy
        runners = wait_until(copy_runners, 60, "a copy to start", interval=0.02, retry=())
    finally:
        engine.dispose()
    killed = by_pid[int(runners[0].split(":")[1])]
    killed.stop(signal.SIGKILL)
    survivor = next(server for server in servers if server is not killed)
    wait_copied(survivor)
    check = survivor.vospace("fsck")
    assert not re.search(r"(missing|corrupt) (copy|blob)", check.stdout), check.stdout
    # the killed copier may leave the temp file of the copy it was writing, and nothing else:
    # fsck names it as debris and --repair removes it
    findings = [line for line in check.stdout.splitlines() if line.startswith("found ")]
    assert all(": temp debris: " in line for line in findings), check.stdout
    if findings:
        assert survivor.vospace("fsck", "--repair").returncode == 0
    assert {p.name for p in (tmp_path / "disk2").glob("*/*")} == \
        {blob_key(survivor, p) for p in files}


class HeldUpload:
    """A PUT whose body trickles in until ``release``: an upload in flight for as long as
    the test wants."""

    def __init__(self, server: Server, path: str) -> None:
        self.server, self.path = server, path
        self.released = threading.Event()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_until(lambda: in_flight(server, "in") == 1, 60, "the upload to start")

    def _body(self):
        deadline = time.monotonic() + 300  # a test that never releases still ends
        while not self.released.is_set() and time.monotonic() < deadline:
            yield b"x" * 16384
            time.sleep(0.05)

    def _run(self) -> None:
        with self.server.client("alice") as c:
            self.status = c.put(f"/vault/files/{self.path}", content=self._body()).status_code

    def release(self) -> float:
        """End the upload; returns the time just before it ended."""
        before = time.time()
        self.released.set()
        self.thread.join(60)
        assert not self.thread.is_alive() and self.status == 201, self.status
        wait_ended(self.server, "in")
        return before


class HeldDownload:
    """A GET of a large file whose client reads a few bytes and then nothing (a small
    receive window, so the server's sends block) until ``release`` hangs up."""

    def __init__(self, server: Server, path: str) -> None:
        self.server = server
        with server.client("alice") as c:
            url = urlsplit(c.get(f"/vault/files/{path}").headers["location"])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.connect(("127.0.0.1", url.port))
        if url.scheme == "https":
            tls = ssl.create_default_context()
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
            self.sock = tls.wrap_socket(self.sock)
        self.sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert self.sock.recv(100).startswith(b"HTTP/1.1 200")
        wait_until(lambda: in_flight(server, "out") == 1, 60, "the download to start")

    def release(self) -> float:
        before = time.time()
        self.sock.close()
        wait_ended(self.server, "out")
        return before


def wait_ended(server: Server, direction: str) -> None:
    wait_until(lambda: in_flight(server, direction) == 0, 60, "the transfer to end")


def in_flight(server: Server, direction: str) -> float:
    with server.client("admin") as admin:
        metrics = admin.get("/metrics").text
    found = re.search(rf'vospace_transfers_in_flight{{direction="{direction}",service="vault"}} '
                      r'(\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def copy_made_at(server: Server, path: str, store: str) -> float | None:
    """When the ledger recorded the copy of ``path`` in ``store`` as made (None: not yet)."""
    with sqlite3.connect(os.path.join(server.data_dir, "vospace.db")) as conn:
        row = conn.execute("SELECT checked FROM blob_copies WHERE blob = ? AND store = ?",
                           (blob_key(server, path), store)).fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize("direction, workers", [("in", 1), ("out", 1), ("in", 2), ("out", 2)])
def test_copies_wait_while_the_server_transfers_and_are_made_once_it_is_idle(tmp_path, servers,
                                                                            direction, workers):
    """A copy queued while an upload (or a download) runs is not made until that transfer
    ends (the bound on waiting is far away here); with ``--workers`` the copiers of every
    worker wait for the transfers of all of them."""
    env = {"VOSPACE_BLOB_COPIES": f"file://{tmp_path / 'disk2'}#disk2",
           "VOSPACE_COPY_MAX_WAIT": "600"}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env,
                                         workers=workers))
    if direction == "out":  # far more than the sockets' buffers hold
        upload(server, {"alice/big.bin": os.urandom(32 * 1024 * 1024)})
        wait_copied(server)
    held = HeldUpload(server, "alice/held.bin") if direction == "in" else \
        HeldDownload(server, "alice/big.bin")
    try:
        upload(server, {"alice/small.txt": b"queued behind a transfer"})
        for _ in range(4):  # seconds of copies status calls: nothing is copied meanwhile
            assert "backlog: 1 queued" in copies_status(server)
        assert copy_made_at(server, "alice/small.txt", "disk2") is None
        assert not list((tmp_path / "disk2").glob(f"*/{blob_key(server, 'alice/small.txt')}"))
    finally:
        released = held.release()
    wait_copied(server)
    made = copy_made_at(server, "alice/small.txt", "disk2")
    assert made is not None and made > released, (made, released)
    assert download(server, "alice/small.txt") == b"queued behind a transfer"


def test_a_server_that_is_never_idle_still_makes_its_copies(tmp_path, servers):
    """With ``copy_max_wait`` 1 s, copies (of one chunk and of three) are made while an
    upload stays in flight the whole time; the copier runs at the lowest CPU and I/O
    priority of the process's threads."""
    env = {"VOSPACE_BLOB_COPIES": f"file://{tmp_path / 'disk2'}#disk2",
           "VOSPACE_COPY_MAX_WAIT": "1"}
    servers.append(server := make_server(str(tmp_path), users=("alice",), extra_env=env))
    held = HeldUpload(server, "alice/held.bin")
    try:
        files = {"alice/one-chunk.txt": os.urandom(1000),
                 "alice/three-chunks.bin": os.urandom(9 * 1024 * 1024 + 5)}
        upload(server, files)
        wait_copied(server)
        assert in_flight(server, "in") == 1 and held.thread.is_alive()
    finally:
        held.release()
    for path, data in files.items():
        assert copy_made_at(server, path, "disk2") is not None
        with open(local_blob(str(tmp_path / "disk2"), blob_key(server, path)), "rb") as fh:
            assert fh.read() == data

    niced = {}
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        nice = int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])
        if nice:
            niced[task.name] = nice
    assert list(niced.values()) == [19], niced  # the copier thread, and only it
    (tid,) = niced
    ionice = subprocess.run(["ionice", "-p", tid], capture_output=True, text=True)
    assert ionice.stdout.strip() == "idle", ionice
