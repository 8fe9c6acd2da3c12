"""Arc as a shared POSIX tree: files written directly on disk appear through /arc/nodes and
the real CADC client (vls -l, vcp down) with their length, date and a lazily computed MD5;
stable uids/gids (posix-mapper listings over HTTP and the CLI); API-created files owned by
the creator's uid and the project's gid; groupread/groupwrite/ispublic as ACLs and mode
bits (checked with getfacl) and read back from direct setfacl/chmod changes; default ACLs
from inheritPermissions.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import uuid

from vospace_server.storage.arc.attribute_cache import RECENT_NS, AttributeCache

from .clock import ManualClock
from .conftest import ServiceUnderTest
from .harness import CADC_BIN
from .nodes_xml import properties_of

CORE = "ivo://ivoa.net/vospace/core#"
CADC = "ivo://cadc.nrc.ca/vospace/core#"


def props_of(server, path: str, user: str = "alice") -> dict[str, str]:
    return ServiceUnderTest(server, "arc", "arc").properties(path, user)


def cadc(server, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{server.port}"}
    result = subprocess.run([str(CADC_BIN / args[0]), "-k", "--token", server.tokens["alice"],
                             *args[1:]], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def getfacl(path: str) -> list[str]:
    out = subprocess.run(["getfacl", "-n", "-p", path], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line and not line.startswith("#")]


def mapper(server, kind: str) -> dict[str, list[str]]:
    with server.client("alice") as c:
        r = c.get(f"/posix-mapper/{kind}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {line.split(":")[0]: line.split(":") for line in r.text.splitlines()}


def new_group(server, members: list[str]) -> str:
    name = f"g{uuid.uuid4().hex[:8]}"
    with server.client("admin") as c:
        assert c.put(f"/ac/groups/{name}").status_code in (200, 201)
        for user in members:
            assert c.put(f"/ac/groups/{name}/userMembers/{user}").status_code in (200, 201)
    return name


def set_props(server, path: str, values: dict[str, str | None], user: str = "alice") -> None:
    svc = ServiceUnderTest(server, "arc", "arc")
    with server.client(user) as c:
        r = c.post(f"/arc/nodes/{path}", content=svc.node_xml(path, properties=values),
                   headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text


def test_file_written_on_disk_shows_through_api_and_cadc_client(sqlite_server, tmp_path):
    server = sqlite_server
    folder = f"home/alice/direct-{uuid.uuid4().hex[:8]}"
    assert ServiceUnderTest(server, "arc", "arc").create(folder).status_code == 201
    data = os.urandom(123_457)
    full = os.path.join(server.data_dir, "arc", folder, "session.fits")
    with open(full, "wb") as fh:  # what a session does through its mount
        fh.write(data)
    os.utime(full, (1_700_000_000, 1_700_000_000))
    found = props_of(server, f"{folder}/session.fits")
    assert found[CORE + "length"] == str(len(data))
    assert found[CORE + "date"].startswith("2023-11-14T22:13:20")
    assert found[CORE + "creator"] == "alice"  # the owner of the folder it appeared in
    listing = cadc(server, tmp_path, "vls", "-l", f"arc:{folder}").stdout
    assert "session.fits" in listing and str(len(data)) in listing
    cadc(server, tmp_path, "vcp", f"arc:{folder}/session.fits", str(tmp_path / "down"))
    assert (tmp_path / "down").read_bytes() == data
    # the MD5 was computed once while serving and is now a node property
    assert props_of(server, f"{folder}/session.fits")[CORE + "MD5"] == hashlib.md5(data).hexdigest()
    with open(full, "ab") as fh:  # changed again on disk: the stale MD5 is not shown
        fh.write(b"more")
    found = props_of(server, f"{folder}/session.fits")
    assert found[CORE + "length"] == str(len(data) + 4) and CORE + "MD5" not in found


def test_posix_mapper_listings_are_stable(sqlite_server):
    server = sqlite_server
    group = new_group(server, ["alice", "bob"])
    users, groups = mapper(server, "uid"), mapper(server, "gid")
    alice = users["alice"]
    assert int(alice[2]) >= 10000 and alice[3] == alice[2] and alice[5] == "/arc/home/alice"
    assert int(groups[group][2]) >= 20000
    assert groups[group][3].split(",") == ["alice", "bob"]
    assert groups["alice"][2] == alice[2]  # the personal group
    assert mapper(server, "uid")["alice"] == alice and mapper(server, "gid")[group] == groups[group]
    cli = server.vospace("posix", "passwd")
    assert cli.returncode == 0 and ":".join(alice) in cli.stdout.splitlines()
    assert f"{group}:x:{groups[group][2]}:" in server.vospace("posix", "group").stdout
    with server.client(None) as anon:
        assert anon.get("/posix-mapper/uid").status_code == 401
    with server.client("alice") as c:
        r = c.get("/posix-mapper/gid", params={"group": group})
        assert r.text.strip() == ":".join(groups[group])


def test_acls_follow_properties_and_direct_changes_read_back(sqlite_server):
    server = sqlite_server
    g1, g2, g3 = (new_group(server, ["bob"]) for _ in range(3))
    gids = {g: mapper(server, "gid")[g][2] for g in (g1, g2, g3)}
    uri = {g: f"ivo://localhost/gms?{g}" for g in (g1, g2, g3)}
    folder = f"home/alice/acl-{uuid.uuid4().hex[:8]}"
    svc = ServiceUnderTest(server, "arc", "arc")
    assert svc.create(folder).status_code == 201
    with server.client("alice") as c:
        assert c.put(f"/arc/files/{folder}/f", content=b"data").status_code == 201
    full = os.path.join(server.data_dir, "arc", folder, "f")
    alice_uid = int(mapper(server, "uid")["alice"][2])
    st = os.stat(full)
    assert st.st_uid == alice_uid and st.st_mode & 0o777 == 0o600  # private, owner's uid

    set_props(server, f"{folder}/f", {CORE + "groupwrite": uri[g1], CORE + "groupread": uri[g2],
                                      CORE + "ispublic": "true"})
    acl = getfacl(full)
    assert "group::rw-" in acl and f"group:{gids[g2]}:r--" in acl and "other::r--" in acl
    assert os.stat(full).st_gid == int(gids[g1])
    found = props_of(server, f"{folder}/f")
    assert found[CORE + "groupwrite"] == uri[g1] and found[CORE + "groupread"] == uri[g2]
    with server.client("bob") as c:  # bob is in g1: the folder stays private to him though
        assert c.get(f"/arc/files/{folder}/f").status_code == 403

    # Direct POSIX changes (a session user running setfacl/chmod) read back through the API.
    subprocess.run(["setfacl", "-m", f"g:{gids[g3]}:rw", "-x", f"g:{gids[g2]}", full], check=True)
    os.chmod(full, os.stat(full).st_mode & ~0o004)
    found = props_of(server, f"{folder}/f")
    assert found[CORE + "groupwrite"].split() == [uri[g1], uri[g3]]
    assert CORE + "groupread" not in found and found[CORE + "ispublic"] == "false"
    subprocess.run(["setfacl", "-m", f"g:{gids[g2]}:r", full], check=True)
    assert props_of(server, f"{folder}/f")[CORE + "groupread"] == uri[g2]
    # an upload replaces the inode but keeps its permissions
    with server.client("alice") as c:
        assert c.put(f"/arc/files/{folder}/f", content=b"new data").status_code == 201
    assert f"group:{gids[g3]}:rw-" in getfacl(full)


def test_created_node_is_answered_as_a_read_shows_it(sqlite_server):
    """createNode answers the node from what it wrote on the new inode (not read back):
    its properties must be those a getNode shows, with named ACLs, public bits, inherited
    permissions (a project's default ACL) and properties of its own."""
    server = sqlite_server
    project, _ = server.add_project("alice", "bob")
    readers = f"ivo://localhost/gms?{new_group(server, ['bob'])}"
    writers = f"ivo://localhost/gms?{new_group(server, ['bob'])}"
    svc = ServiceUnderTest(server, "arc", "arc")
    folder = f"home/alice/answer-{uuid.uuid4().hex[:8]}"
    assert svc.create(folder).status_code == 201
    given = [{}, {CORE + "title": "mine", CORE + "ispublic": "true"},
             {CORE + "groupread": readers, CORE + "groupwrite": writers},
             {CADC + "inheritPermissions": "true", CORE + "groupread": readers}]
    for parent in (folder, f"projects/{project}"):
        for i, properties in enumerate(given):
            for node_type in ("DataNode", "ContainerNode"):
                path = f"{parent}/{node_type}-{i}"
                r = svc.create(path, node_type, properties=properties)
                assert r.status_code == 201, r.text
                shown = svc.properties(path)
                del shown[CADC + "readable"], shown[CADC + "writable"]
                assert properties_of(r.content) == shown, (path, properties)


def test_project_files_get_the_creator_uid_and_project_gid_and_default_acls(sqlite_server):
    server = sqlite_server
    name, group = server.add_project("alice", "bob")
    gid = int(mapper(server, "gid")[group][2])
    root = os.path.join(server.data_dir, "arc", "projects", name)
    assert os.stat(root).st_gid == gid
    assert f"default:group::rwx" in getfacl(root)  # inheritPermissions -> default ACL
    assert props_of(server, f"projects/{name}")[CADC + "inheritPermissions"] == "true"
    with server.client("alice") as c:
        assert c.put(f"/arc/files/projects/{name}/a.txt", content=b"alice's").status_code == 201
    st = os.stat(os.path.join(root, "a.txt"))
    assert st.st_uid == int(mapper(server, "uid")["alice"][2]) and st.st_gid == gid
    with server.client("bob") as c:  # inherited groupwrite: bob may read and replace it
        assert c.get(f"/arc/files/projects/{name}/a.txt").content == b"alice's"
        assert c.put(f"/arc/files/projects/{name}/a.txt", content=b"bob's").status_code == 201
    # A session creates a file directly: the kernel applies the default ACL and group.
    direct = os.path.join(root, "from-session.txt")
    with open(direct, "w") as fh:
        fh.write("x")
    assert os.stat(direct).st_gid == gid
    found = props_of(server, f"projects/{name}/from-session.txt", user="bob")
    assert found[CORE + "groupwrite"] == f"ivo://localhost/gms?{group}"


def test_direct_changes_show_through_the_server(sqlite_server):
    """The server keeps the xattrs of inodes (keyed by inode and ctime, see the test below);
    a change made on disk, by any process, must show on the next request."""
    server = sqlite_server
    group = new_group(server, ["bob"])
    gid = mapper(server, "gid")[group][2]
    folder = f"home/alice/kept-{uuid.uuid4().hex[:8]}"
    assert ServiceUnderTest(server, "arc", "arc").create(folder).status_code == 201
    with server.client("alice") as c:
        assert c.put(f"/arc/files/{folder}/f", content=b"data").status_code == 201
    set_props(server, f"{folder}/f", {CORE + "title": "first"})
    full = os.path.join(server.data_dir, "arc", folder, "f")
    for _ in range(2):
        assert props_of(server, f"{folder}/f")[CORE + "title"] == "first"

    os.setxattr(full, f"user.{CORE}title", b"second")
    assert props_of(server, f"{folder}/f")[CORE + "title"] == "second"
    os.removexattr(full, f"user.{CORE}title")
    assert CORE + "title" not in props_of(server, f"{folder}/f")
    subprocess.run(["setfacl", "-m", f"g:{gid}:r", full], check=True)
    assert props_of(server, f"{folder}/f")[CORE + "groupread"] == f"ivo://localhost/gms?{group}"
    os.chmod(full, os.stat(full).st_mode | 0o004)
    assert props_of(server, f"{folder}/f")[CORE + "ispublic"] == "true"


def test_attribute_cache_keeps_settled_inodes_until_they_change(tmp_path):
    """The cache keeps the xattrs of an inode unchanged for RECENT_NS (its clock is moved
    past that instead of waiting); a later change made on disk, by any process, still shows
    on the next read, because it changes the inode's ctime."""
    full = str(tmp_path / "f")
    with open(full, "wb") as fh:
        fh.write(b"data")
    os.setxattr(full, f"user.{CORE}title", b"first")
    clock = ManualClock(time.time_ns())
    cache = AttributeCache(clock=clock)

    def read():
        return cache.read(full, os.lstat(full))
    assert read() is not read()  # changed just now: read again each time
    clock.advance(RECENT_NS + 1)
    kept = read()
    assert read() is kept and kept.properties[CORE + "title"] == "first"

    os.setxattr(full, f"user.{CORE}title", b"second")
    assert read().properties[CORE + "title"] == "second"
    os.removexattr(full, f"user.{CORE}title")
    assert CORE + "title" not in read().properties
    subprocess.run(["setfacl", "-m", "g:4242:r", full], check=True)
    assert read().acl is not None and read().acl != kept.acl


def test_recorded_md5_is_served_not_recomputed(sqlite_server):
    """Reads (ranged ones above all: arcfs and vcp resume send many) take the Digest from
    the MD5 recorded for the file's size and mtime instead of hashing the file again."""
    server = sqlite_server
    folder = f"home/alice/md5-{uuid.uuid4().hex[:8]}"
    assert ServiceUnderTest(server, "arc", "arc").create(folder).status_code == 201
    with server.client("alice") as c:
        assert c.put(f"/arc/files/{folder}/f", content=b"data").status_code == 201
    full = os.path.join(server.data_dir, "arc", folder, "f")
    md5, _, stamp = os.getxattr(full, "user.vospace.md5").decode().partition(" ")
    assert md5 == hashlib.md5(b"data").hexdigest()
    planted = "0" * 32  # what a recomputation could never give
    os.setxattr(full, "user.vospace.md5", f"{planted} {stamp}".encode())
    with server.client("alice") as c:
        r = c.get(f"/arc/files/{folder}/f", headers={"Range": "bytes=1-2"})
    assert r.status_code == 206 and r.content == b"at"
    assert r.headers["Digest"] == "md5=" + base64.b64encode(bytes(16)).decode()
