"""arcfs/SEMANTICS.md, claim by claim, on real mounts of a real server (one test per tag)."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from vosclient.client import Client
from vosclient.transfer import NEGOTIATE_FROM

from .arcfs_mounts import fresh_dir, mounted
from .harness import make_server, requests_total
from .nodes_xml import node_xml, properties_of
from .waiting import wait_until

SEMANTICS = Path(__file__).resolve().parent.parent / "arcfs" / "SEMANTICS.md"
CORE = "ivo://ivoa.net/vospace/core#"
NO_CACHE = ("--attr-ttl", "0", "--dir-ttl", "0")


@pytest.fixture(scope="module")
def mnt(sqlite_server):
    """A mount that keeps nothing (TTL 0), so what another client changes shows at once;
    the TTLs themselves are the subject of S28 and S29."""
    with mounted(sqlite_server, "alice", "arc", *NO_CACHE) as mp:
        yield mp


@pytest.fixture
def d(mnt):
    """A fresh directory in alice's home, through the mount."""
    return fresh_dir(mnt, "s")


def node(server, path: str, user: str = "alice") -> httpx.Response:
    with server.client(user) as c:
        return c.get(f"/arc/nodes/{path}", params={"detail": "max"})


def rel(d: str, mnt: str) -> str:
    return os.path.relpath(d, mnt)


def prop(response: httpx.Response, name: str) -> str | None:
    return properties_of(response.content).get(CORE + name)


