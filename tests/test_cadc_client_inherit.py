"""Inherited permissions with the real CADC client, on vault and arc.

A folder with ``ivo://cadc.nrc.ca/vospace/core#inheritPermissions=true`` passes its
``ispublic``, ``groupread`` and ``groupwrite`` to every node made in it: ``vmkdir``, ``vcp``
uploads, server-side copies and ``vmv`` moves into it; on arc files made directly on disk
inherit too (POSIX default ACLs). The folders live in a top-level folder that the admin made
public, so that anonymous reads can succeed where the permissions say so.
"""
from __future__ import annotations

import os
import uuid

import pytest

from .test_auth_matrix import run_job
from .test_cadc_client_nodes import CORE, CadcClient, ok
from .conftest import VOS_NS, ServiceUnderTest

INHERIT = "ivo://cadc.nrc.ca/vospace/core#inheritPermissions"


def new_group(cadc: CadcClient, members: list[str]) -> str:
    name = f"g{uuid.uuid4().hex[:8]}"
    with cadc.svc.client("alice") as c:
        assert c.put(f"/ac/groups/{name}").status_code in (200, 201)
        for user in members:
            assert c.put(f"/ac/groups/{name}/userMembers/{user}").status_code in (200, 201)
    return name


def shared_folder(server, service: str, tmp_path) -> CadcClient:
    """A CadcClient whose ``base`` is a fresh folder of alice's inside a public top-level
    folder (so anonymous and other users' reads are decided by the nodes below it)."""
    svc = ServiceUnderTest(server, service, service)
    home = tmp_path / "home"
    home.mkdir()
    top = f"{'' if svc.name == 'vault' else 'projects/'}inh-{uuid.uuid4().hex[:8]}"
    cadc = CadcClient(svc, str(home), f"{top}/base")
    writers = new_group(cadc, ["alice"])
    assert svc.create(top, user="admin", properties={
        CORE + "ispublic": "true", CORE + "groupwrite": writers}).status_code == 201
    ok(cadc.run("vmkdir", cadc.short(cadc.base)))
    return cadc


@pytest.fixture(params=["vault", "arc"])
def shared(request, sqlite_server, tmp_path) -> CadcClient:
    return shared_folder(sqlite_server, request.param, tmp_path)


def long_line(cadc: CadcClient, folder: str, name: str) -> list[str]:
    listing = ok(cadc.run("vls", "-l", cadc.short(folder))).stdout.splitlines()
    return next(line.split() for line in listing if line.split()[-1] == name)


def anonymous_read(cadc: CadcClient, path: str) -> int:
    with cadc.svc.server.client(None, follow_redirects=True) as c:
        return c.get(f"/{cadc.svc.name}/files/{path}").status_code


def test_children_of_an_inheriting_public_folder(shared, tmp_path):
    cadc = shared
    ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{INHERIT}=true"))
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/sub")))
    assert long_line(cadc, cadc.base, "sub")[0] == "drw----r--"
    assert cadc.props(f"{cadc.base}/sub")[INHERIT] == "true"  # and passes it on
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/sub/deeper")))
    assert long_line(cadc, f"{cadc.base}/sub", "deeper")[0] == "drw----r--"
    # a sibling folder without the flag keeps its children private
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}-plain")))
    ok(cadc.run("vchmod", "o+r", cadc.short(f"{cadc.base}-plain")))
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}-plain/sub")))
    assert long_line(cadc, f"{cadc.base}-plain", "sub")[0] == "drw-------"


def test_uploads_are_readable_as_the_folder_says(shared, tmp_path):
    cadc = shared
    group = new_group(cadc, ["bob"])
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), group))
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{INHERIT}=true"))
    src = tmp_path / "up.txt"
    src.write_bytes(b"shared by inheritance\n")
    ok(cadc.run("vcp", str(src), cadc.short(f"{cadc.base}/up.txt")))
    line = long_line(cadc, cadc.base, "up.txt")
    assert line[0] == "-rw-r-----" and line[2].endswith(group)
    dest = tmp_path / "bob.txt"
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/up.txt"), str(dest), user="bob"))
    assert dest.read_bytes() == src.read_bytes()
    assert anonymous_read(cadc, f"{cadc.base}/up.txt") in (401, 403)  # not public
    ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    ok(cadc.run("vcp", str(src), cadc.short(f"{cadc.base}/second.txt")))
    assert anonymous_read(cadc, f"{cadc.base}/second.txt") == 200
    assert long_line(cadc, cadc.base, "second.txt")[0] == "-rw-r--r--"


def test_moves_and_copies_into_an_inheriting_folder(shared, tmp_path):
    cadc = shared
    ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{INHERIT}=true"))
    private = f"{cadc.base}-private"
    ok(cadc.run("vmkdir", cadc.short(private)))
    src = tmp_path / "p.txt"
    src.write_bytes(b"private until moved\n")
    for name in ("moved.txt", "copied.txt"):
        ok(cadc.run("vcp", str(src), cadc.short(f"{private}/{name}")))
        assert anonymous_read(cadc, f"{private}/{name}") in (401, 403)
    ok(cadc.run("vmkdir", cadc.short(f"{private}/folder")))
    ok(cadc.run("vcp", str(src), cadc.short(f"{private}/folder/inside.txt")))
    ok(cadc.run("vmv", cadc.short(f"{private}/moved.txt"), cadc.short(cadc.base)))
    ok(cadc.run("vmv", cadc.short(f"{private}/folder"), cadc.short(cadc.base)))
    uri = cadc.svc.uri
    transfer = (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
                f"<vos:target>{uri(f'{private}/copied.txt')}</vos:target>"
                f"<vos:direction>{uri(cadc.base)}</vos:direction>"
                "<vos:keepBytes>true</vos:keepBytes></vos:transfer>")
    with cadc.svc.client("alice") as c:
        assert run_job(c, f"/{cadc.svc.name}/transfers", content=transfer).status_code == 200
    for path in ("moved.txt", "copied.txt", "folder/inside.txt"):
        assert anonymous_read(cadc, f"{cadc.base}/{path}") == 200, path
    assert long_line(cadc, cadc.base, "folder")[0] == "drw----r--"
    assert cadc.props(f"{cadc.base}/folder")[INHERIT] == "true"
    assert anonymous_read(cadc, f"{private}/copied.txt") in (401, 403)  # the source stays


def test_arc_files_made_on_disk_inherit(sqlite_server, tmp_path):
    cadc = shared_folder(sqlite_server, "arc", tmp_path)
    group = new_group(cadc, ["bob"])
    ok(cadc.run("vchmod", "o+r", cadc.short(cadc.base)))
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), group))
    ok(cadc.run("vtag", cadc.short(cadc.base), f"{INHERIT}=true"))
    folder = os.path.join(sqlite_server.data_dir, "arc", cadc.base)
    os.mkdir(os.path.join(folder, "made-in-session"))
    with open(os.path.join(folder, "made-in-session", "out.txt"), "w") as fh:
        fh.write("written by a session\n")
    props = cadc.props(f"{cadc.base}/made-in-session/out.txt")
    assert props[CORE + "ispublic"] == "true"
    assert props[CORE + "groupread"].endswith(f"gms?{group}")
    line = long_line(cadc, f"{cadc.base}/made-in-session", "out.txt")
    assert line[0] == "-rw-r--r--" and line[2].endswith(group)
    dest = tmp_path / "out.txt"
    ok(cadc.run("vcp", cadc.short(f"{cadc.base}/made-in-session/out.txt"), str(dest),
                user="bob"))
    assert dest.read_text() == "written by a session\n"
