"""LinkNodes followed, with the real CADC client (vln, vcp, vls), on vault and arc.

A link inside a path (to a container) or at its end (to a data node) is followed for
downloads and listings; the caller needs read access to the link's path and to the target;
chains end after a limit; a target outside the service is redirected to (https) or refused
with a clear fault; ``vls -l`` of the folder still shows the link itself.
"""
from __future__ import annotations

import pytest

from .test_cadc_client_nodes import CadcClient, ok
from .conftest import ServiceUnderTest


@pytest.fixture(params=["vault", "arc"])
def linked(request, sqlite_server, tmp_path) -> CadcClient:
    """alice's ``base`` with ``target/file.png``, ``target/sub/inner.txt`` and links
    ``clink`` -> ``target`` and ``dlink`` -> ``target/file.png``."""
    svc = ServiceUnderTest(sqlite_server, request.param, request.param)
    home = tmp_path / "home"
    home.mkdir()
    cadc = CadcClient(svc, str(home), svc.unique())
    ok(cadc.run("vmkdir", "-p", cadc.short(f"{cadc.base}/target/sub")))
    for name, data in (("file.png", b"\x89PNG not really" * 1000),
                       ("sub/inner.txt", b"inside the target\n")):
        local = tmp_path / name.replace("/", "_")
        local.write_bytes(data)
        ok(cadc.run("vcp", str(local), cadc.short(f"{cadc.base}/target/{name}")))
    ok(cadc.run("vln", cadc.short(f"{cadc.base}/target"), cadc.short(f"{cadc.base}/clink")))
    ok(cadc.run("vln", cadc.short(f"{cadc.base}/target/file.png"),
                cadc.short(f"{cadc.base}/dlink")))
    return cadc


def test_vcp_through_a_container_link_and_a_data_link(linked, tmp_path):
    cadc = linked
    original = (tmp_path / "file.png").read_bytes()
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/clink/file.png"), str(tmp_path / "via-c")))
    assert (tmp_path / "via-c").read_bytes() == original
    # vcp skips a link named as the source unless -L ("follow links") is given
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/dlink"), str(tmp_path / "via-d")))
    assert not (tmp_path / "via-d").exists()
    ok(cadc.run("vcp", "-L", cadc.short(f"{cadc.base}/dlink"), str(tmp_path / "via-d")))
    assert (tmp_path / "via-d").read_bytes() == original
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/clink/sub/inner.txt"), str(tmp_path / "in")))
    assert (tmp_path / "in").read_bytes() == b"inside the target\n"


def test_listings_follow_links_but_show_the_link_itself(linked):
    cadc = linked
    assert ok(cadc.run("vls", cadc.short(f"{cadc.base}/clink/sub"))).stdout.split() == \
        ["inner.txt"]
    assert ok(cadc.run("vls", cadc.short(f"{cadc.base}/clink/"))).stdout.split() == \
        ["file.png", "sub"]
    listing = ok(cadc.run("vls", "-l", cadc.short(cadc.base))).stdout.splitlines()
    clink = next(line for line in listing if " clink " in line + " ")
    assert clink.split()[0].startswith("l") and clink.endswith("/target")
    r = cadc.get(f"{cadc.base}/clink", limit=0)  # the LinkNode, not its target
    assert r.status_code == 200 and b"LinkNode" in r.content
    r = cadc.get(f"{cadc.base}/clink/sub")  # named as asked, listed from the target
    assert r.status_code == 200
    assert f"{cadc.base}/clink/sub/inner.txt".encode() in r.content


def test_reading_through_a_link_needs_read_access_to_the_target(linked, tmp_path):
    cadc = linked
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/secret")))
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"alice only\n")
    ok(cadc.run("vcp", str(secret), cadc.short(f"{cadc.base}/secret/s.txt")))
    bobs = cadc.svc.unique("bob")
    ok(cadc.run("vmkdir", cadc.short(bobs), user="bob"))
    ok(cadc.run("vln", cadc.short(f"{cadc.base}/secret/s.txt"), cadc.short(f"{bobs}/peek"),
                user="bob"))
    ok(cadc.run("vln", cadc.short(f"{cadc.base}/secret"), cadc.short(f"{bobs}/dir"),
                user="bob"))
    for source in (f"{bobs}/peek", f"{bobs}/dir/s.txt"):
        refused = cadc.run("vcp", "-L", cadc.short(source), str(tmp_path / "stolen"),
                           user="bob")
        assert refused.returncode != 0, source
        assert "PermissionDenied" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "stolen").exists()
    with cadc.svc.client("bob") as c:  # a listing through the link is refused the same way
        assert c.get(cadc.svc.nodes_url(f"{bobs}/dir")).status_code == 200  # the link itself
        assert c.get(cadc.svc.nodes_url(f"{bobs}/dir/s.txt")).status_code == 403
    # the path to the link is checked too: alice may read the target, not bob's folder
    refused = cadc.run("vcp", "-L", cadc.short(f"{bobs}/peek"), str(tmp_path / "own"))
    assert refused.returncode != 0 and f"may not read /{bobs}/peek" in refused.stderr


def test_link_loops_and_external_targets(linked, tmp_path):
    cadc = linked
    for a, b in (("loop1", "loop2"), ("loop2", "loop1")):
        ok(cadc.run("vln", cadc.short(f"{cadc.base}/{b}"), cadc.short(f"{cadc.base}/{a}")))
    # (the CADC vcp follows link loops itself, forever: the server's answer is checked here)
    with cadc.svc.client("alice") as c:
        r = c.get(f"/{cadc.svc.name}/files/{cadc.base}/loop1")
        assert r.status_code == 400 and r.text.startswith("UnreadableLinkTarget")
        r = c.get(cadc.svc.nodes_url(f"{cadc.base}/loop1/x"))
        assert r.status_code == 400 and r.text.startswith("UnreadableLinkTarget")
    # an https target: the data request is redirected there (here: our own files URL)
    url = f"{cadc.svc.server.url}/{cadc.svc.name}/files/{cadc.base}/target/file.png"
    ok(cadc.run("vln", url, cadc.short(f"{cadc.base}/web")))
    ok(cadc.run("vcp", "-L", cadc.short(f"{cadc.base}/web"), str(tmp_path / "web")))
    assert (tmp_path / "web").read_bytes() == (tmp_path / "file.png").read_bytes()
    with cadc.svc.client("alice") as c:
        r = c.get(f"/{cadc.svc.name}/files/{cadc.base}/web")
        assert r.status_code == 303 and r.headers["location"] == url
        # another service's node cannot be followed here: a clear fault, in a path too
        other = "arc" if cadc.svc.name == "vault" else "vault"
        foreign = f"vos://localhost~{other}/somewhere"
        assert cadc.svc.create(f"{cadc.base}/away", "LinkNode", target=foreign).status_code == 201
        for path in (f"/{cadc.svc.name}/files/{cadc.base}/away",
                     cadc.svc.nodes_url(f"{cadc.base}/away/x")):
            r = c.get(path)
            assert r.status_code == 400 and foreign in r.text, path
