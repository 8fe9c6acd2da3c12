"""vosclient.Client and the fsspec filesystems against real servers (vault and arc)."""
from __future__ import annotations

import hashlib
import io
import http.server
import os
import threading
import uuid

import fsspec
import httpx
import pytest

from vosclient import Client, errors, uris
from vosclient.bulk import Bulk
from vosclient.fs import ArcFileSystem, VOSFileSystem

from .conftest import ServiceUnderTest
from .harness import free_port, make_server, requests_total
from .waiting import wait_until


def prefix(svc: ServiceUnderTest) -> str:
    return "vos" if svc.name == "vault" else "arc"


def name(svc: ServiceUnderTest, path: str) -> str:
    return f"{prefix(svc)}:{path}"


@pytest.fixture
def client(svc):
    with Client(url=svc.server.url, token=svc.server.tokens["alice"], verify=False) as c:
        yield c


def test_uri_forms():
    assert uris.parse("vos:alice/x/") == uris.Remote("vault", "alice/x")
    assert uris.parse("vault:/alice//y") == uris.Remote("vault", "alice/y")
    assert uris.parse("arc:home/a") == uris.Remote("arc", "home/a")
    assert uris.parse("vos://example.org~arc/projects/p") == uris.Remote("arc", "projects/p")
    assert uris.parse("vos://example.org!vault/a") == uris.Remote("vault", "a")
    with pytest.raises(errors.InvalidArgument):
        uris.parse("http://x/y")
    assert uris.parse("vos:alice/x/../y") == uris.Remote("vault", "alice/y")


def test_nodes_roundtrip(svc, client, tmp_path):
    base = svc.unique()
    client.mkdir(name(svc, f"{base}/a/b"), parents=True)
    assert client.isdir(name(svc, f"{base}/a/b"))
    with pytest.raises(errors.AlreadyExists):
        client.mkdir(name(svc, f"{base}/a"))
    with pytest.raises(errors.NotFound):
        client.mkdir(name(svc, f"{base}/x/y"))
    for i in range(7):
        client.mkdir(name(svc, f"{base}/p/c{i}"), parents=True)
    names = [n.name for n in client.iterdir(name(svc, f"{base}/p"), page=3)]
    assert names == [f"c{i}" for i in range(7)]            # paged, no duplicates, no gaps
    assert [r.name for r in client.glob(name(svc, f"{base}/p/c[2-4]"))] == ["c2", "c3", "c4"]

    client.set_props(name(svc, f"{base}/a"), {"colour": "red"})
    assert client.get_node(name(svc, f"{base}/a")).prop("colour") == "red"
    client.set_props(name(svc, f"{base}/a"), {"colour": None})
    assert client.get_node(name(svc, f"{base}/a")).prop("colour") is None

    link = client.link(name(svc, f"{base}/ln"), name(svc, f"{base}/a"))
    assert link.islink and link.target.endswith(f"~{svc.name}/{base}/a")

    client.lock(name(svc, f"{base}/a"))
    assert client.get_node(name(svc, f"{base}/a")).islocked
    with pytest.raises(errors.Locked):
        client.delete(name(svc, f"{base}/a"))
    client.unlock(name(svc, f"{base}/a"))
    client.delete(name(svc, f"{base}/a"))
    assert not client.exists(name(svc, f"{base}/a"))
    with pytest.raises(errors.NotFound):
        client.get_node(name(svc, f"{base}/a"))


def test_denied_and_missing(svc, client):
    with pytest.raises(errors.PermissionDenied) as info:
        client.mkdir(name(svc, f"{svc.home('bob')}/intrude"))
    assert info.value.exit_code == 13
    with pytest.raises(errors.NotFound) as info:
        client.get_node(name(svc, f"{svc.home('alice')}/missing-{os.getpid()}"))
    assert info.value.exit_code == 2


