"""Arc snapshots: take one, then modify (through the API and in place on disk), delete and
rename files; the snapshot still shows the old bytes through /arc/nodes and /arc/files and
refuses writes; restore brings them back. The schedule takes one snapshot per root and
period and prunes to the retention, in process and in a server started with
``snapshot_schedule = "daily"``.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid

from lxml import etree

from vospace_server.protocol.nodes import Node, NodeType
from vospace_server.storage.arc.snapshots import Scheduler
from vospace_server.storage.arc.tree import ArcTree

from .conftest import VOS_NS, ServiceUnderTest
from .harness import Server, free_port
from .test_uws_jobs import run_job
from .waiting import wait_until


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def children(c, path: str) -> list[str]:
    r = c.get(f"/arc/nodes/{path}")
    assert r.status_code == 200, r.text
    return [n.get("uri").rsplit("/", 1)[1] for n in
            etree.fromstring(r.content).iter(f"{{{VOS_NS}}}node")][1:]


def test_snapshot_keeps_old_bytes_refuses_writes_and_restores(sqlite_server):
    server = sqlite_server
    user = f"snap{uuid.uuid4().hex[:6]}"
    server.add_user(user)
    svc = ServiceUnderTest(server, "arc", "arc")
    folder = f"home/{user}/work"
    assert svc.create(folder, user=user).status_code == 201
    old = {name: os.urandom(3000 + i) for i, name in enumerate(["a", "b", "c", "d"])}
    with server.client(user) as c:
        for name, data in old.items():
            assert c.put(f"/arc/files/{folder}/{name}", content=data).status_code == 201
    r = server.vospace("snapshot", "create", f"home/{user}")
    assert r.returncode == 0, r.stderr
    stamp = r.stdout.split()[-1]

    with server.client(user) as c:
        assert c.put(f"/arc/files/{folder}/a", content=b"new a").status_code == 201
        assert c.delete(f"/arc/nodes/{folder}/b").status_code == 200
        job = run_job(c, svc, f"{folder}/c", f"{folder}/c-renamed")
        assert c.get(job + "/phase").text == "COMPLETED"
    live_d = os.path.join(server.data_dir, "arc", folder, "d")
    with open(live_d, "r+b") as fh:  # a session writing in place through the mount
        fh.write(b"XXXX")

    snap = f"home/{user}/.snapshots/{stamp}/work"
    with server.client(user) as c:
        assert children(c, f"home/{user}/.snapshots") == [stamp]
        assert children(c, snap) == ["a", "b", "c", "d"]
        for name, data in old.items():
            r = c.get(f"/arc/files/{snap}/{name}")
            assert r.status_code == 200 and md5(r.content) == md5(data), name
            r = c.get(f"/arc/nodes/{snap}/{name}")
            assert f">{len(data)}<" in r.text and md5(data) in r.text
        assert ".snapshots" not in children(c, f"home/{user}")  # hidden, like CephFS .snap
        # read-only: every kind of write is refused
        assert c.put(f"/arc/files/{snap}/a", content=b"x").status_code == 403
        assert c.delete(f"/arc/nodes/{snap}/a").status_code == 403
        assert svc.create(f"{snap}/new", user=user).status_code == 403
        assert c.delete(f"/arc/nodes/home/{user}/.snapshots").status_code == 403
        job = run_job(c, svc, f"{snap}/a", f"{snap}/a2")
        assert c.get(job + "/error").text.startswith("PermissionDenied")
        # but copying out of a snapshot is how a user gets a file back themselves
        job = run_job(c, svc, f"{snap}/b", f"{folder}/b-from-snapshot", keep_bytes=True)
        assert c.get(job + "/phase").text == "COMPLETED"
        assert md5(c.get(f"/arc/files/{folder}/b-from-snapshot").content) == md5(old["b"])
    with server.client("bob") as c:  # snapshots are as private as the home they copy
        assert c.get(f"/arc/nodes/home/{user}/.snapshots").status_code == 403
        assert c.get(f"/arc/files/{snap}/a").status_code == 403

    r = server.vospace("snapshot", "restore", f"home/{user}", stamp, "work")
    assert r.returncode == 0, r.stderr
    with server.client(user) as c:
        assert children(c, folder) == ["a", "b", "c", "d"]
        for name, data in old.items():
            assert md5(c.get(f"/arc/files/{folder}/{name}").content) == md5(data), name
    listed = server.vospace("snapshot", "list", f"home/{user}")
    assert listed.stdout.split() == [f"home/{user}", stamp]
    assert server.vospace("snapshot", "delete", f"home/{user}", stamp).returncode == 0
    with server.client(user) as c:
        assert children(c, f"home/{user}/.snapshots") == []
        assert c.get(f"/arc/nodes/{snap}").status_code == 404


def test_scheduler_takes_one_per_period_and_prunes(tmp_path):
    tree = ArcTree(str(tmp_path / "arc"), "admin", "vos://localhost~arc")
    for root in ("home/alice", "projects/p"):
        tree.create(Node(root, NodeType.CONTAINER), "alice")
    upload = tree.begin_write("projects/p/f", "alice")
    upload.write(b"v1")
    upload.commit()
    scheduler = Scheduler(tree.snapshots, "daily", keep=2)
    start = time.time()
    assert len(scheduler.run_once(start)) == 2
    assert scheduler.run_once(start + 3600) == []  # not due yet
    assert len(scheduler.run_once(start + 86400)) == 2
    assert len(scheduler.run_once(start + 2 * 86400)) == 2
    stamps = tree.snapshots.list("projects/p")
    assert len(stamps) == 2  # pruned to the retention
    handle = tree.open_read(f"projects/p/.snapshots/{stamps[0]}/f")
    assert handle.read(0, 10) == b"v1"
    handle.close()


def test_server_with_daily_schedule_snapshots_on_start(tmp_path):
    data_dir = str(tmp_path / "sched")
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "vospace.toml"), "w") as fh:
        fh.write('snapshot_schedule = "daily"\nsnapshot_keep = 3\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOSPACE_")}
    server = Server(data_dir=data_dir, port=free_port(), env=env)
    server.add_user("alice")
    server.start()
    try:
        with server.client("alice") as c:
            found = wait_until(lambda: children(c, "home/alice/.snapshots"), 20,
                               "the scheduled snapshot", interval=0.3)
        assert len(found) == 1
    finally:
        server.stop()
