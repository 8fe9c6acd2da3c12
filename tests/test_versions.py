"""Vault versions over real HTTP (SQLite and PostgreSQL): overwrite 5 times, list, fetch
each, restore the second, delete one, content checked by MD5; retention by count and age
on a VaultTree in process; versions do not count against the quota; fsck keeps their blobs.
"""
from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import update

from vospace_server.protocol.faults import NodeNotFound
from vospace_server.storage import quota
from vospace_server.storage.fsck import check_vault
from vospace_server.storage.vault.blobs import LocalBlobStore
from vospace_server.storage.vault.tree import VaultTree
from vospace_server.storage.vault.versions import Retention, versions

from .conftest import ServiceUnderTest
from .test_quotas import put, set_quota


@pytest.fixture(params=["vault-sqlite", "vault-postgres"])
def vault(request) -> ServiceUnderTest:
    fixture = "postgres_server" if request.param == "vault-postgres" else "sqlite_server"
    return ServiceUnderTest(request.getfixturevalue(fixture), "vault", request.param)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fetch(vault, path: str, version: int | None = None, user: str = "alice"):
    with vault.client(user) as c:
        return c.get(f"/vault/files/{path}", params={"version": version} if version else None,
                     follow_redirects=True)


def test_overwrite_list_fetch_restore_delete(vault):
    folder = vault.unique()
    vault.create(folder)
    path = f"{folder}/data.bin"
    contents = [os.urandom(1000 + i) for i in range(6)]  # written once, overwritten 5 times
    for data in contents:
        assert put(vault, path, data).status_code == 201
    with vault.client() as c:
        listing = c.get(f"/vault/versions/{path}").json()["versions"]
    assert [v["version"] for v in listing] == [1, 2, 3, 4, 5]
    assert [v["MD5"] for v in listing] == [md5(d) for d in contents[:5]]
    assert [v["length"] for v in listing] == [len(d) for d in contents[:5]]
    for number, data in enumerate(contents[:5], start=1):
        r = fetch(vault, path, number)
        assert r.status_code == 200 and md5(r.content) == md5(data)
        assert r.headers["ETag"] == f'"{md5(data)}"'
    assert md5(fetch(vault, path).content) == md5(contents[5])

    with vault.client() as c:  # restore the second: it becomes current, current becomes v6
        r = c.post(f"/vault/versions/{path}", params={"restore": 2})
        assert r.status_code == 200, r.text
        assert md5(contents[1]) in r.text
        listing = c.get(f"/vault/versions/{path}").json()["versions"]
    assert md5(fetch(vault, path).content) == md5(contents[1])
    assert listing[-1] == {**listing[-1], "version": 6, "MD5": md5(contents[5])}
    assert md5(fetch(vault, path, 2).content) == md5(contents[1])  # still kept

    with vault.client() as c:
        assert c.delete(f"/vault/versions/{path}", params={"version": 3}).status_code == 200
        numbers = [v["version"] for v in c.get(f"/vault/versions/{path}").json()["versions"]]
        assert numbers == [1, 2, 4, 5, 6]
        assert c.delete(f"/vault/versions/{path}", params={"version": 3}).status_code == 404
        assert c.post(f"/vault/versions/{path}", params={"restore": "x"}).status_code == 400
    assert fetch(vault, path, 3).status_code == 404
    # Others need read access to see versions and write access to change them.
    with vault.client("bob") as c:
        assert c.get(f"/vault/versions/{path}").status_code == 403
        assert c.post(f"/vault/versions/{path}", params={"restore": 1}).status_code == 403
    assert fetch(vault, path, 1, user="bob").status_code == 403
    with vault.client() as c:  # deleting the node deletes its versions
        assert c.delete(vault.nodes_url(path)).status_code == 200
        assert c.get(f"/vault/versions/{path}").status_code == 404


def test_versions_do_not_count_against_the_quota(vault):
    folder = vault.unique()
    vault.create(folder)
    set_quota(vault, folder, 3000)
    for _ in range(5):
        assert put(vault, f"{folder}/f", os.urandom(2000)).status_code == 201
    assert vault.properties(folder)["ivo://ivoa.net/vospace/core#length"] == "2000"
    # but restoring a version is a write like any other: it must fit
    assert put(vault, f"{folder}/g", os.urandom(500)).status_code == 201
    with vault.client() as c:
        r = c.post(f"/vault/versions/{folder}/g", params={"restore": 1})
        assert r.status_code == 404  # g has no versions yet
        put(vault, f"{folder}/g", b"")
        r = c.post(f"/vault/versions/{folder}/g", params={"restore": 1})
        assert r.status_code == 200, r.text
        assert put(vault, f"{folder}/g", b"").status_code == 201
        set_quota(vault, folder, 2100)
        r = c.post(f"/vault/versions/{folder}/g", params={"restore": 1})
        assert r.status_code == 413 and "QuotaExceeded" in r.text


def test_retention_by_count_and_age_and_fsck_keeps_version_blobs(tmp_path):
    blobs = LocalBlobStore(str(tmp_path / "blobs"))
    tree = VaultTree(f"sqlite:///{tmp_path}/v.db", "admin", blobs,
                     retention=Retention(keep=3, max_age_days=1))

    def write(data: bytes) -> None:
        upload = tree.begin_write("f", "alice")
        upload.write(data)
        upload.commit()

    contents = [os.urandom(100) for _ in range(6)]
    for data in contents:
        write(data)
    kept = tree.list_versions("f")
    assert [v.number for v in kept] == [3, 4, 5]  # count: the oldest two were pruned
    assert [v.md5 for v in kept] == [md5(d) for d in contents[2:5]]
    for v, data in zip(kept, contents[2:5]):
        handle = tree.open_version("f", v.number)
        assert md5(handle.read(0, 1000)) == md5(data)
        handle.close()
    with pytest.raises(NodeNotFound):
        tree.open_version("f", 1)
    assert sorted(blobs.keys()) == sorted([v.blob for v in kept] +
                                          list(tree.blob_references()))  # pruned blobs deleted
    assert check_vault(tree) == []  # version blobs are not orphans
    with tree.engine.begin() as conn:  # age: pretend versions 3 and 4 are two days old
        conn.execute(update(versions).where(versions.c.number < 5)
                     .values(replaced=versions.c.replaced - 2 * 86400))
    write(os.urandom(10))
    assert [v.number for v in tree.list_versions("f")] == [5, 6]
    with tree.engine.begin() as conn:  # nobody writes any more: the prune command ages them out
        conn.execute(update(versions).values(replaced=versions.c.replaced - 2 * 86400))
    assert tree.prune_versions() == 2 and tree.list_versions("f") == []
    assert quota.usage_of(tree.resolve("")[-1]) == 10
    tree.delete("f")
    assert list(blobs.keys()) == []
    tree.close()


def test_versions_only_on_vault(sqlite_server):
    with sqlite_server.client("alice") as c:
        assert c.put("/arc/files/home/alice/v.txt", content=b"x").status_code == 201
        assert c.get("/arc/files/home/alice/v.txt", params={"version": 1}).status_code == 400
        assert c.get("/arc/versions/home/alice/v.txt").status_code == 404