def test_upload_download_md5_skip_and_resume(svc, client, tmp_path):
    base = svc.unique()
    client.mkdir(name(svc, base))
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    result = client.upload(str(src), name(svc, base + "/"))
    assert result.action == "uploaded" and result.dest.endswith("/src.bin")
    node = client.get_node(name(svc, f"{base}/src.bin"))
    assert node.size == len(data) and node.md5 == hashlib.md5(data).hexdigest()
    assert client.upload(str(src), name(svc, f"{base}/src.bin")).action == "skipped"

    out = tmp_path / "out.bin"
    assert client.download(name(svc, f"{base}/src.bin"), str(out)).action == "downloaded"
    assert out.read_bytes() == data
    assert client.download(name(svc, f"{base}/src.bin"), str(out)).action == "skipped"

    # resume: a partial download continues from where it stopped (Range request)
    out.unlink()
    (tmp_path / "out.bin.part").write_bytes(data[:1000000])
    assert client.download(name(svc, f"{base}/src.bin"), str(out)).action == "downloaded"
    assert out.read_bytes() == data and not (tmp_path / "out.bin.part").exists()
    # a corrupt partial file is detected by MD5 and the download restarted
    out.unlink()
    (tmp_path / "out.bin.part").write_bytes(b"x" * 1000)
    client.download(name(svc, f"{base}/src.bin"), str(out))
    assert out.read_bytes() == data

    assert client.read_bytes(name(svc, f"{base}/src.bin"), 10, 20) == data[10:20]
    client.write_bytes(name(svc, f"{base}/small"), b"hello")
    assert client.read_bytes(name(svc, f"{base}/small")) == b"hello"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    client.upload(str(empty), name(svc, f"{base}/empty"))
    client.download(name(svc, f"{base}/empty"), str(tmp_path / "empty2"))
    assert (tmp_path / "empty2").read_bytes() == b""


def test_move_and_server_copy(svc, client):
    base = svc.unique()
    client.mkdir(name(svc, f"{base}/d/sub"), parents=True)
    client.write_bytes(name(svc, f"{base}/d/sub/f"), b"payload")
    client.mkdir(name(svc, f"{base}/into"))
    client.move(name(svc, f"{base}/d"), name(svc, f"{base}/into"))
    assert client.read_bytes(name(svc, f"{base}/into/d/sub/f")) == b"payload"
    assert not client.exists(name(svc, f"{base}/d"))
    client.copy_remote(name(svc, f"{base}/into/d/sub/f"), name(svc, f"{base}/copy"))
    assert client.read_bytes(name(svc, f"{base}/copy")) == b"payload"
    with pytest.raises(errors.NotFound):
        client.move(name(svc, f"{base}/nothing"), name(svc, f"{base}/else"))


def test_anonymous_fallback_for_public_data(svc, caplog):
    top = ("" if svc.name == "vault" else "projects/") + f"pub-{uuid.uuid4().hex[:8]}"
    with Client(url=svc.server.url, token=svc.server.tokens["admin"], verify=False) as admin:
        admin.mkdir(name(svc, top))
        admin.write_bytes(name(svc, f"{top}/pub"), b"public bytes")
        admin.set_props(name(svc, top), {"ispublic": "true"})
        admin.set_props(name(svc, f"{top}/pub"), {"ispublic": "true"})
    with Client(url=svc.server.url, token="vst_expired-or-wrong", verify=False) as stale:
        assert stale.read_bytes(name(svc, f"{top}/pub")) == b"public bytes"
        assert "continuing anonymously" in caplog.text and stale.transport.notices
        with pytest.raises(errors.NotAuthenticated):
            stale.mkdir(name(svc, f"{top}/new"))


