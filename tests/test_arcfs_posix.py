"""Per-syscall POSIX conformance of arcfs with pjdfstest's errno expectations (pjdfstest
itself cannot be installed here), and an fsx-style random read/write/truncate checker
against an in-memory reference file. All on a real mount of a real server."""
from __future__ import annotations

import errno
import os
import random
import uuid

import pytest

from .arcfs_mounts import fresh_dir, mounted

E = errno


@pytest.fixture(scope="module")
def mnt(sqlite_server):
    with mounted(sqlite_server, "alice", "arc") as mp:
        yield mp


@pytest.fixture
def d(mnt):
    return fresh_dir(mnt, "p")


def _file(path, data=b"data"):
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _setup(d):
    """Fixed layout every case starts from: file f, dir e (empty), dir full/x, link l -> f."""
    _file(os.path.join(d, "f"))
    os.mkdir(os.path.join(d, "e"))
    os.makedirs(os.path.join(d, "full", "x"))
    os.symlink("f", os.path.join(d, "l"))


def _open(path, flags):
    os.close(os.open(path, flags, 0o644))


def _rdonly_write(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def _wronly_read(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)


def _read_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)


def cases(syscall: str, fn, *rows: tuple) -> list[tuple]:
    """(syscall, case, function, arguments, expected errno) for ``rows`` of (case, arguments
    relative to the test directory, expected errno) that call ``fn``."""
    return [(syscall, case, fn, args, expected) for case, args, expected in rows]


CASES = [
    *cases("open", _open,
           ("missing", ("missing", os.O_RDONLY), E.ENOENT),
           ("prefix not a dir", ("f/x", os.O_RDONLY), E.ENOTDIR),
           ("dir for writing", ("e", os.O_WRONLY), E.EISDIR),
           ("dir read-write", ("e", os.O_RDWR), E.EISDIR),
           ("O_EXCL existing", ("f", os.O_CREAT | os.O_EXCL | os.O_WRONLY), E.EEXIST),
           ("O_EXCL on link", ("l", os.O_CREAT | os.O_EXCL | os.O_WRONLY), E.EEXIST),
           ("O_DIRECTORY on file", ("f", os.O_RDONLY | os.O_DIRECTORY), E.ENOTDIR),
           ("O_NOFOLLOW on link", ("l", os.O_RDONLY | os.O_NOFOLLOW), E.ELOOP),
           ("name too long", ("x" * 256, os.O_CREAT | os.O_WRONLY), E.ENAMETOOLONG)),
    *cases("create", _open,
           ("parent missing", ("nodir/new", os.O_CREAT | os.O_WRONLY), E.ENOENT),
           ("parent is a file", ("f/new", os.O_CREAT | os.O_WRONLY), E.ENOTDIR)),
    *cases("read", _wronly_read, ("O_WRONLY handle", ("f",), E.EBADF)),
    *cases("read", _read_dir, ("directory", ("e",), E.EISDIR)),
    *cases("write", _rdonly_write, ("O_RDONLY handle", ("f",), E.EBADF)),
    *cases("truncate", os.truncate,
           ("missing", ("missing", 0), E.ENOENT),
           ("directory", ("e", 0), E.EISDIR),
           ("negative", ("f", -1), E.EINVAL),
           ("prefix not a dir", ("f/x", 0), E.ENOTDIR)),
    *cases("rename", os.rename,
           ("source missing", ("missing", "z"), E.ENOENT),
           ("file onto dir", ("f", "e"), E.EISDIR),
           ("dir onto file", ("e", "f"), E.ENOTDIR),
           ("onto non-empty dir", ("e", "full"), E.ENOTEMPTY),
           ("dir into itself", ("full", "full/x/y"), E.EINVAL),
           ("dest parent missing", ("f", "nodir/f"), E.ENOENT)),
    *cases("unlink", os.unlink,
           ("missing", ("missing",), E.ENOENT),
           ("directory", ("e",), E.EISDIR),
           ("prefix not a dir", ("f/x",), E.ENOTDIR)),
    *cases("mkdir", os.mkdir,
           ("existing dir", ("e",), E.EEXIST),
           ("existing file", ("f",), E.EEXIST),
           ("existing link", ("l",), E.EEXIST),
           ("parent missing", ("nodir/x",), E.ENOENT),
           ("prefix not a dir", ("f/x",), E.ENOTDIR)),
    *cases("rmdir", os.rmdir,
           ("not empty", ("full",), E.ENOTEMPTY),
           ("a file", ("f",), E.ENOTDIR),
           ("missing", ("missing",), E.ENOENT),
           ("dot", ("e/.",), E.EINVAL)),
    *cases("symlink", lambda t, p: os.symlink(t, p),
           ("existing file", ("x", "f"), E.EEXIST),
           ("existing dir", ("x", "e"), E.EEXIST),
           ("parent missing", ("x", "nodir/l"), E.ENOENT)),
    *cases("readlink", os.readlink,
           ("a file", ("f",), E.EINVAL),
           ("missing", ("missing",), E.ENOENT)),
    *cases("chmod", os.chmod,
           ("missing", ("missing", 0o644), E.ENOENT),
           ("prefix not a dir", ("f/x", 0o644), E.ENOTDIR)),
    *cases("utimens", os.utime, ("missing", ("missing", None), E.ENOENT)),
    *cases("xattr", os.getxattr,
           ("get unset", ("f", "user.none"), E.ENODATA),
           ("missing node", ("missing", "user.a"), E.ENOENT)),
    *cases("xattr", os.removexattr, ("remove unset", ("f", "user.none"), E.ENODATA)),
    *cases("xattr", lambda p, n: os.setxattr(p, n, b"v", os.XATTR_REPLACE),
           ("replace unset", ("f", "user.none"), E.ENODATA)),
]

