"""The real CADC client's async commands against vault and arc over TLS with --token:
``vmv`` (UWS /transfers), ``vrm -R`` (/async-delete), ``vchmod -R`` and ``vtag -R``
(/async-setprops), ``vrmdir``. Results are checked through GET /nodes, not the client's word.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from .conftest import ServiceUnderTest
from .harness import CADC_BIN

CORE = "ivo://ivoa.net/vospace/core#"


@pytest.fixture(params=["vault", "arc"])
def service(request, sqlite_server) -> ServiceUnderTest:
    return ServiceUnderTest(sqlite_server, request.param, request.param)


def cadc(svc: ServiceUnderTest, home: str, command: str, *args: str) -> subprocess.CompletedProcess:
    """Run a CADC command as alice; ``home`` is a fresh HOME (the client caches the registry)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
           "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{svc.server.port}"}
    return subprocess.run([str(CADC_BIN / command), "-k", "--token", svc.server.tokens["alice"],
                           *args], env=env, capture_output=True, text=True, timeout=90)


def short(svc: ServiceUnderTest, path: str) -> str:
    return f"{'vos' if svc.name == 'vault' else 'arc'}:{path}"


def exists(svc: ServiceUnderTest, path: str) -> bool:
    with svc.client() as c:
        return c.get(svc.nodes_url(path), params={"limit": 0}).status_code == 200


def tree(svc: ServiceUnderTest, base: str, paths: list[str]) -> None:
    svc.create(base)
    for path in paths:
        kind = "DataNode" if path.rsplit("/", 1)[-1].startswith("f") else "ContainerNode"
        assert svc.create(f"{base}/{path}", kind).status_code == 201


def test_vmv_rename_into_container_and_duplicate(service, tmp_path):
    base = service.unique()
    tree(service, base, ["a", "a/f1", "dir", "f2"])
    start = time.monotonic()
    r = cadc(service, str(tmp_path), "vmv", short(service, f"{base}/a"), short(service, f"{base}/b"))
    assert r.returncode == 0, r.stderr
    # the job ran inline: the client's first poll saw COMPLETED, so it never slept 2 s
    assert time.monotonic() - start < 6
    assert exists(service, f"{base}/b/f1") and not exists(service, f"{base}/a")
    r = cadc(service, str(tmp_path), "vmv", short(service, f"{base}/b"), short(service, f"{base}/dir"))
    assert r.returncode == 0, r.stderr
    assert exists(service, f"{base}/dir/b/f1") and not exists(service, f"{base}/b")
    r = cadc(service, str(tmp_path), "vmv", short(service, f"{base}/dir/b/f1"),
             short(service, f"{base}/f2"))
    assert r.returncode == 17, (r.returncode, r.stderr)  # EEXIST from "DuplicateNode."
    assert exists(service, f"{base}/dir/b/f1")


def test_vrm_recursive_and_vrmdir(service, tmp_path):
    base = service.unique()
    tree(service, base, ["d", "d/f1", "d/e", "d/e/f2", "d/e/g", "other", "other/f3"])
    r = cadc(service, str(tmp_path), "vrm", "-R", short(service, f"{base}/d"))
    assert r.returncode == 0, r.stderr
    assert not exists(service, f"{base}/d") and exists(service, f"{base}/other/f3")
    r = cadc(service, str(tmp_path), "vrmdir", short(service, f"{base}/other"))
    assert r.returncode == 0, r.stderr
    assert not exists(service, f"{base}/other")
    # a locked node survives; the client reports the counts and fails
    assert service.create(f"{base}/k", "ContainerNode").status_code == 201
    assert service.create(f"{base}/k/f4", "DataNode", properties={
        "ivo://cadc.nrc.ca/vospace/core#islocked": "true"}).status_code == 201
    assert service.create(f"{base}/k/f5", "DataNode").status_code == 201
    r = cadc(service, str(tmp_path), "vrm", "-R", short(service, f"{base}/k"))
    assert r.returncode != 0 and "deleted count: 1, failed count: 2" in r.stderr, r.stderr
    assert exists(service, f"{base}/k/f4") and not exists(service, f"{base}/k/f5")


def test_vchmod_and_vtag_recursive(service, tmp_path):
    base = service.unique()
    tree(service, base, ["sub", "sub/f1", "sub/deeper", "sub/deeper/f2"])
    r = cadc(service, str(tmp_path), "vchmod", "-R", "o+r", short(service, base))
    assert r.returncode == 0, r.stderr
    for path in (base, f"{base}/sub", f"{base}/sub/deeper/f2"):
        assert service.properties(path)[CORE + "ispublic"] == "true"
    key = "ivo://example.org/tags#colour"
    r = cadc(service, str(tmp_path), "vtag", "-R", short(service, f"{base}/sub"), f"{key}=red")
    assert r.returncode == 0, r.stderr
    assert service.properties(f"{base}/sub/deeper/f2")[key] == "red"
    assert key not in service.properties(base)
    r = cadc(service, str(tmp_path), "vchmod", "-R", "o-r", short(service, f"{base}/sub"))
    assert r.returncode == 0, r.stderr
    assert service.properties(f"{base}/sub/f1")[CORE + "ispublic"] == "false"
    assert service.properties(base)[CORE + "ispublic"] == "true"