def test_server_down_is_unreachable():
    with Client(url=f"https://127.0.0.1:{free_port()}", token="t", verify=False,
                backoff=0.01) as c:
        with pytest.raises(errors.Unreachable) as info:
            c.get_node("vos:alice")
    assert info.value.exit_code == 101


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 0) to the first two requests, then proxies to the server."""

    upstream = ""
    failures = 0

    def do_GET(self):
        cls = type(self)
        if cls.failures < 2:
            cls.failures += 1
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        r = httpx.get(cls.upstream + self.path, verify=False,
                      headers={"Authorization": self.headers.get("Authorization", "")})
        self.send_response(r.status_code)
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    def log_message(self, *args):
        pass


def test_retries_503_with_retry_after(sqlite_server):
    _Flaky.upstream, _Flaky.failures = sqlite_server.url, 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with Client(url=f"http://127.0.0.1:{httpd.server_port}",
                    token=sqlite_server.tokens["alice"]) as c:
            assert c.get_node("vos:alice").isdir
        assert _Flaky.failures == 2
    finally:
        httpd.shutdown()


@pytest.fixture
def fresh_fsspec():
    """Close the connections of cached filesystem instances (a server with open keep-alive
    connections waits for them when it stops)."""
    yield
    for cls in (VOSFileSystem, ArcFileSystem):
        for instance in list(cls._cache.values()):
            instance.client.close()
        cls.clear_instance_cache()


def test_fsspec_and_pandas(svc, tmp_path, monkeypatch, fresh_fsspec):
    import pandas as pd  # in the test extra: a missing pandas must fail, not skip
    monkeypatch.setenv("VOSPACE_URL", svc.server.url)
    monkeypatch.setenv("VOSPACE_TOKEN", svc.server.tokens["alice"])
    monkeypatch.setenv("VOSPACE_INSECURE", "1")
    base = svc.unique()
    proto = "vos" if svc.name == "vault" else "arc"
    fs_class = VOSFileSystem if svc.name == "vault" else ArcFileSystem
    assert type(fsspec.filesystem(proto)) is fs_class
    fs = fsspec.filesystem(proto)
    fs.mkdir(f"{base}/t")
    with fsspec.open(f"{proto}://{base}/t/x.bin", "wb") as f:
        f.write(b"0123456789" * 100000)
    with fsspec.open(f"{proto}://{base}/t/x.bin", "rb") as f:
        f.seek(999990)
        assert f.read() == b"0123456789"
        f.seek(5)
        assert f.read(7) == b"5678901"
    assert fs.cat_file(f"{base}/t/x.bin", start=-4) == b"6789"
    info = fs.info(f"{proto}://{base}/t/x.bin")
    assert info["size"] == 1000000 and info["type"] == "file" and len(info["md5"]) == 32
    assert fs.ls(f"{base}/t", detail=False) == [f"{base}/t/x.bin"]
    full = f"vos://localhost~{svc.name}/{base}/t/x.bin"
    assert fs.size(full) == 1000000
    frame = pd.DataFrame({"ra": [10.5, 11.25], "dec": [-3.0, 4.5]})
    frame.to_csv(f"{proto}://{base}/t/cat.csv", index=False)
    assert pd.read_csv(f"{proto}://{base}/t/cat.csv").equals(frame)
    fs.mv(f"{base}/t/cat.csv", f"{base}/t/cat2.csv")
    assert fs.exists(f"{base}/t/cat2.csv") and not fs.exists(f"{base}/t/cat.csv")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{base}/t/none")
    fs.rm(f"{base}/t", recursive=True)
    assert not fs.exists(f"{base}/t")
    with Client() as c:     # the short form through vosclient.open
        c.write_bytes(f"{proto}:{base}/short", b"abc")
        with c.open(f"{proto}:{base}/short") as f:
            assert f.read() == b"abc"


def test_bulk_tls_checks_the_server_certificate(sqlite_server, monkeypatch):
    """File bodies go over bulk.MemoryTLSConnection (TLS over memory buffers): the
    certificate is still verified against the trusted CAs and the host name."""
    server = sqlite_server
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several records, reads and buffers
    with server.client("alice") as c:
        assert c.put("/arc/files/home/alice/tls.bin", content=payload).status_code == 201
    auth = lambda: {"Authorization": f"Bearer {server.tokens['alice']}"}  # noqa: E731
    untrusted = Bulk(server.url, auth, verify=True)
    with pytest.raises(errors.Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.get("/arc/files/home/alice/tls.bin")
    monkeypatch.setenv("SSL_CERT_FILE", os.path.join(server.data_dir, "tls-cert.pem"))
    trusted = Bulk(server.url, auth, verify=True)
    stream = trusted.get("/arc/files/home/alice/tls.bin")
    assert stream.read() == payload
    stream.close()
    assert hashlib.md5(payload).hexdigest() == trusted.put(
        "/arc/files/home/alice/tls-back.bin", io.BytesIO(payload), len(payload),
        "application/octet-stream")
    trusted.close()


def test_bulk_reads_an_answer_whose_connection_closes(sqlite_server):
    """An answer with ``Connection: close`` (an upload refused before its body was read,
    413 over quota or 403 locked) is still read whole: http.client closes its connection
    under the response, as with a socket the bytes stay readable until the response is
    done (the fault text lost here made a quota refusal an EBADF on arcfs mounts)."""
    server = sqlite_server
    auth = lambda: {"Authorization": f"Bearer {server.tokens['alice']}"}  # noqa: E731
    bulk = Bulk(server.url, auth, verify=False)
    for _ in range(3):
        with pytest.raises(errors.NotFound, match="NodeNotFound"):
            bulk.get("/arc/files/home/alice/no-such-file", extra={"Connection": "close"})
    bulk.close()


def test_bulk_keeps_the_data_port_connection_alive(sqlite_server):
    """Vault GETs answer 303 to the data port: the files after the first ride the same
    kept-alive TLS connection there (a fresh one per file halved small-file downloads)."""
    server = sqlite_server
    with Client(url=server.url, token=server.tokens["alice"], verify=False) as client:
        for i in range(3):
            client.write_bytes(f"vos:alice/keep-{i}", bytes([i]) * 4096)
        sockets = []
        for i in range(3):
            stream = client.open_stream(f"vos:alice/keep-{i}")
            assert stream.conn.port == server.data_port
            sockets.append(stream.conn.sock)
            assert stream.read() == bytes([i]) * 4096
            stream.close()
        assert sockets[0] is sockets[1] is sockets[2]


def test_bulk_chunked_upload_of_memoryviews(sqlite_server):
    """A chunked PUT (size unknown: arcfs streaming a file while it is written) of bytes and
    memoryviews, empty pieces among them, stores exactly those bytes; the MD5 returned is
    the client's own, checked against the server's, or with ``tls_suffices`` over HTTPS the
    server's."""
    server = sqlite_server
    auth = lambda: {"Authorization": f"Bearer {server.tokens['alice']}"}  # noqa: E731
    bulk = Bulk(server.url, auth, verify=False)
    pieces = [os.urandom(1 << 20), b"", memoryview(os.urandom(5000)), os.urandom(70_000)]
    payload = b"".join(bytes(p) for p in pieces)
    for name, trust in (("hashed", False), ("trusted", True)):
        md5 = bulk.put_chunks(f"/arc/files/home/alice/chunked-{name}.bin", iter(pieces),
                              "application/octet-stream", tls_suffices=trust)
        assert md5 == hashlib.md5(payload).hexdigest(), name
        stream = bulk.get(f"/arc/files/home/alice/chunked-{name}.bin")
        assert stream.read() == payload, name
        stream.close()
    bulk.close()


