"""Vault on S3: the same data path with blobs in a bucket of a real S3 server (moto's
``moto_server`` on 127.0.0.1), multipart for large objects, downloads by presigned URL."""
from __future__ import annotations

import hashlib
import os

import boto3
import pytest

from .conftest import ServiceUnderTest
from .cluster import BUCKET, start_moto, stop
from .harness import make_server
from .test_cadc_client_nodes import CadcClient, ok


@pytest.fixture(scope="module")
def s3_endpoint():
    proc, url = start_moto()
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory, s3_endpoint):
    env = {"VOSPACE_BLOB_URL": f"s3://{BUCKET}/blobs", "VOSPACE_S3_ENDPOINT_URL": s3_endpoint,
           "VOSPACE_S3_ACCESS_KEY": "test", "VOSPACE_S3_SECRET_KEY": "test"}
    server = make_server(str(tmp_path_factory.mktemp("s3srv")), users=("alice",), extra_env=env)
    yield server
    server.stop()


def bucket_keys(endpoint: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_s3_upload_overwrite_download(s3_server, s3_endpoint):
    svc = ServiceUnderTest(s3_server, "vault", "vault-s3")
    path = svc.unique()
    before = set(bucket_keys(s3_endpoint))
    small, large = os.urandom(1000), os.urandom(20 * 1024 * 1024 + 5)  # large: 3 parts
    with svc.client() as c:
        for data in (small, large):
            r = c.put(f"/vault/files/{path}", content=data)
            assert r.status_code == 201, r.text
        # the replaced content is kept as a version (version_keep), in its own object
        assert len(set(bucket_keys(s3_endpoint)) - before) == 2
        r = c.get(f"/vault/files/{path}", follow_redirects=True)
        assert r.status_code == 200 and hashlib.md5(r.content).digest() == hashlib.md5(large).digest()
        assert str(r.url).startswith(s3_endpoint)  # the bytes came straight from S3
        part = c.get(f"/vault/files/{path}", follow_redirects=True, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == large[10:20]
        head = c.head(f"/vault/files/{path}")
        assert head.headers["content-length"] == str(len(large))
        assert c.delete(svc.nodes_url(path)).status_code == 200
    assert set(bucket_keys(s3_endpoint)) == before  # node and versions gone, objects too
    result = s3_server.vospace("fsck")
    assert result.returncode == 0 and "0 problem(s)" in result.stdout, result.stdout + result.stderr


def test_s3_cadc_vcp_round_trip(s3_server, tmp_path):
    svc = ServiceUnderTest(s3_server, "vault", "vault-s3")
    home = tmp_path / "home"
    home.mkdir()
    cadc = CadcClient(svc, str(home), svc.unique())
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(6 * 1024 * 1024 + 7))
    ok(cadc.run("vcp", str(src), cadc.short(f"{cadc.base}/up.bin")))
    outdir = tmp_path / "out"
    outdir.mkdir()
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/up.bin"), str(outdir)))
    assert (outdir / "up.bin").read_bytes() == src.read_bytes()


def test_s3_vosclient_download_and_resume(s3_server, tmp_path):
    """vcp's http.client path follows the vault's 303 and then the redirect to the presigned
    S3 URL on another host (no credential sent there), and resumes a ``.part`` by Range."""
    from vosclient import Client
    data = os.urandom(3 * 1024 * 1024 + 7)
    src, out = tmp_path / "src.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    with Client(url=s3_server.url, token=s3_server.tokens["alice"], verify=False) as c:
        c.upload(str(src), "vos:alice/s3-vosclient.bin")
        assert c.download("vos:alice/s3-vosclient.bin", str(out)).action == "downloaded"
        assert out.read_bytes() == data
        out.unlink()
        (tmp_path / "out.bin.part").write_bytes(data[:1000000])
        c.download("vos:alice/s3-vosclient.bin", str(out))
        assert out.read_bytes() == data and not (tmp_path / "out.bin.part").exists()
        c.delete("vos:alice/s3-vosclient.bin")
