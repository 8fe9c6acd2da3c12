"""The data port (vospace_server/dataport): the URLs transfer negotiation hands out, served
on blocking sockets in threads, with the main port's checks and rules.

Real servers (tests/harness.py starts every server with a data port), real HTTP clients
and raw sockets for what clients do wrong: refused tokens and ACLs, ranges and conditional
GETs, MD5 headers both ways, quotas (announced and mid-stream), bad requests, clients that
vanish mid-upload, concurrent transfers, plain HTTP (sendfile), and a SIGTERM while a
transfer is in progress.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import ServiceUnderTest
from .harness import Server, free_port, free_ports
from .test_quotas import set_quota
from .test_transfers_faults import debris, node_state
from .waiting import wait_until

CORE = "ivo://ivoa.net/vospace/core#"


def endpoint(svc: ServiceUnderTest, path: str, direction: str, user: str = "alice",
             server: Server | None = None) -> str:
    """The first endpoint synctrans hands ``user`` for a push or pull of ``path``."""
    server = server or svc.server
    scheme = "https" if server.tls else "http"
    with server.client(user) as c:
        r = c.get(f"/{svc.name}/synctrans", params={
            "TARGET": svc.uri(path), "PROTOCOL": f"{CORE}{scheme}{direction}",
            "DIRECTION": "pushToVoSpace" if direction == "put" else "pullFromVoSpace"})
    assert r.status_code == 200, r.text
    return r.text.split("<vos:endpoint>")[1].split("</vos:endpoint>")[0]


def data_client() -> httpx.Client:
    """A client with no credential: the pre-authorized URL is all it has."""
    return httpx.Client(verify=False, timeout=60)


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def raw(server: Server, head: str, body: bytes = b"", tls: bool = True) -> bytes:
    """Send ``head`` (and ``body``) to the data port on a fresh connection; all it answers."""
    sock = socket.create_connection(("127.0.0.1", server.data_port), timeout=30)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    head = head.replace("\r\n", "\r\nConnection: close\r\n", 1)  # one request only
    with sock:
        sock.sendall(head.encode("latin-1") + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_negotiated_urls_are_on_the_data_port_and_round_trip(svc):
    path = svc.unique()
    data = os.urandom(9 * 1024 * 1024 + 17)  # past one chunk: the pipelined path
    put_url = endpoint(svc, path, "put")
    assert urlsplit(put_url).port == svc.server.data_port
    with data_client() as c:
        r = c.put(put_url, content=data, headers={"Content-MD5": md5_b64(data)})
        assert r.status_code == 201, r.text
        assert r.headers["Digest"] == f"md5={md5_b64(data)}"
        logged = [json.loads(line) for line in open(svc.server.log_path) if line.startswith("{")]
        assert {"request_id": r.headers["X-Request-ID"], "method": "PUT", "status": 201,
                "bytes_in": len(data), "path": f"/{svc.name}/preauth/***/{path}"}.items() <= \
            next(e for e in logged if e.get("request_id") == r.headers["X-Request-ID"]
                 and "status" in e).items()
        get_url = endpoint(svc, path, "get")
        assert urlsplit(get_url).port == svc.server.data_port
        r = c.get(get_url)
        assert r.status_code == 200 and r.content == data
        assert r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        assert r.headers["Digest"] == f"md5={md5_b64(data)}"
        assert r.headers["Content-Disposition"].endswith(f'"{path.rsplit("/", 1)[1]}"')
        head = c.head(get_url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(data))
        part = c.get(get_url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        tail = c.get(get_url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        assert c.get(get_url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
        same = c.get(get_url, headers={"If-None-Match": r.headers["ETag"]})
        assert same.status_code == 304 and same.content == b""
    props = svc.properties(path)
    assert props[CORE + "MD5"] == hashlib.md5(data).hexdigest()
    assert props[CORE + "length"] == str(len(data))


def test_ranges_are_answered_as_on_the_main_port(svc):
    """The data port answers every Range as the main port does (both use byte_rules):
    the same status (206, 416, or 200 for what it ignores), Content-Range, length and
    bytes as arc's /files and the main port's own /preauth route for the same token."""
    path = svc.unique()
    data = os.urandom((2 << 20) + 77)
    size = len(data)
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=data).status_code == 201
        data_url = endpoint(svc, path, "get")
        main_url = f"{svc.server.url}{urlsplit(data_url).path}"  # the same token, main port
        urls = [data_url, main_url]
        if svc.name == "arc":                      # vault's /files answers 303 to data_url
            urls.append(f"{svc.server.url}/arc/files/{path}")
        ranges = ("bytes=0-0", "bytes=100-199", "bytes=-10", f"bytes={size - 5}-",
                  f"bytes={size - 3}-{size + 100}", "bytes=300000-", f"bytes={size}-",
                  f"bytes={size + 9}-{size + 20}", "bytes=10-5", "bytes=0-1,5-6", "items=0-5")
        headers = {"Authorization": f"Bearer {svc.server.tokens['alice']}"}
        for wanted in ranges:
            answers = []
            for url in urls:
                r = c.get(url, headers={**headers, "Range": wanted})
                answers.append((r.status_code, r.headers.get("Content-Range"),
                                r.headers.get("Content-Length"), r.content))
            assert all(a == answers[0] for a in answers), (wanted, [a[:3] for a in answers])
            status, content_range, _, body = answers[0]
            if wanted == "bytes=100-199":
                assert (status, content_range, body) == (206, f"bytes 100-199/{size}",
                                                         data[100:200])
            if wanted == f"bytes={size}-":
                assert (status, content_range) == (416, f"bytes */{size}")


def test_chunked_upload_and_small_upload(svc):
    for size in (0, 1000, 5 * 1024 * 1024 + 3):
        path = svc.unique()
        data = os.urandom(size)
        with data_client() as c:
            r = c.put(endpoint(svc, path, "put"), content=iter([data[:size // 2],
                                                                data[size // 2:]]))
            assert r.status_code == 201, r.text  # an iterator body goes chunked
        assert node_state(svc.server, svc.name, path) == (data, hashlib.md5(data).hexdigest())


def test_vault_files_redirects_to_the_data_port(sqlite_server):
    svc = ServiceUnderTest(sqlite_server, "vault", "vault-sqlite")
    path = svc.unique()
    data = os.urandom(3000)
    with svc.client() as c:
        assert c.put(f"/vault/files/{path}", content=data).status_code == 201
        r = c.get(f"/vault/files/{path}")
        assert r.status_code == 303
        assert urlsplit(r.headers["Location"]).port == sqlite_server.data_port
    with data_client() as c:
        assert c.get(r.headers["Location"]).content == data


def test_md5_mismatch_is_refused_and_nothing_is_published(svc):
    path = svc.unique()
    old = os.urandom(5000)
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=old).status_code == 201
        for size in (4000, 6 * 1024 * 1024):  # whole-body and pipelined paths
            new = os.urandom(size)
            r = c.put(endpoint(svc, path, "put"), content=new,
                      headers={"Content-MD5": md5_b64(b"something else")})
            assert r.status_code == 412 and r.text.startswith("PreconditionFailed"), r.text
        r = c.put(endpoint(svc, path, "put"), content=b"x", headers={"Content-MD5": "nonsense"})
        assert r.status_code == 400 and r.text.startswith("InvalidArgument")
    assert node_state(svc.server, svc.name, path) == (old, hashlib.md5(old).hexdigest())
    assert debris(svc.server) == []


def test_tokens_are_the_only_credential_and_are_checked(svc):
    path = svc.unique()
    data = os.urandom(100)
    with data_client() as c:
        put_url = endpoint(svc, path, "put")
        assert c.put(put_url, content=data).status_code == 201
        get_url = endpoint(svc, path, "get")
        prefix, tail = get_url.split("/preauth/")
        token, rest = tail.split("/", 1)
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        refusals = [
            c.get(f"{prefix}/preauth/{forged}/{rest}"),                  # bad signature
            c.put(get_url, content=b"overwrite"),                        # a GET token for PUT
            c.get(put_url),                                              # a PUT token for GET
            c.get(f"{prefix}/preauth/{token}/{rest}-other"),             # another path
            c.get(get_url.replace(f"/{svc.name}/", "/vault/" if svc.name == "arc" else "/arc/", 1)),
            c.get(f"{prefix}/preauth/garbage/{rest}"),                   # not a token at all
        ]
        for r in refusals:
            assert r.status_code == 403 and r.text.startswith("PermissionDenied"), r.text
        assert c.get(get_url).content == data  # still fine after all that


def test_the_acl_check_happens_before_a_url_is_handed_out(svc):
    path = svc.unique()
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=b"private").status_code == 201
    with svc.client("bob") as bob:
        for direction in ("pullFromVoSpace", "pushToVoSpace"):
            r = bob.get(f"/{svc.name}/synctrans", params={
                "TARGET": svc.uri(path), "DIRECTION": direction,
                "PROTOCOL": f"{CORE}https{'put' if direction == 'pushToVoSpace' else 'get'}"})
            assert r.status_code == 403, r.text


def test_quota_announced_and_mid_stream(svc):
    root = svc.unique()
    assert svc.create(root).status_code == 201
    set_quota(svc, root, 6 * 1024 * 1024)
    big = os.urandom(8 * 1024 * 1024)
    with data_client() as c:
        r = c.put(endpoint(svc, f"{root}/announced", "put"), content=big)
        assert r.status_code == 413 and r.text.startswith("QuotaExceeded"), r.text
        r = c.put(endpoint(svc, f"{root}/streamed", "put"), content=iter([big[:4 << 20],
                                                                          big[4 << 20:]]))
        assert r.status_code == 413 and r.text.startswith("QuotaExceeded"), r.text
        fits = os.urandom(1024 * 1024)
        assert c.put(endpoint(svc, f"{root}/fits", "put"), content=fits).status_code == 201
    with svc.client() as c:
        for name in ("announced", "streamed"):
            assert c.get(f"/{svc.name}/nodes/{root}/{name}").status_code == 404
    assert debris(svc.server) == []


def test_client_vanishing_mid_upload_leaves_nothing(svc):
    path = svc.unique()
    old = os.urandom(2000)
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=old).status_code == 201
    url = urlsplit(endpoint(svc, path, "put"))
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", url.port)))
    sock.sendall((f"PUT {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
                  ).encode() + os.urandom(12_000_000))
    wait_until(lambda: debris(svc.server), 20, "the upload to start", interval=0.01)
    assert debris(svc.server), "the upload never started"
    sock.close()
    wait_until(lambda: not debris(svc.server), 20, "the temp file to go", interval=0.05)
    assert debris(svc.server) == []
    assert node_state(svc.server, svc.name, path) == (old, hashlib.md5(old).hexdigest())


def open_files(server: Server, under: str) -> list[str]:
    """Files under ``under`` that the server process holds open."""
    fds = f"/proc/{server.proc.pid}/fd"
    found = []
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith(under):
            found.append(target)
    return found


def open_deleted_files(server: Server) -> list[str]:
    """Files of the server's data directory it holds open though they have no name left."""
    return [f for f in open_files(server, server.data_dir) if f.endswith(" (deleted)")]


