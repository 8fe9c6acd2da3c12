"""The real CADC client (PyPI ``vos``: vmkdir, vls, vrmdir, vtag, vchmod) against our server.

The client runs as a subprocess from its own virtualenv, over TLS (``-k`` for the
self-signed certificate) with ``--token``, and finds the server through
``LOCAL_VOSPACE_WEBSERVICE``: ``vos:`` short URIs go to ``ivo://opencadc.org/vault`` and
``arc:`` ones to ``ivo://opencadc.org/arc``. Each test gets its own HOME because the client
caches the registry under ``~/.config/cadc-registry``. Exit codes are the client's errno
convention: 0 ok, 2 ENOENT (404), 17 EEXIST (409), 255 for other HTTP failures.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass

import pytest
from lxml import etree

from .conftest import ServiceUnderTest
from .harness import CADC_BIN
from .nodes_xml import properties_of

CORE = "ivo://ivoa.net/vospace/core#"
# vchmod sends ``ivo://cadc.nrc.ca/gms?<name>``; the server may keep or canonicalize the
# authority, so tests check the ``gms?astro`` part; vls strips CADC's prefix for display.
GROUP = "astro"


@dataclass
class CadcClient:
    """Runs CADC commands as ``user`` against one service; ``base`` is a fresh folder path."""

    svc: ServiceUnderTest
    home: str
    base: str

    def short(self, path: str) -> str:
        """The client's short URI for a node path: ``vos:alice/x`` or ``arc:home/alice/x``."""
        return f"{'vos' if self.svc.name == 'vault' else 'arc'}:{path}"

    def run(self, command: str, *args: str, user: str | None = "alice") -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{self.svc.server.port}"}
        auth = ["--token", self.svc.server.tokens[user]] if user else []
        return subprocess.run([str(CADC_BIN / command), "-k", *auth, *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def get(self, path: str, user: str | None = "alice", **params):
        with self.svc.client(user) as c:
            return c.get(self.svc.nodes_url(path), params=params)

    def props(self, path: str) -> dict[str, str]:
        r = self.get(path)
        assert r.status_code == 200, r.text
        return properties_of(r.content)


@pytest.fixture(params=["vault", "arc"])
def cadc(request, sqlite_server, tmp_path) -> CadcClient:
    svc = ServiceUnderTest(sqlite_server, request.param, request.param)
    home = tmp_path / "home"
    home.mkdir()
    return CadcClient(svc, str(home), svc.unique())


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_vmkdir_creates_container_and_duplicate_is_eexist(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    r = cadc.get(cadc.base)
    assert r.status_code == 200
    root = etree.fromstring(r.content)
    assert root.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vos:ContainerNode"
    assert cadc.props(cadc.base)[CORE + "creator"] == "alice"
    again = cadc.run("vmkdir", cadc.short(cadc.base))
    assert again.returncode == 17  # EEXIST from the 409
    assert "DuplicateNode" in again.stderr


def test_vmkdir_without_parent_fails_and_p_creates_parents(cadc):
    deep = f"{cadc.base}/a/b/c"
    failed = cadc.run("vmkdir", cadc.short(deep))
    assert failed.returncode == 2  # ENOENT from the 404
    assert "ContainerNotFound" in failed.stderr
    assert cadc.get(f"{cadc.base}/a").status_code == 404
    ok(cadc.run("vmkdir", "-p", cadc.short(deep)))
    for path in (cadc.base, f"{cadc.base}/a", f"{cadc.base}/a/b", deep):
        assert cadc.get(path).status_code == 200, path
    ok(cadc.run("vmkdir", "-p", cadc.short(deep)))  # -p tolerates an existing node


def test_vls_plain_and_long(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    for name in ("zeta", "alpha"):
        ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/{name}")))
    assert cadc.svc.create(f"{cadc.base}/data.txt", "DataNode").status_code == 201
    plain = ok(cadc.run("vls", cadc.short(cadc.base))).stdout.split()
    assert plain == ["alpha", "data.txt", "zeta"]  # a container's children, by name
    lines = ok(cadc.run("vls", "-l", cadc.short(cadc.base))).stdout.splitlines()
    assert [line.split()[-1] for line in lines] == ["alpha", "data.txt", "zeta"]
    alpha, data = lines[0].split(), lines[1].split()
    assert data[0] == "-rw-------" and alpha[0] == "drw-------"
    assert data[1] == "alice" and data[2] == "NONE" and data[3] == "NONE"
    assert data[4] == "0"  # size column; then the date (month day time) from #date


def test_vls_sorted_by_time_size_and_reversed(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    for name in ("b", "a", "c"):
        ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/{name}")))
    assert ok(cadc.run("vls", "-r", cadc.short(cadc.base))).stdout.split() == ["c", "b", "a"]
    assert sorted(ok(cadc.run("vls", "-t", cadc.short(cadc.base))).stdout.split()) == ["a", "b", "c"]
    assert sorted(ok(cadc.run("vls", "-S", cadc.short(cadc.base))).stdout.split()) == ["a", "b", "c"]


def test_vls_missing_node_is_enoent(cadc):
    result = cadc.run("vls", "-l", cadc.short(f"{cadc.base}-missing"))
    assert result.returncode == 2
    assert "NodeNotFound" in result.stderr
    assert result.stdout == ""


def test_vls_of_private_folder_without_token_is_refused(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    result = cadc.run("vls", cadc.short(cadc.base), user=None)
    assert result.returncode != 0
    assert "NotAuthenticated" in result.stderr


def test_vrmdir_removes_a_non_empty_container(cadc):
    ok(cadc.run("vmkdir", "-p", cadc.short(f"{cadc.base}/inner/deeper")))
    ok(cadc.run("vrmdir", cadc.short(cadc.base)))
    assert cadc.get(cadc.base).status_code == 404
    assert cadc.get(f"{cadc.base}/inner/deeper").status_code == 404
    if cadc.svc.name == "arc":
        arc_root = os.path.join(cadc.svc.server.data_dir, "arc")
        assert not os.path.exists(os.path.join(arc_root, cadc.base))
    missing = cadc.run("vrmdir", cadc.short(cadc.base))
    assert missing.returncode != 0


def test_vrmdir_by_another_user_is_refused(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    assert ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    result = cadc.run("vrmdir", cadc.short(cadc.base), user="bob")
    assert result.returncode != 0
    assert "PermissionDenied" in result.stderr
    assert cadc.get(cadc.base).status_code == 200


def test_vtag_sets_reads_and_removes_a_property(cadc):
    key = f"ivo://example.org/tags#k{uuid.uuid4().hex[:6]}"
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{key}=first value"))
    assert cadc.props(cadc.base)[key] == "first value"
    shown = ok(cadc.run("vtag", cadc.short(cadc.base), key)).stdout
    assert "first value" in shown
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{key}=second"))
    assert cadc.props(cadc.base)[key] == "second"
    ok(cadc.run("vtag", "--remove", cadc.short(cadc.base), key))
    assert key not in cadc.props(cadc.base)
    # the re-posted read-only properties (date, length, creator) were ignored, not stored
    assert cadc.props(cadc.base)[CORE + "creator"] == "alice"


def test_vchmod_group_and_public_flags(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), GROUP))
    props = cadc.props(cadc.base)
    assert props[CORE + "groupread"].endswith("/gms?astro")
    assert props[CORE + "ispublic"] == "false"
    assert cadc.get(cadc.base, user=None).status_code == 401
    ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    assert cadc.props(cadc.base)[CORE + "ispublic"] == "true"
    listing = ok(cadc.run("vls", "-l", cadc.short(cadc.base.rpartition("/")[0]))).stdout
    line = next(x for x in listing.splitlines() if x.endswith(cadc.base.rpartition("/")[2]))
    assert line.split()[0] == "drw-r--r--" and line.split()[2].endswith(GROUP)
    ok(cadc.run("vchmod", "o-r", cadc.short(cadc.base)))
    ok(cadc.run("vchmod", "g-r", cadc.short(cadc.base)))
    props = cadc.props(cadc.base)
    assert props[CORE + "ispublic"] == "false"
    assert props.get(CORE + "groupread", "NONE") in ("", "NONE")


def test_vchmod_by_non_owner_is_refused(cadc):
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    result = cadc.run("vchmod", "o+r", cadc.short(cadc.base), user="bob")
    assert result.returncode != 0
    assert cadc.props(cadc.base)[CORE + "ispublic"] == "false"


def test_vls_pages_through_a_large_container(cadc):
    """More children than the client's first page (it re-asks with ``uri=`` + ``limit``)."""
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    names = [f"n{i:04d}" for i in range(620)]
    with cadc.svc.client() as c:
        for name in names:
            path = f"{cadc.base}/{name}"
            r = c.put(cadc.svc.nodes_url(path), content=cadc.svc.node_xml(path, "DataNode"),
                      headers={"Content-Type": "text/xml"})
            assert r.status_code == 201
    listed = ok(cadc.run("vls", cadc.short(cadc.base))).stdout.split()
    assert listed == names
