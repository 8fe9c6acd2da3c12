"""Quotas on vault (SQLite, PostgreSQL) and arc over real HTTP: writes up to the limit, a
stream that crosses it, copies and moves into a full container, raising a quota, recount
after direct disk changes, provisioning by the CLI; and usage staying exact (compared with a
full walk) after 1,000 random operations on each backend's NodeTree.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from lxml import etree

from vospace_server.protocol import properties as props
from vospace_server.protocol.faults import QuotaExceeded
from vospace_server.protocol.nodes import Node, NodeType
from vospace_server.storage import quota
from vospace_server.storage.arc.tree import ArcTree
from vospace_server.storage.vault.blobs import LocalBlobStore
from vospace_server.storage.vault.tree import VaultTree

from .conftest import VOS_NS
from .test_uws_jobs import run_job

CORE = "ivo://ivoa.net/vospace/core#"


def usage(svc, path: str) -> int:
    return int(svc.properties(path)[CORE + "length"])


def quota_root(svc, size: int) -> str:
    """A fresh container in alice's home with a quota set by the administrator."""
    path = svc.unique()
    assert svc.create(path).status_code == 201
    set_quota(svc, path, size)
    return path


def set_quota(svc, path: str, size: int) -> None:
    with svc.client("admin") as c:
        r = c.post(svc.nodes_url(path), content=svc.node_xml(path, properties={
            CORE + "quota": str(size)}), headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text


def put(svc, path: str, data: bytes, user: str = "alice", **kwargs) -> httpx.Response:
    with svc.client(user) as c:
        return c.put(f"/{svc.name}/files/{path}", content=data, **kwargs)


def test_small_writes_up_to_the_limit(svc):
    root = quota_root(svc, 1000)
    for i in range(4):
        assert put(svc, f"{root}/f{i}", os.urandom(250)).status_code == 201
    assert usage(svc, root) == 1000
    assert svc.properties(root)[CORE + "availableSpace"] == "0"
    r = put(svc, f"{root}/more", b"x")
    assert r.status_code == 413 and r.text.startswith("QuotaExceeded"), r.text
    assert put(svc, f"{root}/f0", os.urandom(250)).status_code == 201  # same size replaces
    assert put(svc, f"{root}/f1", os.urandom(100)).status_code == 201  # shrinking frees room
    assert usage(svc, root) == 850
    assert put(svc, f"{root}/more", os.urandom(150)).status_code == 201
    assert usage(svc, root) == 1000
    with svc.client() as c:
        assert c.delete(svc.nodes_url(f"{root}/f2")).status_code == 200
    assert usage(svc, root) == 750
    # A user may not raise their own quota.
    with svc.client() as c:
        r = c.post(svc.nodes_url(root), content=svc.node_xml(root, properties={
            CORE + "quota": "99999"}), headers={"Content-Type": "text/xml"})
    assert r.status_code == 403


def test_stream_crossing_the_limit_is_stopped_and_keeps_old_content(svc):
    root = quota_root(svc, 3 * 1024 * 1024)
    old = os.urandom(1024 * 1024)
    assert put(svc, f"{root}/data", old).status_code == 201

    def body():
        for _ in range(8):
            yield os.urandom(512 * 1024)

    try:
        r = put(svc, f"{root}/data", body())  # chunked: the size is unknown in advance
        assert r.status_code == 413 and "QuotaExceeded" in r.text
    except httpx.TransportError:
        pass  # the server may close the connection while the body is still being sent
    with svc.client() as c:
        r = c.get(f"/{svc.name}/files/{root}/data", follow_redirects=True)
    assert hashlib.md5(r.content).hexdigest() == hashlib.md5(old).hexdigest()
    assert usage(svc, root) == len(old)
    # A declared size that cannot fit is refused before any byte is sent: the request head
    # alone gets the 413, with or without ``Expect: 100-continue``.
    for expect in (True, False):
        status, _ = head_only_put(svc, f"{root}/big", 3 * 1024 * 1024, expect)
        assert status.startswith("HTTP/1.1 413"), status
    assert svc.properties(root)[CORE + "length"] == str(len(old))
    with svc.client() as c:
        assert c.get(svc.nodes_url(f"{root}/big")).status_code == 404
    # One that fits is invited with 100 Continue, then stored.
    status, sock = head_only_put(svc, f"{root}/small", 1000, expect=True)
    with sock:
        assert status.startswith("HTTP/1.1 100"), status
        sock.sendall(b"s" * 1000)
        assert read_status(sock).startswith("HTTP/1.1 201")
    assert usage(svc, root) == len(old) + 1000


def head_only_put(svc, path: str, length: int, expect: bool) -> tuple[str, ssl.SSLSocket]:
    """Send only the head of a PUT announcing ``length`` bytes; the first status line the
    server answers (within 30 s, without having seen a byte of body) and the socket."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", svc.server.port),
                                                        timeout=30))
    head = (f"PUT /{svc.name}/files/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {svc.server.tokens['alice']}\r\n"
            f"Content-Length: {length}\r\n" + ("Expect: 100-continue\r\n" if expect else ""))
    sock.sendall(head.encode() + b"\r\n")
    status = read_status(sock)
    if not status.startswith("HTTP/1.1 100"):
        sock.close()
    return status, sock


def read_status(sock: ssl.SSLSocket) -> str:
    """The status line of the next response (or interim response) on ``sock``; its head
    is consumed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_copy_and_move_into_a_full_container_then_raise_the_quota(svc):
    root = quota_root(svc, 1000)
    outside = svc.unique()
    svc.create(outside)
    assert put(svc, f"{root}/inside", os.urandom(800)).status_code == 201
    assert put(svc, f"{outside}/big", os.urandom(500)).status_code == 201
    with svc.client() as c:
        for keep in (True, False):  # copy, then move
            job = run_job(c, svc, f"{outside}/big", f"{root}/big", keep_bytes=keep)
            assert c.get(job + "/phase").text == "ERROR"
            assert c.get(job + "/error").text.startswith("QuotaExceeded")
            assert c.get(svc.nodes_url(f"{root}/big")).status_code == 404
            assert c.get(svc.nodes_url(f"{outside}/big")).status_code == 200
    assert usage(svc, root) == 800
    set_quota(svc, root, 2000)  # raising the quota lets the same operations through
    assert svc.properties(root)[CORE + "availableSpace"] == "1200"
    with svc.client() as c:
        job = run_job(c, svc, f"{outside}/big", f"{root}/copy", keep_bytes=True)
        assert c.get(job + "/phase").text == "COMPLETED"
        job = run_job(c, svc, f"{outside}/big", f"{root}/moved")
        assert c.get(job + "/phase").text == "COMPLETED"
        # a move inside the quota root is not counted twice
        job = run_job(c, svc, f"{root}/moved", f"{root}/moved-again")
        assert c.get(job + "/phase").text == "COMPLETED"
    assert usage(svc, root) == 1800
    # moving out frees the room
    with svc.client() as c:
        job = run_job(c, svc, f"{root}/moved-again", f"{outside}/back")
        assert c.get(job + "/phase").text == "COMPLETED"
    assert usage(svc, root) == 1300


def test_project_provisioning_and_arc_recount_after_direct_changes(sqlite_server):
    server = sqlite_server
    name = f"p{os.urandom(4).hex()}"
    r = server.vospace("project", "create", name, "--group", f"g-{name}", "--quota", "4K")
    assert r.returncode == 0, r.stderr
    uri = f"ivo://localhost/gms?g-{name}"
    with server.client("admin") as c:
        for svc_name in ("arc", "vault"):
            got = c.get(f"/{svc_name}/nodes/projects/{name}", params={"limit": 0})
            assert got.status_code == 200, got.text
            found = {p.get("uri"): p.text for p in etree.fromstring(got.content).iter(
                f"{{{VOS_NS}}}property")}
            assert found[CORE + "quota"] == "4096"
            assert found[CORE + "groupwrite"] == uri and found[CORE + "groupread"] == uri
            assert found[CORE + "creator"] == "admin"
        assert c.put(f"/arc/files/projects/{name}/a", content=b"a" * 1000).status_code == 201
    shown = server.vospace("quota", "show", f"arc:projects/{name}")
    assert "used 1000" in shown.stdout and "available 3096" in shown.stdout
    # A session writes directly on disk: usage is stale until a recount.
    folder = os.path.join(server.data_dir, "arc", "projects", name)
    with open(os.path.join(folder, "direct"), "wb") as fh:
        fh.write(b"d" * 2000)
    os.unlink(os.path.join(folder, "a"))
    r = server.vospace("quota", "recount", f"arc:projects/{name}")
    assert r.returncode == 0 and "2000 bytes" in r.stdout, r.stdout + r.stderr
    with server.client("admin") as c:
        got = c.get(f"/arc/nodes/projects/{name}", params={"limit": 0})
        assert f">2000<" in got.text
        assert c.put(f"/arc/files/projects/{name}/b", content=b"b" * 2500).status_code == 413
    r = server.vospace("quota", "set", f"arc:projects/{name}", "10K")
    assert r.returncode == 0 and "quota 10240" in r.stdout
    user = f"u{name}"
    assert server.vospace("user", "create", user, "--quota", "1M").returncode == 0
    for location in (f"vault:{user}", f"arc:home/{user}"):
        shown = server.vospace("quota", "show", location).stdout
        assert "quota 1048576" in shown and "used 0" in shown, shown
    with server.client("admin") as c:
        assert c.put(f"/arc/files/projects/{name}/b", content=b"b" * 2500).status_code == 201


# -- usage stays exact after random operations (in process, real trees) ----------------------

def walk_usage(tree, path: str) -> int:
    """The truth: a full walk summing DataNode lengths."""
    total = 0
    for child in tree.list_children(path):
        total += walk_usage(tree, child.path) if child.is_container else quota.usage_of(child)
    return total


def random_operations(tree, root: str, count: int, seed: int) -> int:
    rng = random.Random(seed)
    dirs, files, refused = [root], [], 0
    for i in range(count):
        op = rng.choice(["write", "write", "write", "mkdir", "delete", "move", "copy"])
        try:
            if op == "write" or not files:
                target = rng.choice(files) if files and rng.random() < 0.3 else \
                    f"{rng.choice(dirs)}/f{i}"
                upload = tree.begin_write(target, "alice")
                try:
                    upload.write(os.urandom(rng.randint(0, 3000)))
                except QuotaExceeded:
                    upload.abort()
                    raise
                upload.commit()
                if target not in files:
                    files.append(target)
            elif op == "mkdir":
                path = f"{rng.choice(dirs)}/d{i}"
                tree.create(Node(path, NodeType.CONTAINER), "alice")
                dirs.append(path)
            elif op == "delete":
                victim = rng.choice(files + dirs[1:])
                tree.delete(victim)
                files = [f for f in files if not (f == victim or f.startswith(victim + "/"))]
                dirs = [d for d in dirs if not (d == victim or d.startswith(victim + "/"))]
            else:
                src = rng.choice(files + dirs[1:])
                dest = rng.choice(dirs)
                if dest == src or dest.startswith(src + "/"):
                    continue
                final = tree.copy(src, dest, "alice") if op == "copy" else tree.move(src, dest)
                moved = [(p, final.path + p[len(src):]) for p in files + dirs
                         if p == src or p.startswith(src + "/")]
                new = [n for _, n in moved]
                if op == "move":
                    old = {o for o, _ in moved}
                    files = [f for f in files if f not in old]
                    dirs = [d for d in dirs if d not in old]
                for n in new:
                    if tree.resolve(n)[-1].is_container:
                        dirs.append(n)
                    else:
                        files.append(n)
        except QuotaExceeded:
            refused += 1
        except Exception as exc:  # DuplicateNode etc. are legitimate outcomes of random ops
            if type(exc).__name__ not in ("DuplicateNode",):
                raise
    return refused


@pytest.mark.parametrize("backend", ["vault", "arc"])
def test_usage_stays_exact_after_1000_random_operations(tmp_path, backend):
    if backend == "vault":
        # On tmpfs when there is one: the point is the bookkeeping, not 2,000 disk fsyncs.
        folder = tempfile.mkdtemp(dir="/dev/shm") if os.path.isdir("/dev/shm") else str(tmp_path)
        tree = VaultTree(f"sqlite:///{folder}/v.db", "admin", LocalBlobStore(f"{folder}/b"))
        top = "alice"
    else:
        tree = ArcTree(str(tmp_path / "arc"), "admin", "vos://localhost~arc")
        top = "home/alice"
    tree.create(Node(top, NodeType.CONTAINER), "alice")
    root = f"{top}/q"
    tree.create(Node(root, NodeType.CONTAINER), "alice")
    tree.update_properties(root, {props.QUOTA: str(200_000)})
    refused = random_operations(tree, root, 1000, seed=6)
    node = tree.resolve(root)[-1]
    assert quota.usage_of(node) == walk_usage(tree, root)
    assert quota.usage_of(node) <= 200_000
    assert refused > 0  # the limit was reached and enforced along the way
    if backend == "vault":  # every container's length is exact, not only the root's
        for d in [n for n in tree.list_children(root) if n.is_container]:
            assert quota.usage_of(d) == walk_usage(tree, d.path)
        assert quota.usage_of(tree.resolve(top)[-1]) == walk_usage(tree, top)
    tree.close()
    if backend == "vault":
        shutil.rmtree(folder, ignore_errors=True)


def test_push_announcing_a_length_that_cannot_fit_is_refused_at_negotiation(svc):
    root = quota_root(svc, 1000)
    assert put(svc, f"{root}/f", os.urandom(600)).status_code == 201

    def negotiate(path: str, length: int) -> httpx.Response:
        body = (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
                f"<vos:target>{svc.uri(path)}</vos:target>"
                "<vos:direction>pushToVoSpace</vos:direction>"
                '<vos:protocol uri="ivo://ivoa.net/vospace/core#httpsput"/>'
                f'<vos:param uri="{CORE}length">{length}</vos:param></vos:transfer>')
        with svc.client() as c:
            return c.post(f"/{svc.name}/synctrans", content=body,
                          headers={"Content-Type": "text/xml"})

    r = negotiate(f"{root}/g", 500)
    assert r.status_code == 413 and r.text.startswith("QuotaExceeded")
    assert negotiate(f"{root}/g", 400).status_code == 303
    assert negotiate(f"{root}/f", 1000).status_code == 303  # replaces f's 600 bytes


def test_concurrent_uploads_never_overshoot_the_quota(svc):
    root = quota_root(svc, 1000)

    def upload(i: int) -> int:
        return put(svc, f"{root}/c{i}", os.urandom(300)).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(upload, range(8)))
    assert sorted(codes) == [201] * 3 + [413] * 5
    assert usage(svc, root) == 900
    with svc.client() as c:
        r = c.get(svc.nodes_url(root))
    lengths = [int(p.text) for p in etree.fromstring(r.content).iter(f"{{{VOS_NS}}}property")
               if p.get("uri") == CORE + "length"]
    assert lengths[0] == sum(lengths[1:]) == 900  # the root's usage = its children's bytes