def test_large_uploads_go_to_the_negotiated_data_port(svc, client, tmp_path):
    """A file of NEGOTIATE_FROM bytes or more is sent to the pre-authorized URL transfer
    negotiation hands out (the data port), a smaller one to /files on the main port; both
    arrive with their MD5, and a refused push is refused as on /files."""
    from vosclient.transfer import NEGOTIATE_FROM
    folder = svc.unique()
    client.mkdir(name(svc, folder))
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(os.urandom(NEGOTIATE_FROM + 5))
    small.write_bytes(os.urandom(1000))
    client.upload(str(small), name(svc, f"{folder}/small.bin"))
    assert not client.bulk.others  # /files on the main port only
    client.upload(str(big), name(svc, f"{folder}/big.bin"))
    [data_pool] = client.bulk.others.values()
    assert data_pool.port == svc.server.data_port and data_pool.idle  # its connection kept
    for path in (big, small):
        node = client.get_node(name(svc, f"{folder}/{path.name}"))
        assert node.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    with Client(url=svc.server.url, token=svc.server.tokens["bob"], verify=False) as bob:
        with pytest.raises(errors.PermissionDenied):
            bob.upload(str(big), name(svc, f"{folder}/bob.bin"))


def test_large_downloads_come_from_the_negotiated_data_port(svc, client, tmp_path):
    """A file of NEGOTIATE_FROM bytes or more is fetched from the pre-authorized URL a pull
    negotiation hands out (the data port), a smaller one from /files; both arrive whole
    with their MD5 checked; a resumed big download asks the data port for the rest only.
    A user who may not read the file is handed no URL and gets the error /files gives."""
    from vosclient.transfer import NEGOTIATE_FROM
    folder = svc.unique()
    client.mkdir(name(svc, folder))
    big, small = os.urandom(NEGOTIATE_FROM + 5), os.urandom(1000)
    for data, leaf in ((big, "big.bin"), (small, "small.bin")):
        (tmp_path / leaf).write_bytes(data)
        client.upload(str(tmp_path / leaf), name(svc, f"{folder}/{leaf}"))
    counted = lambda endpoint: requests_total(svc.server, svc.name, endpoint)  # noqa: E731
    files, preauth = counted("files"), counted("preauth")
    with Client(url=svc.server.url, token=svc.server.tokens["alice"], verify=False) as fresh:
        fresh.download(name(svc, f"{folder}/big.bin"), str(tmp_path / "big.out"))
        assert (counted("files"), counted("preauth")) == (files, preauth + 1)
        [data_pool] = fresh.bulk.others.values()
        assert data_pool.port == svc.server.data_port
        fresh.download(name(svc, f"{folder}/small.bin"), str(tmp_path / "small.out"))
        assert counted("files") == files + 1      # (vault answers it with a 303 to the data port)
        (tmp_path / "resumed.out.part").write_bytes(big[:1000])
        fresh.download(name(svc, f"{folder}/big.bin"), str(tmp_path / "resumed.out"))
        assert counted("files") == files + 1
    assert requests_total(svc.server, svc.name, "preauth", status="206") >= 1
    assert (tmp_path / "big.out").read_bytes() == big
    assert (tmp_path / "resumed.out").read_bytes() == big
    assert (tmp_path / "small.out").read_bytes() == small
    with Client(url=svc.server.url, token=svc.server.tokens["bob"], verify=False) as bob:
        with pytest.raises(errors.PermissionDenied):
            bob.negotiate(name(svc, f"{folder}/big.bin"), push=False)
        with pytest.raises(errors.PermissionDenied):
            bob.open_stream(name(svc, f"{folder}/big.bin"), negotiate=True)
        with pytest.raises(errors.PermissionDenied):
            bob.download(name(svc, f"{folder}/big.bin"), str(tmp_path / "bob.out"))
    assert not (tmp_path / "bob.out").exists() and not (tmp_path / "bob.out.part").exists()


