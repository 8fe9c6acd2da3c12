"""Random-operation model test: the same random mix of operations on an arcfs mount and on
a plain local directory; after every step the touched directory's listing and the touched
file's content must be equal, and every 200 steps (and at the end) the whole trees."""
from __future__ import annotations

import errno
import os
import random
import shutil
import time
import uuid

import pytest

from .arcfs_mounts import mounted

STEPS = 3000
BUDGET = 40.0         # seconds; the test stops early (after at least MIN_STEPS) if slow
MIN_STEPS = 800
NAMES = ["a", "b", "c", "d.txt", "e.fits"]


def snapshot(root: str) -> dict[str, object]:
    tree: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        tree[rel] = sorted(dirnames + filenames)
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                tree[os.path.join(rel, name)] = fh.read()
    return tree


class Model:
    """Applies one operation to both trees and records what each returned."""

    def __init__(self, mount_root: str, local_root: str, rng: random.Random) -> None:
        self.roots = (mount_root, local_root)
        self.rng = rng
        self.dirs = ["."]
        self.files: list[str] = []

    def pick_dir(self) -> str:
        return self.rng.choice(self.dirs)

    def new_path(self) -> str:
        return os.path.normpath(os.path.join(self.pick_dir(), self.rng.choice(NAMES)))

    def both(self, fn, *rel_paths, **kwargs):
        results = []
        for root in self.roots:
            try:
                results.append(("ok", fn(*(os.path.join(root, p) for p in rel_paths), **kwargs)))
            except OSError as exc:
                results.append(("err", exc.errno))
        return results

    def step(self) -> tuple[str, str]:
        r = self.rng
        kind = r.choices(["write", "append", "patch", "truncate", "mkdir", "rename",
                          "unlink", "rmdir", "read"], [20, 8, 8, 6, 10, 10, 8, 5, 15])[0]
        target = self.new_path() if kind in ("write", "mkdir") or not self.files else \
            r.choice(self.files)
        if kind == "write":
            data = r.randbytes(r.randrange(0, 5000))
            result = self.both(_write, target, data=data, mode="wb")
        elif kind == "append":
            result = self.both(_write, target, data=r.randbytes(r.randrange(1, 3000)),
                               mode="ab")
        elif kind == "patch":
            result = self.both(_patch, target, offset=r.randrange(0, 6000),
                               data=r.randbytes(r.randrange(1, 2000)))
        elif kind == "truncate":
            result = self.both(os.truncate, target, length=r.randrange(0, 8000))
        elif kind == "mkdir":
            result = self.both(os.mkdir, target)
        elif kind == "rename":
            src = r.choice(self.files + self.dirs[1:]) if len(self.dirs) > 1 else target
            dest = self.new_path()
            result = self.both(os.rename, src, dest)
            target = dest
        elif kind == "unlink":
            result = self.both(os.unlink, target)
        elif kind == "rmdir":
            target = r.choice(self.dirs[1:]) if len(self.dirs) > 1 else target
            result = self.both(os.rmdir, target)
        else:
            result = self.both(_read, target)
        assert result[0] == result[1], (kind, target, result)
        self.rescan()
        return kind, target

    def rescan(self) -> None:
        """What exists now (from the local tree, the reference)."""
        local = self.roots[1]
        self.dirs, self.files = ["."], []
        for dirpath, dirnames, filenames in os.walk(local):
            rel = os.path.relpath(dirpath, local)
            self.dirs += [os.path.normpath(os.path.join(rel, d)) for d in dirnames]
            self.files += [os.path.normpath(os.path.join(rel, f)) for f in filenames]

    def compare_around(self, target: str) -> None:
        for rel in {os.path.dirname(target) or ".", target}:
            paths = [os.path.join(root, rel) for root in self.roots]
            if os.path.isdir(paths[1]):
                assert sorted(os.listdir(paths[0])) == sorted(os.listdir(paths[1])), rel
            elif os.path.isfile(paths[1]):
                assert _read(paths[0]) == _read(paths[1]), rel
            else:
                assert not os.path.lexists(paths[0]), rel


def _write(path, data, mode):
    with open(path, mode) as fh:
        fh.write(data)


def _patch(path, offset, data):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def mnt(sqlite_server):
    with mounted(sqlite_server, "alice", "arc") as mp:
        yield mp


def test_random_operations_match_local_directory(mnt, tmp_path):
    name = f"model-{uuid.uuid4().hex[:8]}"
    mount_root = os.path.join(mnt, "home", "alice", name)
    local_root = str(tmp_path / name)
    os.mkdir(mount_root)
    os.mkdir(local_root)
    model = Model(mount_root, local_root, random.Random(20261125))
    started = time.monotonic()
    done = 0
    kinds: dict[str, int] = {}
    for done in range(1, STEPS + 1):
        kind, target = model.step()
        kinds[kind] = kinds.get(kind, 0) + 1
        model.compare_around(target)
        if done % 200 == 0:
            assert snapshot(mount_root) == snapshot(local_root), done
        if done >= MIN_STEPS and time.monotonic() - started > BUDGET:
            break
    assert snapshot(mount_root) == snapshot(local_root)
    print(f"{done} steps in {time.monotonic() - started:.1f}s: {kinds}")
    assert done >= MIN_STEPS and len(kinds) == 9, kinds
    shutil.rmtree(mount_root)
    assert not os.path.exists(mount_root)
    assert errno.ENOENT == _errno_of_stat(mount_root)


def _errno_of_stat(path):
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno
    return 0