PATH_ARGS = {"symlink": (1,), "rename": (0, 1)}   # path arguments (default: the first)


@pytest.mark.parametrize("syscall,case,fn,args,expected", CASES,
                         ids=[f"{c[0]}-{c[1].replace(' ', '_')}" for c in CASES])
def test_errno(d, syscall, case, fn, args, expected):
    _setup(d)
    positions = PATH_ARGS.get(syscall, (0,))
    real = [os.path.join(d, a) if i in positions else a for i, a in enumerate(args)]
    with pytest.raises(OSError) as info:
        fn(*real)
    assert info.value.errno == expected, (syscall, case, info.value)


def test_successful_calls_have_posix_effects(d):
    """The positive side of the same syscalls (pjdfstest's 'ok' lines)."""
    _setup(d)
    p = lambda *a: os.path.join(d, *a)  # noqa: E731
    fd = os.open(p("new"), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    assert os.write(fd, b"hello") == 5 and os.pread(fd, 5, 0) == b"hello"
    os.ftruncate(fd, 2)
    assert os.fstat(fd).st_size == 2
    os.close(fd)
    _open(p("f"), os.O_WRONLY | os.O_TRUNC)
    assert os.stat(p("f")).st_size == 0
    os.truncate(p("new"), 10)
    assert open(p("new"), "rb").read() == b"he" + b"\0" * 8
    os.rename(p("new"), p("new"))                          # same name: nothing happens
    assert os.path.exists(p("new"))
    os.rename(p("new"), p("e", "moved"))
    assert os.listdir(p("e")) == ["moved"]
    os.symlink("dangling", p("dl"))                        # a dangling link is allowed
    assert os.readlink(p("dl")) == "dangling" and not os.path.exists(p("dl"))
    os.chmod(p("l"), 0o604)                                # follows the link
    assert os.stat(p("f")).st_mode & 0o777 == 0o604 and os.lstat(p("l")).st_mode & 0o777 == 0o777
    before = os.stat(p("e")).st_mtime
    os.utime(p("e", "moved"))
    assert os.stat(p("e", "moved")).st_mtime >= before - 2
    os.setxattr(p("f"), "user.a", b"1", os.XATTR_CREATE)
    assert os.listxattr(p("f")) == ["user.a"]
    os.rmdir(p("full", "x"))
    os.rmdir(p("full"))
    os.unlink(p("l"))
    assert sorted(os.listdir(d)) == ["dl", "e", "f"]


def test_fsx_random_read_write_truncate(d):
    """fsx: random writes, reads, truncates and reopens of one file, checked after every
    operation against an in-memory copy (reopens read back what the server stored)."""
    rng = random.Random(8)
    path = os.path.join(d, "fsx.bin")
    ref = bytearray()
    fh = open(path, "w+b")
    max_size = 1 << 20
    for step in range(1500):
        op = rng.random()
        if op < 0.40:
            offset = rng.randrange(0, max_size - 65536)
            data = rng.randbytes(rng.randrange(1, 65536))
            fh.seek(offset)
            fh.write(data)
            if offset > len(ref):
                ref.extend(b"\0" * (offset - len(ref)))
            ref[offset:offset + len(data)] = data
        elif op < 0.75:
            offset = rng.randrange(0, max(len(ref), 1))
            size = rng.randrange(1, 131072)
            fh.seek(offset)
            assert fh.read(size) == bytes(ref[offset:offset + size]), step
        elif op < 0.90:
            length = rng.randrange(0, max_size)
            fh.truncate(length)
            del ref[length:]
            ref.extend(b"\0" * (length - len(ref)))
        else:
            fh.close()
            assert os.stat(path).st_size == len(ref), step
            with open(path, "rb") as check:          # a fresh read of the server's copy
                assert check.read() == bytes(ref), step
            fh = open(path, "r+b")
    fh.close()
    assert open(path, "rb").read() == bytes(ref)


def test_vault_service_mount(sqlite_server):
    """The same filesystem over the vault service (reads follow its 303 to a
    pre-authorized URL; moves are UWS jobs there too)."""
    with mounted(sqlite_server, "alice", "vault") as mp:
        base = os.path.join(mp, "alice", f"v-{uuid.uuid4().hex[:8]}")
        os.mkdir(base)
        data = os.urandom(3 << 20)
        with open(os.path.join(base, "f.bin"), "wb") as fh:
            fh.write(data)
        with open(os.path.join(base, "f.bin"), "r+b") as fh:
            fh.seek(100)
            fh.write(b"patched")
        expected = data[:100] + b"patched" + data[107:]
        assert open(os.path.join(base, "f.bin"), "rb").read() == expected
        os.rename(os.path.join(base, "f.bin"), os.path.join(base, "g.bin"))
        assert os.listdir(base) == ["g.bin"] and os.path.getsize(os.path.join(base, "g.bin")) \
            == len(data)
        with pytest.raises(OSError) as info:
            os.rmdir(base)
        assert info.value.errno == errno.ENOTEMPTY
        os.unlink(os.path.join(base, "g.bin"))
        os.rmdir(base)
        assert not os.path.exists(base)
