"""Package downloads (``/pkg``) over real HTTP on every backend: a package transfer POSTed to
/synctrans as CADC's storage-ui sends it, 303 to /pkg/{id}, then the TAR or ZIP compared
member by member with the uploaded originals; per-node read checks (a private folder of
another user is refused, an unreadable child inside a shared folder is left out); safe
member names; another user cannot fetch someone's package; bad requests get faults.
"""
from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from .conftest import VOS_NS

ISPUBLIC = "ivo://ivoa.net/vospace/core#ispublic"
PKG_VIEW = "vos://cadc.nrc.ca~vospace/CADC/std/Pkg-1.0"


def package_doc(uris: list[str], media: str = "application/zip") -> str:
    targets = "".join(f"<vos:target>{u}</vos:target>" for u in uris)
    return (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">{targets}'
            "<vos:direction>pullFromVoSpace</vos:direction>"
            f'<vos:view uri="{PKG_VIEW}"><vos:param uri="ivo://ivoa.net/vospace/core#format">'
            f"{media}</vos:param></vos:view>"
            '<vos:protocol uri="ivo://ivoa.net/vospace/core#httpsget"/></vos:transfer>')


def put_bytes(svc, path: str, data: bytes, user: str = "alice") -> None:
    with svc.client(user) as c:
        assert c.put(f"/{svc.name}/files/{path}", content=data).status_code == 201


def fetch_package(svc, uris: list[str], media: str, user: str | None = "alice"):
    with svc.client(user) as c:
        r = c.post(f"/{svc.name}/synctrans", content=package_doc(uris, media),
                   headers={"Content-Type": "text/xml"})
        assert r.status_code == 303, r.text
        assert f"/{svc.name}/pkg/" in r.headers["Location"]
        return r.headers["Location"], c.get(r.headers["Location"])


def members(media: str, body: bytes) -> dict[str, bytes | None]:
    """name -> bytes (None for a folder)."""
    if media == "application/zip":
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            assert z.testzip() is None  # every CRC checks
            return {i.filename.rstrip("/"): None if i.is_dir() else z.read(i) for i in z.infolist()}
    with tarfile.open(fileobj=io.BytesIO(body)) as t:
        return {m.name: None if m.isdir() else t.extractfile(m).read() for m in t.getmembers()}


@pytest.fixture
def tree(svc):
    """A folder with nested data, a unicode name, an empty file and a 5 MiB file."""
    top = svc.unique()
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(5 * 1024 * 1024 + 17),
             "sub/deeper/c d é.fits": os.urandom(3000), "sub/empty": b""}
    svc.create(top)
    for folder in ("sub", "sub/deeper"):
        svc.create(f"{top}/{folder}")
    for name, data in files.items():
        put_bytes(svc, f"{top}/{name}", data)
    return top, files


@pytest.mark.parametrize("media", ["application/zip", "application/x-tar"])
def test_package_of_folder_and_file_matches_originals(svc, tree, media):
    top, files = tree
    name = top.rsplit("/", 1)[1]
    single = f"{top}/sub/deeper/c d é.fits"
    _, r = fetch_package(svc, [svc.uri(top), svc.uri(single)], media)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(media)
    assert "attachment" in r.headers["content-disposition"]
    got = members(media, r.content)
    expected = {f"{name}/{k}": v for k, v in files.items()}
    expected |= {name: None, f"{name}/sub": None, f"{name}/sub/deeper": None,
                 "c d é.fits": files["sub/deeper/c d é.fits"]}
    assert got == expected
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in got)


def test_package_checks_read_access_per_node(svc):
    """A public folder (outside any private home) holding a public file and a private
    folder: alice's package holds the public parts only."""
    shared = ("" if svc.name == "vault" else "projects/") + f"pub-{os.urandom(5).hex()}"
    svc.create(shared, user="admin", properties={ISPUBLIC: "true"})
    put_bytes(svc, f"{shared}/open.txt", b"everyone", user="admin")
    with svc.client("admin") as c:
        r = c.post(svc.nodes_url(f"{shared}/open.txt"),
                   content=svc.node_xml(f"{shared}/open.txt", "DataNode", {ISPUBLIC: "true"}))
        assert r.status_code == 200, r.text
    svc.create(f"{shared}/private", user="admin")
    put_bytes(svc, f"{shared}/private/secret.txt", b"admin only", user="admin")
    _, r = fetch_package(svc, [svc.uri(shared)], "application/x-tar", user="alice")
    got = members("application/x-tar", r.content)
    name = shared.rsplit("/", 1)[-1]
    assert got == {name: None, f"{name}/open.txt": b"everyone"}

    # a target the caller may not read fails the whole request before any byte
    _, r = fetch_package(svc, [svc.uri(f"{shared}/private")], "application/zip", user="alice")
    assert r.status_code == 403 and "PermissionDenied" in r.text
    _, r = fetch_package(svc, [svc.uri(f"{shared}/private")], "application/zip", user=None)
    assert r.status_code == 401


def test_package_belongs_to_its_requester(svc, tree):
    top, _ = tree
    location, r = fetch_package(svc, [svc.uri(top)], "application/zip")
    assert r.status_code == 200
    with svc.client("bob") as c:
        assert c.get(location).status_code == 403
    with svc.client(None) as c:
        assert c.get(location).status_code == 401
    with svc.client("alice") as c:
        assert c.get(location.rsplit("/", 1)[0] + "/0123456789abcdef01234567").status_code == 404


def test_bad_package_requests(svc, tree):
    top, _ = tree
    with svc.client() as c:
        r = c.post(f"/{svc.name}/synctrans", content=package_doc([svc.uri(top)], "text/plain"))
        assert r.status_code == 400 and "InvalidArgument" in r.text
        r = c.post(f"/{svc.name}/synctrans", content=package_doc([]))
        assert r.status_code == 400
        other = "arc" if svc.name == "vault" else "vault"
        r = c.post(f"/{svc.name}/synctrans",
                   content=package_doc([f"vos://localhost~{other}/x"]))
        assert r.status_code == 400 and "InvalidURI" in r.text
    location, r = fetch_package(svc, [svc.uri(f"{top}/missing")], "application/zip")
    assert r.status_code == 404 and "NodeNotFound" in r.text