def test_an_expired_preauthorized_url_falls_back_to_files(tmp_path):
    """Range reads of one node negotiate once and keep the URL; once it has expired (or is
    refused otherwise) they go to /files, with the same bytes, and stay there."""
    server = make_server(str(tmp_path), extra_env={"VOSPACE_PREAUTH_LIFETIME": "2"})
    try:
        data = os.urandom(3 << 20)
        with Client(url=server.url, token=server.tokens["alice"], verify=False) as client:
            client.write_bytes("arc:home/alice/f.bin", data)
            source = client.byte_source("arc:home/alice/f.bin", negotiate=True)
            assert read_all(source.open(10, 20)) == data[10:20]
            url = source.url()
            assert f":{server.data_port}/arc/preauth/" in url
            assert read_all(source.open(1 << 20, 2 << 20)) == data[1 << 20:2 << 20]
            assert requests_total(server, "arc", "files") == 0

            def expired() -> bool:
                try:
                    client.bulk.get(url, 0, 1).close()
                except errors.PermissionDenied:
                    return True
                return False
            wait_until(expired, 10, "the pre-authorized URL to expire", retry=())
            refused = requests_total(server, "arc", "preauth", status="403")
            assert read_all(source.open(5, 5000)) == data[5:5000]
            assert source.url() == client.files_url(uris.parse("arc:home/alice/f.bin"))
            assert read_all(source.open(len(data) - 7)) == data[-7:]
            assert requests_total(server, "arc", "preauth", status="403") == refused + 1
            assert requests_total(server, "arc", "files") == 2
    finally:
        server.stop()


def read_all(stream) -> bytes:
    try:
        return stream.read()
    finally:
        stream.close()
