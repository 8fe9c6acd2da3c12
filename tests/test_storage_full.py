"""A disk that fills up mid-upload: the client gets ``507 InsufficientStorage`` (not an
internal error), the node keeps its old bytes, no temporary file is left taking the space,
and the server goes on serving. The vault blobs and the arc tree live on an 8 MiB tmpfs."""
from __future__ import annotations

import os
import subprocess

import pytest

from vosclient.client import Client

from .harness import make_server
from .test_transfers_faults import HOMES, node_state, upload

DISK_BYTES = 8 << 20


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """(server, mountpoint of the tmpfs holding its vault blobs and arc tree)."""
    root = tmp_path_factory.mktemp("small-disk")
    disk = root / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                   check=True)
    try:
        server = make_server(str(root), extra_env={"VOSPACE_BLOB_DIR": str(disk / "blobs"),
                                                   "VOSPACE_ARC_ROOT": str(disk / "arc")})
        try:
            yield server, str(disk)
        finally:
            server.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def files_on(disk: str) -> dict[str, int]:
    """Every file on the disk with its size."""
    return {os.path.join(folder, name): os.lstat(os.path.join(folder, name)).st_size
            for folder, _dirs, names in os.walk(disk) for name in names}


def curl_put(url: str, token: str, source: str) -> tuple[int, str]:
    """(status, body) of a PUT of ``source``; curl reads an answer sent before the body
    has all been sent, as a server refusing mid-upload sends it."""
    out = subprocess.run(["curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "-T", source,
                          "-H", f"Authorization: Bearer {token}", url],
                         capture_output=True, text=True, timeout=120)
    body, _, status = out.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.parametrize("service", ["vault", "arc"])
@pytest.mark.parametrize("port", ["main", "data"])
def test_a_full_disk_refuses_the_upload_and_keeps_the_old_bytes(small_disk, tmp_path,
                                                                service, port):
    server, disk = small_disk
    path = f"{HOMES[service]}/full-{port}.bin"
    upload(server, service, path, b"the old bytes\n")
    old = node_state(server, service, path)
    before = files_on(disk)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(DISK_BYTES + (4 << 20)))
    if port == "main":
        url = f"{server.url}/{service}/files/{path}"
    else:
        uri = f"{'vos' if service == 'vault' else 'arc'}:{path}"
        with Client(url=server.url, token=server.tokens["alice"], verify=False) as client:
            url = client.negotiate(uri, push=True)
        assert url and f":{server.data_port}/" in url, url

    status, body = curl_put(url, server.tokens["alice"], str(source))

    assert (status, body.split(":")[0]) == (507, "InsufficientStorage"), (status, body)
    assert node_state(server, service, path) == old
    assert files_on(disk) == before, "an upload refused for space left a file taking it"
    upload(server, service, path, b"the new bytes\n")   # the server goes on
    assert node_state(server, service, path)[0] == b"the new bytes\n"
