"""Security hardening: header limits, slow clients, arc path escapes, hard links, preauth URLs.

A dedicated server with a 2-second header timeout, so the slowloris test is bounded.
(Deep XML, entity expansion, body limits and ``..`` on /nodes are in test_bad_input.py.)
"""
from __future__ import annotations

import os
import socket
import ssl
import time
from urllib.parse import urlsplit

import httpx
import pytest

from vospace_server.auth.preauth import PreauthSigner, load_secret
from vospace_server.protocol.faults import LinkFound, NodeNotFound
from vospace_server.protocol.nodes import Node, NodeType
from vospace_server.storage.arc import beneath

from .conftest import VOS_NS, XSI_NS
from .harness import Server, free_port

HEADER_TIMEOUT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("sec"))
    env = dict(os.environ, VOSPACE_HEADER_TIMEOUT=str(HEADER_TIMEOUT))
    env.pop("VOSPACE_CONFIG", None)
    srv = Server(data_dir=data_dir, port=free_port(), env=env)
    for user in ("alice", "bob"):
        srv.add_user(user)
    srv.start()
    yield srv
    srv.stop()


def tls_socket(server: Server) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_all(sock: ssl.SSLSocket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionError, ssl.SSLError):
        pass
    return data


# -- input limits ---------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 70_000 + b"\r\n",
    b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 40) for i in range(1500)),
], ids=["one-huge-header", "many-headers"])
def test_oversized_headers_are_refused_and_server_answers(server: Server, headers) -> None:
    with tls_socket(server) as sock:
        sock.sendall(b"GET /vault/nodes/ HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert read_all(sock, 5).startswith(b"HTTP/1.1 431")
    assert httpx.get(f"{server.url}/vault/availability", verify=False).status_code == 200


def test_slow_clients_are_cut_off_and_others_served(server: Server) -> None:
    """Slowloris: 30 connections dribbling headers and 5 silent ones; normal requests keep
    being answered at once, and every slow connection is closed after the header timeout."""
    slow = [tls_socket(server) for _ in range(30)]
    idle = [tls_socket(server) for _ in range(5)]
    start = time.monotonic()
    for sock in slow:
        sock.sendall(b"GET /vault/nodes/ HTTP/1.1\r\nHost: x\r\n")
    with server.client("alice") as c:
        while time.monotonic() - start < HEADER_TIMEOUT + 0.5:
            t0 = time.monotonic()
            assert c.get("/vault/nodes/alice").status_code == 200
            assert time.monotonic() - t0 < 1.0
            for sock in slow:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                except (ConnectionError, ssl.SSLError):
                    pass
            time.sleep(0.3)  # the slow clients' pace: a header line every 0.3 s
    for sock in slow:
        assert read_all(sock, HEADER_TIMEOUT + 2).startswith(b"HTTP/1.1 408")
        sock.close()
    for sock in idle:
        assert read_all(sock, 3).startswith(b"HTTP/1.1 408")
        sock.close()
    assert time.monotonic() - start < 3 * HEADER_TIMEOUT + 5


# -- arc path escapes -----------------------------------------------------------------
class Arc:
    """Files on disk placed as a session user could: symlinks and hard links in alice's home."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.root = os.path.join(server.data_dir, "arc")
        self.home = os.path.join(self.root, "home", "alice")
        self.outside = os.path.join(server.data_dir, "outside-secret.txt")
        self.outside_dir = os.path.join(server.data_dir, "outside-dir")
        with open(self.outside, "w") as fh:
            fh.write("TOPSECRET")
        os.makedirs(self.outside_dir, exist_ok=True)
        with server.client("bob") as bob:
            bob.put("/arc/files/home/bob/private.txt", content=b"BOBSECRET").raise_for_status()
        links = {"to-bob": "../bob", "to-outside-dir": self.outside_dir,
                 "to-outside": self.outside, "to-bob-file": "../bob/private.txt",
                 "escape-rel": "../../../outside-secret.txt"}
        for name, target in links.items():
            os.symlink(target, os.path.join(self.home, name))
        os.link(os.path.join(self.root, "home", "bob", "private.txt"),
                os.path.join(self.home, "hl-bob"))
        os.link(self.outside, os.path.join(self.home, "hl-outside"))


@pytest.fixture(scope="module")
def arc(server: Server) -> Arc:
    return Arc(server)


SECRETS = (b"BOBSECRET", b"TOPSECRET")


@pytest.mark.parametrize("path", [
    "home/alice/to-bob/private.txt", "home/alice/to-bob-file", "home/alice/to-outside",
    "home/alice/escape-rel", "home/alice/to-outside-dir/x",
    "home/alice/hl-bob", "home/alice/hl-outside",
    "home/alice/../bob/private.txt", "home/alice/%2e%2e/bob/private.txt",
    "home/alice/%252e%252e/bob/private.txt", "home/alice/..%2fbob/private.txt",
    "home/alice/%2E%2E%2Fbob%2Fprivate.txt", "home/bob/private.txt",
])
@pytest.mark.parametrize("endpoint", ["files", "nodes"])
def test_reading_through_escapes_is_refused(server: Server, arc: Arc, path, endpoint) -> None:
    with server.client("alice") as c:
        # raw_path keeps the client from normalizing dot segments away
        url = httpx.URL(f"{server.url}/arc/{endpoint}/").copy_with(
            raw_path=f"/arc/{endpoint}/{path}".encode())
        r = c.get(url)
    assert not any(s in r.content for s in SECRETS)
    if endpoint == "files":
        assert r.status_code in (400, 403, 404), (path, r.status_code, r.text)


def test_hard_links_refused_with_permission_denied(server: Server, arc: Arc) -> None:
    with server.client("alice") as c:
        # bob's inode carries bob's creator and ACL, so the policy already refuses it;
        # a file from outside the tree has no owner and is refused for its link count
        assert c.get("/arc/files/home/alice/hl-bob").status_code == 403
        r = c.get("/arc/files/home/alice/hl-outside")
        assert r.status_code == 403 and "hard link" in r.text
        body = (f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
                'uri="vos://localhost~arc/home/alice/hl-outside" xsi:type="vos:DataNode">'
                '<vos:properties><vos:property uri="ivo://ivoa.net/vospace/core#ispublic">true'
                '</vos:property></vos:properties></vos:node>')
        assert c.post("/arc/nodes/home/alice/hl-outside", content=body).status_code == 403
    assert not [n for n in os.listxattr(arc.outside) if n.startswith("user.")]


def test_writes_through_escapes_never_land_outside(server: Server, arc: Arc) -> None:
    bob_home = os.path.join(arc.root, "home", "bob")
    before_bob = sorted(os.listdir(bob_home))
    container = (f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
                 'uri="vos://localhost~arc/{p}" xsi:type="vos:ContainerNode"/>')
    with server.client("alice") as c:
        for path in ("home/alice/to-bob/new.txt", "home/alice/to-outside-dir/new.txt",
                     "home/alice/to-outside", "home/alice/to-bob-file"):
            r = c.put(f"/arc/files/{path}", content=b"OVERWRITE")
            assert r.status_code in (400, 403, 404), (path, r.status_code, r.text)
        for path in ("home/alice/to-bob/newdir", "home/alice/to-outside-dir/newdir"):
            r = c.put(f"/arc/nodes/{path}", content=container.format(p=path))
            assert r.status_code in (400, 403, 404), (path, r.status_code, r.text)
        # overwriting a hard link replaces the name only: the other file keeps its bytes
        assert c.put("/arc/files/home/alice/hl-outside", content=b"mine").status_code in (200, 201)
        assert c.get("/arc/files/home/alice/hl-outside").content == b"mine"
        assert c.put("/arc/files/home/alice/hl-bob", content=b"mine").status_code == 403
    assert sorted(os.listdir(bob_home)) == before_bob
    assert os.listdir(arc.outside_dir) == []
    with open(arc.outside) as fh:
        assert fh.read() == "TOPSECRET"
    with open(os.path.join(bob_home, "private.txt")) as fh:
        assert fh.read() == "BOBSECRET"


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "walk"])
def test_open_beneath_never_follows_a_swapped_directory(tmp_path, monkeypatch, openat2) -> None:
    """What defeats the check-then-open race: the open itself refuses symlinked components,
    at any depth, whether one openat2 call opens the path or the walk does (kernels without
    openat2: the module then walks)."""
    if not openat2:
        monkeypatch.setattr(beneath, "_openat2_flags", None)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "c").mkdir(parents=True)
    (outside / "f").write_text("outside")
    (root / "d").symlink_to(outside)  # as if swapped in after the ACL check
    (root / "a" / "d").symlink_to(outside)
    (root / "a" / "b" / "d").symlink_to(outside)
    for path in ("d", "a/d", "a/b/d", "a/d/c", "a/b/d/c"):
        with pytest.raises(LinkFound):
            beneath.open_dir(str(root), path)
        with pytest.raises(LinkFound):
            beneath.open_file(str(root), f"{path}/f", os.O_RDONLY)
    with pytest.raises(NodeNotFound):
        beneath.open_dir(str(root), "a/missing/b")
    fd = beneath.open_dir(str(root), "a/b")
    try:
        assert os.fstat(fd).st_ino == (root / "a" / "b").stat().st_ino
    finally:
        os.close(fd)


# -- pre-authorized URLs --------------------------------------------------------------
def test_preauth_urls_refused_when_expired_tampered_or_misused(server: Server) -> None:
    with server.client("alice") as c:
        c.put("/vault/files/alice/pa.txt", content=b"alice data").raise_for_status()
        c.put("/vault/files/alice/other.txt", content=b"other data").raise_for_status()
        location = c.get("/vault/files/alice/pa.txt").headers["location"]
    path = urlsplit(location).path
    token = path.split("/")[3]
    with httpx.Client(base_url=server.url, verify=False) as anon:
        assert anon.get(path).content == b"alice data"
        signer = PreauthSigner(load_secret("", server.data_dir), -10)
        expired = signer.issue("vault", "alice/pa.txt", "get", "alice")
        tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
        refused = [
            anon.get(f"/vault/preauth/{expired}/alice/pa.txt"),
            anon.get(f"/vault/preauth/{tampered}/alice/pa.txt"),
            anon.get(f"/vault/preauth/{token}/alice/other.txt"),     # another node
            anon.put(f"/vault/preauth/{token}/alice/pa.txt", content=b"x"),  # other direction
            anon.get(f"/arc/preauth/{token}/alice/pa.txt"),          # another service
        ]
        for r in refused:
            assert r.status_code in (403, 404) and b"alice data" not in r.content, r.text
        assert anon.get(path).content == b"alice data"


def test_delete_never_follows_a_swapped_directory(tmp_path) -> None:
    """Deleting ``d/f`` after ``d`` was swapped for a symlink must not delete outside files."""
    from vospace_server.storage.arc.tree import ArcTree

    tree = ArcTree(str(tmp_path / "arc"), root_owner="admin", base_uri="vos://localhost~arc")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("keep me")
    (outside / "sub").mkdir()
    os.symlink(outside, tmp_path / "arc" / "home" / "d")  # swapped in after the ACL check
    for name in ("f", "sub"):
        with pytest.raises(LinkFound):
            tree._remove(str(tmp_path / "arc" / "home" / "d" / name))
    assert (outside / "f").read_text() == "keep me" and (outside / "sub").is_dir()


@pytest.mark.parametrize("node_type", [NodeType.CONTAINER, NodeType.DATA, NodeType.LINK])
def test_create_never_lands_outside_when_the_parent_is_swapped(tmp_path, node_type) -> None:
    """A session user swaps ``home/d`` for a symlink to an outside folder between the
    server's checks and the create: the new entry must not appear outside the tree."""
    from vospace_server.storage.arc.tree import ArcTree

    outside = tmp_path / "outside"
    outside.mkdir()
    arc = tmp_path / "arc"

    class RacedArcTree(ArcTree):
        """Runs the attacker's swap right after the parent's checks pass."""

        def resolve(self, path: str):
            chain = super().resolve(path)
            if path == "home/d":
                os.rename(arc / "home" / "d", arc / "home" / "d-moved")
                os.symlink(outside, arc / "home" / "d")
            return chain

    tree = RacedArcTree(str(arc), root_owner="admin", base_uri="vos://localhost~arc")
    tree.create(Node("home/d", NodeType.CONTAINER), owner="alice")
    with pytest.raises(LinkFound):
        tree.create(Node("home/d/new", node_type, target="vos://localhost~arc/x"), owner="alice")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("target", ["f", "sub"])
def test_property_writes_never_land_outside_when_a_parent_is_swapped(tmp_path, target) -> None:
    """The same swap between the checks and a property update (POST of a node): neither
    the properties nor the permissions may be written on an outside file or folder."""
    from vospace_server.storage.arc.tree import ArcTree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("outside")
    (outside / "sub").mkdir()
    arc = tmp_path / "arc"
    title = "ivo://ivoa.net/vospace/core#title"

    class RacedArcTree(ArcTree):
        swap = False

        def resolve(self, path: str):
            chain = super().resolve(path)
            if self.swap and path == f"home/d/{target}":
                os.rename(arc / "home" / "d", arc / "home" / "d-moved")
                os.symlink(outside, arc / "home" / "d")
            return chain

    tree = RacedArcTree(str(arc), root_owner="admin", base_uri="vos://localhost~arc")
    tree.create(Node("home/d", NodeType.CONTAINER), owner="alice")
    tree.create(Node(f"home/d/{target}",
                     NodeType.DATA if target == "f" else NodeType.CONTAINER), owner="alice")
    tree.swap = True
    with pytest.raises(LinkFound):
        tree.update_properties(f"home/d/{target}", {title: "moved?",
                                                    "ivo://ivoa.net/vospace/core#ispublic": "true"})
    assert os.listxattr(outside / target) == []


@pytest.mark.parametrize("swapped", ["source", "destination"])
def test_move_never_crosses_a_swapped_parent(tmp_path, swapped) -> None:
    """A parent of the source or of the destination is swapped for a symlink to an outside
    folder after the move's checks: nothing may leave the tree or come into it."""
    from vospace_server.storage.arc.tree import ArcTree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("outside")
    arc = tmp_path / "arc"
    parent = "home/src" if swapped == "source" else "home/dst"

    class RacedArcTree(ArcTree):
        swap = False

        def resolve(self, path: str):
            chain = super().resolve(path)
            if self.swap and path == "home/dst":  # the last lookup before the rename
                self.swap = False
                os.rename(arc / parent, arc / f"{parent}-moved")
                os.symlink(outside, arc / parent)
            return chain

    tree = RacedArcTree(str(arc), root_owner="admin", base_uri="vos://localhost~arc")
    for folder in ("home/src", "home/dst"):
        tree.create(Node(folder, NodeType.CONTAINER), owner="alice")
    tree.create(Node("home/src/f", NodeType.DATA), owner="alice")
    tree.swap = True
    with pytest.raises(LinkFound):
        tree.move("home/src/f", "home/dst/g")
    assert sorted(p.name for p in outside.iterdir()) == ["f"]
    assert (outside / "f").read_text() == "outside"


def test_copy_never_reads_through_a_folder_swapped_during_it(tmp_path) -> None:
    """A session user swaps a folder of the tree being copied for a symlink to an outside
    folder while the server copies it: the copy must not take in the outside files."""
    from vospace_server.storage.arc.tree import ArcTree

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("secret")
    arc = tmp_path / "arc"
    tree = ArcTree(str(arc), root_owner="admin", base_uri="vos://localhost~arc")
    for folder in ("home/src", "home/src/sub"):
        tree.create(Node(folder, NodeType.CONTAINER), owner="alice")
    (arc / "home" / "src" / "sub" / "f").write_text("inside")
    entries = []

    def swap_before_the_third_entry() -> None:  # the copy's own per-entry hook
        entries.append(1)
        if len(entries) == 3:  # src, src/sub, then src/sub/f
            os.rename(arc / "home" / "src" / "sub", arc / "home" / "src" / "sub-moved")
            os.symlink(outside, arc / "home" / "src" / "sub")

    tree.copy("home/src", "home/copy", "alice", swap_before_the_third_entry)
    assert len(entries) >= 3
    assert (arc / "home" / "copy" / "sub" / "f").read_text() == "inside"