def stored(path: str, data: str | bytes) -> None:
    """Write a file through the mount and fsync it: it is on the server when this returns
    (close alone no longer waits for the upload)."""
    with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def errno_of(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno
    return 0


def test_every_claim_has_a_test():
    tags = set(re.findall(r"\[(S\d+)\]", SEMANTICS.read_text()))
    tested = {tag.upper() for name in globals() if name.startswith("test_s")
              for tag in re.findall(r"_(s\d+)(?=_)", name)}
    assert tags and tags == tested, (tags - tested, tested - tags)


def test_s1_operations(d):
    f = os.path.join(d, "f.txt")
    with open(f, "w") as fh:
        fh.write("abc")
    assert os.stat(f).st_size == 3 and open(f).read() == "abc"
    os.truncate(f, 1)
    assert open(f).read() == "a"
    os.mkdir(os.path.join(d, "sub"))
    os.symlink("f.txt", os.path.join(d, "ln"))
    assert os.readlink(os.path.join(d, "ln")) == "f.txt"
    os.rename(f, os.path.join(d, "sub", "g.txt"))
    assert sorted(os.listdir(d)) == ["ln", "sub"]
    os.chmod(os.path.join(d, "sub", "g.txt"), 0o604)
    os.utime(os.path.join(d, "sub", "g.txt"), (1_600_000_000, 1_600_000_000))
    os.setxattr(os.path.join(d, "sub"), "user.k", b"v")
    assert os.getxattr(os.path.join(d, "sub"), "user.k") == b"v"
    assert "user.k" in os.listxattr(os.path.join(d, "sub"))
    os.removexattr(os.path.join(d, "sub"), "user.k")
    assert os.statvfs(d).f_blocks > 0
    os.unlink(os.path.join(d, "ln"))
    os.unlink(os.path.join(d, "sub", "g.txt"))
    os.rmdir(os.path.join(d, "sub"))
    assert os.listdir(d) == []


def test_s2_fsync_waits_for_upload_and_failures_are_reported(sqlite_server, mnt, d):
    f = os.path.join(d, "durable.bin")
    data = os.urandom(3 << 20)
    with open(f, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
        # fsync() returned: the server has it, byte for byte
        with sqlite_server.client("alice") as c:
            assert c.get(f"/arc/files/{rel(f, mnt)}").content == data
    # a failing upload is returned by fsync(): here the node got locked meanwhile
    fh = open(f, "r+b")
    fh.write(b"overwrite")
    fh.flush()
    _lock(sqlite_server, rel(f, mnt))
    with pytest.raises(OSError) as info:
        os.fsync(fh.fileno())
    assert info.value.errno == errno.EPERM
    fh.close()                   # reported once: the failed bytes are not sent again
    with sqlite_server.client("alice") as c:
        assert c.get(f"/arc/files/{rel(f, mnt)}").content == data
    # without fsync, close() returns at once and a later close() reports the failure
    with open(f, "r+b") as fh:
        fh.write(b"again")

    def reported() -> bool:
        try:
            with open(os.path.join(d, "next"), "w") as fh:
                fh.write("x")
        except OSError as exc:
            assert exc.errno == errno.EPERM
            return True
        return False
    wait_until(reported, 20, "the failed upload to be reported", interval=0.05, retry=())
    with sqlite_server.client("alice") as c:
        assert c.get(f"/arc/files/{rel(f, mnt)}").content == data


def _lock(server, path: str) -> None:
    with server.client("alice") as c:
        r = c.post(f"/arc/nodes/{path}", headers={"Content-Type": "text/xml"},
                   content=_props_xml(path, {"ivo://cadc.nrc.ca/vospace/core#islocked": "true"}))
        assert r.status_code == 200, r.text


def test_s3_random_writes_and_appends(d):
    f = os.path.join(d, "r.bin")
    with open(f, "wb") as fh:
        fh.write(b"0123456789")
    with open(f, "r+b") as fh:
        fh.seek(3)
        fh.write(b"abc")
        fh.flush()
        assert os.stat(f).st_size == 10
        fh.seek(20)
        fh.write(b"Z")
    with open(f, "ab") as fh:
        fh.write(b"END")
    assert open(f, "rb").read() == b"012abc6789" + b"\0" * 10 + b"ZEND"


def test_s4_rename_is_one_move_and_replaces(sqlite_server, mnt, d):
    tree = os.path.join(d, "tree")
    os.makedirs(os.path.join(tree, "a", "b"))
    with open(os.path.join(tree, "a", "b", "leaf"), "w") as fh:
        fh.write("leaf")
    with sqlite_server.client("admin") as c:
        before = c.get("/arc/transfers").text.count("<uws:jobref")
    os.rename(tree, os.path.join(d, "moved"))
    with sqlite_server.client("admin") as c:
        after = c.get("/arc/transfers").text.count("<uws:jobref")
    assert open(os.path.join(d, "moved", "a", "b", "leaf")).read() == "leaf"
    assert node(sqlite_server, rel(tree, mnt)).status_code == 404
    assert after - before <= 1
    for name, text in (("x", "new"), ("y", "old")):
        with open(os.path.join(d, name), "w") as fh:
            fh.write(text)
    logged = os.path.getsize(sqlite_server.log_path)
    os.rename(os.path.join(d, "x"), os.path.join(d, "y"))
    assert open(os.path.join(d, "y")).read() == "new" and not os.path.exists(os.path.join(d, "x"))
    # atomic: the old y is replaced inside the move job, never deleted before it
    with open(sqlite_server.log_path, "rb") as fh:
        fh.seek(logged)
        writes = [json.loads(line.split(b"vospace.audit: ", 1)[1])
                  for line in fh if b"vospace.audit: " in line]
    methods = [w["method"] for w in writes]
    assert "POST" in methods and "DELETE" not in methods, writes
    os.mkdir(os.path.join(d, "empty"))
    os.rename(os.path.join(d, "moved"), os.path.join(d, "empty"))
    assert os.listdir(os.path.join(d, "empty")) == ["a"]


def test_s5_links(mnt, d):
    with open(os.path.join(d, "t"), "w") as fh:
        fh.write("t")
    os.symlink(os.path.join(d, "t"), os.path.join(d, "abs"))
    os.symlink("t", os.path.join(d, "relative"))
    os.symlink("/etc/hostname", os.path.join(d, "outside"))
    assert os.readlink(os.path.join(d, "abs")) == "t"
    assert os.readlink(os.path.join(d, "relative")) == "t"
    assert open(os.path.join(d, "relative")).read() == "t"
    assert os.readlink(os.path.join(d, "outside")) == "/etc/hostname"
    assert os.path.islink(os.path.join(d, "abs"))


def test_s6_chmod_maps_to_acl(sqlite_server, mnt, d):
    f = os.path.join(d, "acl.txt")
    with open(f, "w") as fh:
        fh.write("x")
    assert os.stat(f).st_mode & 0o777 == 0o600       # create mode not applied
    os.chmod(f, 0o604)
    assert prop(node(sqlite_server, rel(f, mnt)), "ispublic") == "true"
    assert os.stat(f).st_mode & 0o777 == 0o604
    # a group set by another client shows as g+r; clearing g+r removes it
    with sqlite_server.client("alice") as c:
        r = c.post(f"/arc/nodes/{rel(f, mnt)}", headers={"Content-Type": "text/xml"},
                   content=_props_xml(rel(f, mnt), {CORE + "groupread": "ivo://localhost/gms?g1"}))
        assert r.status_code == 200, r.text
    assert os.stat(f).st_mode & 0o777 == 0o644
    os.chmod(f, 0o600)
    assert prop(node(sqlite_server, rel(f, mnt)), "ispublic") == "false"
    assert prop(node(sqlite_server, rel(f, mnt)), "groupread") in (None, "")
    os.chmod(f, 0o660)                                  # no group known: g bits stay clear
    assert os.stat(f).st_mode & 0o777 == 0o600
    assert errno_of(os.chown, f, 12345, 12345) == errno.EPERM


def _props_xml(path: str, props: dict[str, str]) -> str:
    return node_xml(f"vos://localhost~arc/{path}", "DataNode", props)


def test_s7_utimens(d):
    f = os.path.join(d, "old.txt")
    with open(f, "w") as fh:
        fh.write("x")
    os.utime(f, ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    assert os.stat(f).st_mtime_ns == 1_500_000_000_123_456_789
    with open(f, "w") as fh:
        fh.write("changed")
    assert abs(os.stat(f).st_mtime - time.time()) < 60


def test_s8_statfs_shows_quota(sqlite_server, mnt, d):
    result = sqlite_server.vospace("quota", "set", f"arc:{rel(d, mnt)}", "10M")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(d, "f"), "wb") as fh:
        fh.write(b"x" * 1_000_000)
    st = os.statvfs(d)
    assert st.f_blocks * st.f_frsize == 10 << 20
    assert (10 << 20) - st.f_bavail * st.f_frsize >= 1_000_000 - 4096
    assert os.statvfs(os.path.join(mnt, "home")).f_blocks * 4096 == 1 << 50


def test_s9_xattrs_are_properties(sqlite_server, mnt, d):
    os.setxattr(d, "user.telescope", "CFHT".encode())
    assert prop(node(sqlite_server, rel(d, mnt)), "telescope") == "CFHT"
    assert errno_of(os.setxattr, d, "user.telescope", b"x", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, d, "user.other", b"x", os.XATTR_REPLACE) == errno.ENODATA
    os.setxattr(d, "user.telescope", b"JWST", os.XATTR_REPLACE)
    assert os.getxattr(d, "user.telescope") == b"JWST"


def test_s10_sequential_and_random_reads(sqlite_server, mnt, d):
    """A file under NEGOTIATE_FROM is read from /files; a bigger one from the data port
    (one negotiation for the open, every range a pre-authorized GET, none on /files)."""
    small, big = os.urandom(9 << 20), os.urandom(NEGOTIATE_FROM + (3 << 20) + 5)
    with sqlite_server.client("alice") as c:
        for leaf, data in (("small", small), ("big", big)):
            assert c.put(f"/arc/files/{rel(d, mnt)}/{leaf}", content=data).status_code == 201
    for leaf, data in (("small", small), ("big", big)):
        files, preauth = (requests_total(sqlite_server, "arc", endpoint)
                          for endpoint in ("files", "preauth"))
        with open(os.path.join(d, leaf), "rb") as fh:
            assert fh.read() == data
            for offset in (7 << 20, 5, (3 << 20) + 17, len(data) - 3, (17 << 20) + 4095):
                fh.seek(offset)
                assert fh.read(4096) == data[offset:offset + 4096]
        more_files = requests_total(sqlite_server, "arc", "files") - files
        more_preauth = requests_total(sqlite_server, "arc", "preauth") - preauth
        assert (more_files > 0, more_preauth > 0) == ((True, False) if leaf == "small"
                                                      else (False, True)), leaf


def test_s10_refused_url_falls_back_to_files(tmp_path):
    """Once the data port refuses a handle's pre-authorized URL (here: it expired), its
    reads go to /files and return the right bytes; a user who may not read the file gets
    EACCES."""
    server = make_server(str(tmp_path), extra_env={"VOSPACE_PREAUTH_LIFETIME": "2"})
    try:
        data = os.urandom(NEGOTIATE_FROM + (1 << 20))
        with server.client("alice") as c:
            assert c.put("/arc/files/home/alice/big", content=data).status_code == 201
        with mounted(server, "alice", "arc", *NO_CACHE) as mp:
            with open(os.path.join(mp, "home", "alice", "big"), "rb", buffering=0) as fh:
                assert os.pread(fh.fileno(), 4096, 1 << 20) == data[1 << 20:(1 << 20) + 4096]
                assert requests_total(server, "arc", "files") == 0
                wait_expired(server, "arc:home/alice/big")  # and the mount's, issued before
                refused = requests_total(server, "arc", "preauth", status="403")
                for offset in (NEGOTIATE_FROM - 5000, 123, len(data) - 4096):
                    assert os.pread(fh.fileno(), 4096, offset) == data[offset:offset + 4096]
        assert requests_total(server, "arc", "preauth", status="403") == refused + 1
        assert requests_total(server, "arc", "files", status="206") >= 1
        with mounted(server, "bob", "arc", *NO_CACHE) as mp:
            assert errno_of(open, os.path.join(mp, "home", "alice", "big"), "rb") == errno.EACCES
    finally:
        server.stop()


def wait_expired(server, name: str) -> None:
    """Negotiate a pull of ``name`` now and wait until the data port refuses that URL."""
    with Client(url=server.url, token=server.tokens["alice"], verify=False) as client:
        url = client.negotiate(name, push=False)
        with httpx.Client(verify=False) as anonymous:
            wait_until(lambda: anonymous.head(url).status_code == 403, 10,
                       "the pre-authorized URL to expire")


def test_s11_page_cache_kept_until_etag_changes(sqlite_server, mnt, d):
    f = os.path.join(d, "cached")
    stored(f, "version 1")  # on the server before the other client writes
    assert open(f).read() == "version 1"
    assert open(f).read() == "version 1"
    with sqlite_server.client("alice") as c:
        assert c.put(f"/arc/files/{rel(f, mnt)}", content=b"version 2!").status_code == 201
    assert open(f).read() == "version 2!"


def test_s12_enoent(mnt, d):
    assert errno_of(os.stat, os.path.join(d, "missing")) == errno.ENOENT
    assert errno_of(open, os.path.join(d, "missing", "x"), "w") == errno.ENOENT


def test_s13_eacces(mnt, d):
    assert errno_of(os.listdir, os.path.join(mnt, "home", "bob")) == errno.EACCES
    assert errno_of(os.mkdir, os.path.join(mnt, "home", "bob", "x")) == errno.EACCES


def test_s14_eexist(d):
    os.mkdir(os.path.join(d, "x"))
    assert errno_of(os.mkdir, os.path.join(d, "x")) == errno.EEXIST
    assert errno_of(os.symlink, "y", os.path.join(d, "x")) == errno.EEXIST
    assert errno_of(os.open, os.path.join(d, "x"), os.O_CREAT | os.O_EXCL | os.O_WRONLY) \
        == errno.EEXIST


def test_s15_enotempty(d):
    os.makedirs(os.path.join(d, "full", "child"))
    os.mkdir(os.path.join(d, "other"))
    assert errno_of(os.rmdir, os.path.join(d, "full")) == errno.ENOTEMPTY
    assert errno_of(os.rename, os.path.join(d, "other"), os.path.join(d, "full")) \
        == errno.ENOTEMPTY


def test_s16_edquot_on_close(sqlite_server, mnt, d):
    result = sqlite_server.vospace("quota", "set", f"arc:{rel(d, mnt)}", "100K")
    assert result.returncode == 0, result.stderr
    fh = open(os.path.join(d, "too-big"), "wb")
    fh.write(b"x" * 300_000)
    fh.flush()
    with pytest.raises(OSError) as info:
        os.fsync(fh.fileno())
    assert info.value.errno == errno.EDQUOT
    fh.close()
    stored(os.path.join(d, "fits"), b"x" * 1000)


def test_s17_s32_unreachable_server_gives_eio_then_recovers(tmp_path):
    server = make_server(str(tmp_path))
    try:
        with mounted(server, "alice", "arc", *NO_CACHE) as mp:
            home = os.path.join(mp, "home", "alice")
            stored(os.path.join(home, "f"), "before")
            server.stop(signal.SIGKILL)          # a crash; a restart follows
            started = time.monotonic()
            assert errno_of(os.listdir, home) == errno.EIO
            assert errno_of(os.stat, os.path.join(home, "g")) == errno.EIO

            def write():
                with open(os.path.join(home, "f2"), "w") as fh:
                    fh.write("not stored")
            assert errno_of(write) == errno.EIO          # at open or at close, never silent
            assert time.monotonic() - started < 30
            server.start()
            assert open(os.path.join(home, "f")).read() == "before"
            with open(os.path.join(home, "f3"), "w") as fh:
                fh.write("after")
            assert "f3" in os.listdir(home)
    finally:
        server.stop()


def test_s18_unlink_directory(d):
    os.mkdir(os.path.join(d, "dir"))
    assert errno_of(os.unlink, os.path.join(d, "dir")) == errno.EISDIR


def test_s19_enotdir(d):
    with open(os.path.join(d, "file"), "w") as fh:
        fh.write("x")
    assert errno_of(os.rmdir, os.path.join(d, "file")) == errno.ENOTDIR
    assert errno_of(os.stat, os.path.join(d, "file", "x")) == errno.ENOTDIR


def test_s2_a_file_written_by_sendfile_streams_whole(sqlite_server, mnt, d, tmp_path):
    """``sendfile`` (``shutil.copyfile``) writes 64 KiB at a time, which fill the streamed
    upload's MiB buffers: a read meanwhile sees every byte written so far, the server gets
    them all."""
    data = os.urandom((5 << 20) + 12345)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    f = os.path.join(d, "sent.bin")
    with open(src, "rb") as source, open(f, "wb") as target:
        half = (2 << 20) + (512 << 10)
        assert os.sendfile(target.fileno(), source.fileno(), 0, half) == half
        with open(f, "rb") as reader:
            assert reader.read() == data[:half]
        sent = half
        while sent < len(data):
            sent += os.sendfile(target.fileno(), source.fileno(), sent, len(data) - sent)
        os.fsync(target.fileno())
        with sqlite_server.client("alice") as c:
            assert c.get(f"/arc/files/{rel(f, mnt)}").content == data


def test_s20_readlink_of_non_link(d):
    with open(os.path.join(d, "file"), "w") as fh:
        fh.write("x")
    assert errno_of(os.readlink, os.path.join(d, "file")) == errno.EINVAL


def test_s21_rename_into_itself(d):
    os.makedirs(os.path.join(d, "a", "b"))
    assert errno_of(os.rename, os.path.join(d, "a"), os.path.join(d, "a", "b", "c")) \
        == errno.EINVAL


def test_s22_missing_xattr(d):
    assert errno_of(os.getxattr, d, "user.nothing") == errno.ENODATA
    assert errno_of(os.removexattr, d, "user.nothing") == errno.ENODATA


def test_s23_reserved_xattr(d):
    for name in ("user.length", "user.MD5", "user.ispublic", "user.date"):
        assert errno_of(os.setxattr, d, name, b"1") == errno.EPERM


def test_s24_other_namespaces(d):
    assert errno_of(os.setxattr, d, "trusted.x", b"1") in (errno.ENOTSUP, errno.EPERM)
    assert errno_of(os.getxattr, d, "security.x") in (errno.ENOTSUP, errno.ENODATA)


def test_s25_hard_links_and_devices(d):
    with open(os.path.join(d, "file"), "w") as fh:
        fh.write("x")
    assert errno_of(os.link, os.path.join(d, "file"), os.path.join(d, "hard")) \
        in (errno.ENOSYS, errno.EPERM)
    assert errno_of(os.mkfifo, os.path.join(d, "fifo")) in (errno.ENOSYS, errno.EPERM)


def test_s26_rmdir_root(mnt):
    assert errno_of(os.rmdir, mnt) in (errno.EBUSY, errno.EACCES)


def test_s27_locked(sqlite_server, mnt, d):
    f = os.path.join(d, "locked.txt")
    stored(f, "x")
    _lock(sqlite_server, rel(f, mnt))
    assert errno_of(os.unlink, f) == errno.EPERM


def test_s28_own_changes_visible_at_once(sqlite_server, d):
    with mounted(sqlite_server, "alice", "arc", "--attr-ttl", "60", "--dir-ttl", "60") as mp:
        where = os.path.join(mp, os.path.relpath(d, os.path.dirname(os.path.dirname(
            os.path.dirname(d)))))
        assert os.listdir(where) == []
        with open(os.path.join(where, "a"), "w") as fh:
            fh.write("1")
        assert os.listdir(where) == ["a"]
        os.rename(os.path.join(where, "a"), os.path.join(where, "b"))
        assert os.listdir(where) == ["b"] and open(os.path.join(where, "b")).read() == "1"
        os.unlink(os.path.join(where, "b"))
        assert os.listdir(where) == []


def test_s29_other_mount_sees_changes_within_ttl(sqlite_server, mnt, d):
    with mounted(sqlite_server, "alice", "arc", "--attr-ttl", "1", "--dir-ttl", "1") as other:
        there = os.path.join(other, rel(d, mnt))
        assert os.listdir(there) == []
        with open(os.path.join(d, "new"), "w") as fh:
            fh.write("hello")
        wait_until(lambda: "new" in os.listdir(there), 3, "the other mount to list it")
        assert open(os.path.join(there, "new")).read() == "hello"


def test_s30_close_to_open(sqlite_server, mnt, d):
    f = os.path.join(d, "shared")
    stored(f, "v1")
    with mounted(sqlite_server, "alice", "arc", *NO_CACHE) as other:
        there = os.path.join(other, rel(f, mnt))
        fh = open(f, "w")
        fh.write("v2")
        fh.flush()
        assert open(there).read() == "v1"       # not closed yet: the old content
        os.fsync(fh.fileno())
        fh.close()
        assert open(there).read() == "v2"


def test_s31_created_file_reaches_server_at_close(sqlite_server, mnt, d):
    f = os.path.join(d, "late")
    fh = open(f, "w")
    assert os.path.exists(f) and "late" in os.listdir(d)
    assert node(sqlite_server, rel(f, mnt)).status_code == 404
    os.fsync(fh.fileno())
    fh.close()
    assert node(sqlite_server, rel(f, mnt)).status_code == 200
