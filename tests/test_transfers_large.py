"""A 2 GiB sparse file through the data path (curl over TLS, the fastest client here).

Kept at 2 GiB and on vault only so CI stays fast (arc shares the streaming code; its commit
is covered by the smaller uploads elsewhere); the code path has no size limit (offsets and lengths are
Python ints, SQL BIGINT, and nothing is held in memory beyond one chunk). Marks written at
a few offsets make misplaced chunks detectable by ranged reads, besides the MD5.
"""
from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest

from .conftest import ServiceUnderTest

SIZE = 2 * 1024 ** 3
MARKS = {0: b"start", 1234567891: b"middle", SIZE - 3: b"end"}


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparse") / "sparse.bin"
    with open(path, "wb") as fh:
        fh.truncate(SIZE)
        for offset, mark in MARKS.items():
            fh.seek(offset)
            fh.write(mark)
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            digest.update(chunk)
    return path, digest.hexdigest()


def test_sparse_2gib_upload(sqlite_server, sparse):
    service = "vault"
    svc = ServiceUnderTest(sqlite_server, service, service)
    path = svc.unique()
    src, md5 = sparse
    url = f"{svc.server.url}/{service}/files/{path}"
    token = svc.server.tokens["alice"]
    digest = base64.b64encode(bytes.fromhex(md5)).decode()
    out = subprocess.run(["curl", "-sSk", "-T", str(src), "-o", "/dev/null", "-D", "-",
                          "-H", f"Authorization: Bearer {token}", "-H", f"Digest: md5={digest}",
                          url], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "HTTP/1.1 201" in out.stdout, out.stdout + out.stderr
    assert f"md5={digest}" in out.stdout
    try:
        with svc.client() as c:
            head = c.head(f"/{service}/files/{path}")
            assert head.headers["content-length"] == str(SIZE)
            assert head.headers["digest"] == f"md5={digest}"
            for offset, mark in MARKS.items():
                r = c.get(f"/{service}/files/{path}", follow_redirects=True,
                          headers={"Range": f"bytes={offset}-{offset + len(mark) - 1}"})
                assert r.status_code == 206 and r.content == mark
    finally:
        with svc.client() as c:
            c.delete(svc.nodes_url(path))
