"""The real CADC client moving bytes: vcp up and down, vcat, vsync, vrm, on vault and arc.

Over TLS with ``--token``. Sizes cover the client's three upload paths: 0 bytes (it only
creates the node), small (HEAD then PUT with ``Digest``) and > 5 MiB (``x-put-txn-op:
start``, where the client insists on the ``Digest`` of the PUT response).
"""
from __future__ import annotations

import hashlib
import os

import pytest

from .conftest import ServiceUnderTest
from .test_cadc_client_nodes import CORE, CadcClient, ok


@pytest.fixture(params=["vault", "arc"])
def cadc(request, sqlite_server, tmp_path) -> CadcClient:
    svc = ServiceUnderTest(sqlite_server, request.param, request.param)
    home = tmp_path / "home"
    home.mkdir()
    client = CadcClient(svc, str(home), svc.unique())
    ok(client.run("vmkdir", client.short(client.base)))
    return client


def md5_file(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("size", [0, 1000, 6 * 1024 * 1024 + 123])
def test_vcp_round_trip(cadc, tmp_path, size):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(size))
    remote = f"{cadc.base}/data.bin"
    ok(cadc.run("vcp", str(src), cadc.short(remote)))
    props = cadc.props(remote)
    assert props[CORE + "length"] == str(size)
    if size:
        assert props[CORE + "MD5"] == md5_file(src)
    dest = tmp_path / "back.bin"
    ok(cadc.run("vcp", cadc.short(remote), str(dest)))
    assert md5_file(dest) == md5_file(src) and dest.stat().st_size == size


def test_vcp_overwrite_and_download_into_directory(cadc, tmp_path):
    remote = f"{cadc.base}/named.txt"
    for text in (b"first version\n", b"second, longer version\n"):
        (tmp_path / "v.txt").write_bytes(text)
        ok(cadc.run("vcp", str(tmp_path / "v.txt"), cadc.short(remote)))
    outdir = tmp_path / "out"
    outdir.mkdir()
    ok(cadc.run("vcp", cadc.short(remote), str(outdir)))  # name from Content-Disposition
    assert (outdir / "named.txt").read_bytes() == b"second, longer version\n"


def test_vcat_of_public_file(cadc):
    """vcat (vos 3.6) ignores --token and reads anonymously, so the file is made public."""
    folder = f"{'' if cadc.svc.name == 'vault' else 'projects/'}pub-{cadc.base.rsplit('-', 1)[1]}"
    public = {CORE + "ispublic": "true"}
    assert cadc.svc.create(folder, user="admin", properties=public).status_code == 201
    with cadc.svc.client("admin") as c:
        assert c.put(f"/{cadc.svc.name}/files/{folder}/cat.txt", content=b"meow\n").status_code == 201
        r = c.post(cadc.svc.nodes_url(f"{folder}/cat.txt"),
                   content=cadc.svc.node_xml(f"{folder}/cat.txt", "DataNode", properties=public))
        assert r.status_code == 200, r.text
    out = ok(cadc.run("vcat", cadc.short(f"{folder}/cat.txt"), user=None)).stdout
    assert out.rstrip("\n") == "meow"  # vcat itself appends newlines


def test_vcp_directory_up_and_down(cadc, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    files = {"a.txt": b"alpha" * 100, "sub/b.bin": os.urandom(70000), "sub/c": b"c"}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    ok(cadc.run("vcp", str(tree), cadc.short(cadc.base)))
    back = tmp_path / "back"
    back.mkdir()
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/tree"), str(back)))
    for name, data in files.items():
        assert (back / "tree" / name).read_bytes() == data


def test_vsync_then_vrm(cadc, tmp_path):
    tree = tmp_path / "synced"
    tree.mkdir()
    for i in range(4):
        (tree / f"f{i}.dat").write_bytes(os.urandom(1000 + i))
    ok(cadc.run("vsync", str(tree), cadc.short(cadc.base)))
    for i in range(4):
        assert cadc.props(f"{cadc.base}/synced/f{i}.dat")[CORE + "MD5"] == \
            md5_file(tree / f"f{i}.dat")
    ok(cadc.run("vrm", cadc.short(f"{cadc.base}/synced/f0.dat")))
    assert cadc.get(f"{cadc.base}/synced/f0.dat").status_code == 404
    assert cadc.get(f"{cadc.base}/synced/f1.dat").status_code == 200