def test_replaced_and_deleted_bytes_are_let_go(svc):
    """Uploads over a file and a node's deletion hold the old file open across the rename
    or unlink (its blocks are freed after the answer, storage/release.py); every such
    file is closed soon after, so no space stays taken."""
    path = svc.unique()
    contents = [os.urandom(3 * 1024 * 1024) for _ in range(3)]
    with data_client() as c:
        for data in contents:
            r = c.put(endpoint(svc, path, "put"), content=data,
                      headers={"Content-MD5": md5_b64(data)})
            assert r.status_code == 201, r.text
        assert c.get(endpoint(svc, path, "get")).content == contents[-1]
    with svc.server.client("alice") as c:
        assert c.delete(f"/{svc.name}/nodes/{path}").status_code == 200
    wait_until(lambda: not open_deleted_files(svc.server), 20,
               "the replaced and deleted files to be closed", interval=0.05)
    assert open_deleted_files(svc.server) == []


def test_bad_requests_get_the_right_status(sqlite_server):
    svc = ServiceUnderTest(sqlite_server, "arc", "arc")
    path = svc.unique()
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=b"abc").status_code == 201
    get_path = urlsplit(endpoint(svc, path, "get")).path
    cases = [
        ("GARBAGE\r\n\r\n", 400),
        ("GET /arc/preauth/x/y HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (f"DELETE {get_path} HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (f"GET {get_path.rsplit('/', 1)[0]}/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /arc/preauth/x/%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (f"PUT {get_path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (f"PUT {get_path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (f"GET {get_path} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70000}\r\n\r\n", 431),
        (f"GET {get_path}?version=zero HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]
    for head, status in cases:
        answer = raw(sqlite_server, head)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (head[:60], answer[:200])
        assert b"Traceback" not in answer
    assert raw(sqlite_server, f"GET {get_path} HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"\r\n\r\nabc")


def test_keep_alive_and_concurrent_transfers(svc):
    blobs = {svc.unique(): os.urandom(size) for size in
             (1, 4096, 1 << 20, 5 << 20, 7 << 20, 9 << 20, 123457, 3 << 20)}

    def round_trip(item: tuple[str, bytes]) -> bool:
        path, data = item
        with data_client() as c:  # one keep-alive connection for PUT, GET and HEAD
            assert c.put(endpoint(svc, path, "put"), content=data,
                         headers={"Content-MD5": md5_b64(data)}).status_code == 201
            url = endpoint(svc, path, "get")
            got = c.get(url)
            return got.content == data and c.head(url).status_code == 200

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(round_trip, blobs.items()))


def test_vault_version_through_the_data_port(sqlite_server):
    svc = ServiceUnderTest(sqlite_server, "vault", "vault-sqlite")
    path = svc.unique()
    with data_client() as c:
        for content in (b"first", b"second"):
            assert c.put(endpoint(svc, path, "put"), content=content).status_code == 201
        url = endpoint(svc, path, "get")
        assert c.get(url).content == b"second"
        assert c.get(url, params={"version": "1"}).content == b"first"


def stalled_download(url: str) -> ssl.SSLSocket:
    """A TLS GET of ``url`` whose client reads the first bytes and then stops reading: the
    server stays blocked in a send, part way through the file."""
    parts = urlsplit(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", parts.port), timeout=30))
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    return sock


def mapped_files(server: Server, under: str) -> list[str]:
    """Files under ``under`` that the server process has mapped into its memory."""
    with open(f"/proc/{server.proc.pid}/maps") as maps:
        # address, permissions, offset, device, inode, then the path when there is one
        paths = [fields[5].strip() for fields in (line.split(None, 5) for line in maps)
                 if len(fields) == 6]
    return [path for path in paths if path.startswith(under)]


def test_tls_downloads_map_vault_blobs_never_arc_files(svc):
    """vault's blobs are never rewritten, so the data port encrypts them straight from a
    mapping of the file, a window at a time, unmapped when the download ends or breaks.
    arc's files can be truncated in place (a session writes /arc directly), and a
    truncated mapping would end the whole server with SIGBUS: they are read into a buffer,
    and a truncation mid-download only cuts that download short."""
    server = svc.server
    path = svc.unique()
    data = os.urandom(48 * 1024 * 1024)  # far past what the socket buffers hold
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=data).status_code == 201
    failures = open(server.log_path).read().count("data port connection failed")
    stores = {"vault": os.path.join(server.data_dir, "blobs"),
              "arc": os.path.join(server.data_dir, "arc", *path.split("/"))}
    store = stores[svc.name]
    sock = stalled_download(endpoint(svc, path, "get"))
    try:
        if svc.name == "vault":
            wait_until(lambda: mapped_files(server, store), 20, "a window of the blob mapped")
            assert len(set(mapped_files(server, store))) == 1
        else:
            wait_until(lambda: open_files(server, store), 20, "the file open for the download")
            assert mapped_files(server, store) == []
            os.truncate(store, 1024 * 1024)  # as a program in a session may
            received = 0
            try:  # cut short: never padded, never hung (a timeout fails the test)
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except (ssl.SSLEOFError, ConnectionResetError):
                pass
            assert 0 < received < len(data)
    finally:
        sock.close()
    wait_until(lambda: not mapped_files(server, store), 20, "the window unmapped")
    assert mapped_files(server, store) == []
    with data_client() as c:  # the server goes on
        other = svc.unique()
        assert c.put(endpoint(svc, other, "put"), content=data[:10_000_000]).status_code == 201
        got = c.get(endpoint(svc, other, "get"), headers={"Range": "bytes=4097-"})
        assert got.status_code == 206 and got.content == data[4097:10_000_000]
    assert open(server.log_path).read().count("data port connection failed") == failures


def test_tls_prefers_aes128_gcm_on_both_ports(sqlite_server):
    """Both ports put TLS_AES_128_GCM_SHA256 first (a sixth less CPU per byte than
    OpenSSL's first choice, AES-256, for server and client); a client that offers only
    AES-256 still gets it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for port in (sqlite_server.port, sqlite_server.data_port):
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as sock:
            assert sock.version() == "TLSv1.3"
            assert sock.cipher()[0] == "TLS_AES_128_GCM_SHA256"
        only_256 = subprocess.run(
            ["curl", "-sSk", "-v", "-o", "/dev/null", "--tls13-ciphers",
             "TLS_AES_256_GCM_SHA384", f"https://127.0.0.1:{port}/reg/resource-caps"],
            capture_output=True, text=True, timeout=30)
        assert only_256.returncode == 0, only_256.stderr
        assert "TLSv1.3 / TLS_AES_256_GCM_SHA384" in only_256.stderr


@pytest.fixture
def plain_server():
    root = tempfile.mkdtemp(prefix="dataport-plain-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOSPACE_")}
    port, data_port = free_ports(2)
    server = Server(data_dir=root, port=port, env=env, tls=False, data_port=data_port)
    server.add_user("admin", admin=True)
    server.add_user("alice")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_plain_http_data_port(plain_server):
    svc = ServiceUnderTest(plain_server, "arc", "arc")
    path = svc.unique()
    data = os.urandom(11 * 1024 * 1024 + 5)  # sendfile for the download
    url = endpoint(svc, path, "put")
    assert url.startswith(f"http://127.0.0.1:{plain_server.data_port}/")
    with data_client() as c:
        assert c.put(url, content=data).status_code == 201
        got = c.get(endpoint(svc, path, "get"))
        assert got.status_code == 200 and got.content == data
        part = c.get(endpoint(svc, path, "get"), headers={"Range": "bytes=5-9"})
        assert part.content == data[5:10]


def test_client_upload_over_plain_http_data_port(plain_server, tmp_path):
    """vosclient sends a large file to the negotiated plain-HTTP data port URL, hashing it
    on the way (no TLS to rely on) and checking the MD5 the server stored."""
    from vosclient import Client
    from vosclient.transfer import NEGOTIATE_FROM
    svc = ServiceUnderTest(plain_server, "arc", "arc")
    path = svc.unique()
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(NEGOTIATE_FROM + 3))
    with Client(url=plain_server.url, token=plain_server.tokens["alice"]) as client:
        client.upload(str(local), f"arc:{path}")
        [data_pool] = client.bulk.others.values()
        assert (data_pool.scheme, data_pool.port) == ("http", plain_server.data_port)
        assert client.get_node(f"arc:{path}").md5 == hashlib.md5(local.read_bytes()).hexdigest()


def test_sigterm_lets_a_transfer_in_progress_finish(plain_server):
    svc = ServiceUnderTest(plain_server, "arc", "arc")
    path = svc.unique()
    data = os.urandom(64 * 1024 * 1024)
    with data_client() as c:
        assert c.put(endpoint(svc, path, "put"), content=data).status_code == 201
    url = endpoint(svc, path, "get")
    received = bytearray()
    started = threading.Event()

    def slow_download() -> None:
        with data_client() as c, c.stream("GET", url) as r:
            for chunk in r.iter_bytes(65536):
                received.extend(chunk)
                started.set()
                time.sleep(0.002)  # ~30 MB/s at most: the download outlasts the signal

    reader = threading.Thread(target=slow_download)
    reader.start()
    assert started.wait(20)
    plain_server.proc.send_signal(signal.SIGTERM)

    def refusing() -> bool:
        try:
            socket.create_connection(("127.0.0.1", plain_server.data_port), timeout=5).close()
        except OSError:
            return True
        return False
    wait_until(refusing, 10, "the data port to stop accepting", retry=())
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", plain_server.data_port), timeout=5).close()
    reader.join(60)
    assert len(received) == len(data) and bytes(received) == data
    assert plain_server.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises it
