"""Uploads that go wrong: a client vanishing mid-body, a server SIGKILLed mid-upload (many
times at random offsets), many clients at once. After each: the node holds the old or the
new bytes, never a mix, its recorded MD5 matches them, and fsck finds nothing it cannot
explain (after a kill: temp files and unreferenced blobs only, which --repair removes)."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from lxml import etree

from .conftest import VOS_NS, ServiceUnderTest
from .harness import make_server, wait_for
from .waiting import wait_until

CORE = "ivo://ivoa.net/vospace/core#"
HOMES = {"vault": "alice", "arc": "home/alice"}


def open_upload(server, service: str, path: str, length: int) -> ssl.SSLSocket:
    """A raw TLS connection that has sent the headers of a PUT of ``length`` bytes."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)))
    sock.sendall((f"PUT /{service}/files/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {server.tokens['alice']}\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode())
    return sock


def node_state(server, service: str, path: str) -> tuple[bytes, str]:
    """(bytes served, MD5 recorded in the node)."""
    with server.client("alice") as c:
        data = c.get(f"/{service}/files/{path}", follow_redirects=True)
        node = c.get(f"/{service}/nodes/{path}")
    assert data.status_code == 200 and node.status_code == 200, (data.text, node.text)
    props = {p.get("uri"): p.text for p in etree.fromstring(node.content).iter(f"{{{VOS_NS}}}property")}
    assert props[CORE + "length"] == str(len(data.content))
    return data.content, props[CORE + "MD5"]


def upload(server, service: str, path: str, data: bytes) -> None:
    with server.client("alice") as c:
        assert c.put(f"/{service}/files/{path}", content=data).status_code == 201


def debris(server) -> list[str]:
    found = os.listdir(os.path.join(server.data_dir, "blobs", "tmp"))
    for folder, _dirs, names in os.walk(os.path.join(server.data_dir, "arc")):
        found += [n for n in names if n.startswith(".vospace-tmp-")]
    return found


def test_client_disconnect_mid_upload_keeps_old_content(svc):
    path = svc.unique()
    old = os.urandom(50_000)
    upload(svc.server, svc.name, path, old)
    sock = open_upload(svc.server, svc.name, path, 10_000_000)
    sock.sendall(os.urandom(3_000_000))
    # the server is writing its temp file
    wait_until(lambda: debris(svc.server), 10, "the upload to start", interval=0.01)
    assert debris(svc.server), "the upload never started"
    sock.close()
    wait_until(lambda: not debris(svc.server), 10, "the temp file to go", interval=0.05)
    assert debris(svc.server) == []
    data, md5 = node_state(svc.server, svc.name, path)
    assert data == old and md5 == hashlib.md5(old).hexdigest()


def fsck(server, *args: str) -> list[str]:
    result = server.vospace("fsck", *args)
    lines = result.stdout.splitlines()
    assert lines and lines[-1].startswith("fsck:"), result.stderr
    return lines[:-1]


def test_sigkill_mid_upload_leaves_old_or_new(tmp_path):
    server = make_server(str(tmp_path), users=("alice",))
    rng = random.Random(4)
    size = 6 * 1024 * 1024
    try:
        current = {}
        for service, home in HOMES.items():
            current[service] = os.urandom(size)
            upload(server, service, f"{home}/victim", current[service])
        for _round in range(10):
            new = {s: os.urandom(size) for s in HOMES}
            socks = []
            for service, home in HOMES.items():
                sock = open_upload(server, service, f"{home}/victim", size)
                sent = rng.choice([rng.randrange(size), size])  # sometimes all of it
                sock.sendall(new[service][:sent])
                socks.append(sock)
            time.sleep(rng.uniform(0, 0.3))  # the kill lands at a random moment
            server.stop(signal.SIGKILL)
            for sock in socks:
                sock.close()
            repaired = fsck(server, "--repair")
            assert all("temp debris" in f or "orphan blob" in f for f in repaired), repaired
            server.start()
            for service, home in HOMES.items():
                data, md5 = node_state(server, service, f"{home}/victim")
                assert data in (current[service], new[service]), "a mix of old and new bytes"
                assert md5 == hashlib.md5(data).hexdigest()
                current[service] = data
        server.stop()
        assert fsck(server) == []
    finally:
        server.stop()


@pytest.mark.parametrize("service", ["vault", "arc"])
def test_32_clients_up_and_down(sqlite_server, service):
    """1,000 files in all (500 per service), each uploaded then downloaded and checked."""
    svc = ServiceUnderTest(sqlite_server, service, service)
    base = svc.unique()
    assert svc.create(base).status_code == 201
    contents = {f"{base}/f{i:04d}": os.urandom(random.randrange(0, 8192)) for i in range(500)}

    def work(paths: list[str]) -> int:
        checked = 0
        with svc.client() as c:
            for path in paths:
                r = c.put(f"/{service}/files/{path}", content=contents[path])
                assert r.status_code == 201, r.text
            for path in paths:
                r = c.get(f"/{service}/files/{path}", follow_redirects=True)
                assert r.status_code == 200
                assert hashlib.md5(r.content).digest() == hashlib.md5(contents[path]).digest()
                checked += 1
        return checked

    paths = sorted(contents)
    with ThreadPoolExecutor(32) as pool:
        assert sum(pool.map(work, [paths[i::32] for i in range(32)])) == len(paths)
    assert debris(sqlite_server) == []
