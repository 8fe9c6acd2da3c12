"""Jobs are rows in the shared database: they survive a killed server, and any of several
server processes sharing the database runs them (SQLite file and PostgreSQL).
"""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from vospace_server.storage.jobs import EXECUTING, JobStore
from vospace_server.storage.vault.schema import make_engine

from .conftest import ServiceUnderTest
from .harness import Server, free_port, make_server
from .test_uws_jobs import new_job
from .waiting import wait_until

FILES = 10000  # an arc copy of this many files (fsync each) far outlasts the 1.5 s budget


def job_store(server: Server) -> JobStore:
    url = server.env.get("VOSPACE_DATABASE_URL") or \
        f"sqlite:///{os.path.join(server.data_dir, 'vospace.db')}"
    return JobStore(make_engine(url))


def fill_on_disk(server: Server, path: str) -> None:
    """FILES small files in arc folder ``path``, written on disk as a session would (they
    belong to the owner of the home they are in)."""
    folder = os.path.join(server.data_dir, "arc", path)
    os.makedirs(folder)
    for i in range(FILES):
        with open(os.path.join(folder, f"f{i:05d}"), "wb") as fh:
            fh.write(b"x" * 100)


def wait_final(store: JobStore, job_id: str, timeout: float = 30) -> str:
    def final() -> str | None:
        phase = store.phase(job_id)
        return None if phase in ("PENDING", "QUEUED", "EXECUTING") else phase
    return wait_until(final, timeout, f"job {job_id} to end", retry=())


def test_jobs_left_executing_by_a_killed_server_are_failed_or_resumed(tmp_path):
    server = make_server(str(tmp_path))
    try:
        arc = ServiceUnderTest(server, "arc", "arc")
        base = arc.unique()
        fill_on_disk(server, f"{base}/big")
        arc.create(f"{base}/doomed")
        arc.create(f"{base}/doomed/f", "DataNode")
        with arc.client() as c:
            copy_job = new_job(c, arc, f"{base}/big", f"{base}/copy", keep_bytes=True)
            r = c.post(copy_job + "/phase", data={"PHASE": "RUN"})
            assert r.status_code == 303
            r = c.post(f"/arc/async-delete", data={"target": arc.uri(f"{base}/doomed")})
            delete_job = r.headers["location"]
        store = job_store(server)
        copy_id, delete_id = copy_job.rsplit("/", 1)[1], delete_job.rsplit("/", 1)[1]
        assert store.phase(copy_id) == EXECUTING  # still copying after the inline budget
        server.stop(signal.SIGKILL)
        # the delete job, too, was running in the killed process (same state a kill
        # mid-execution leaves: EXECUTING, claimed by a pid that no longer exists)
        assert store.queue(delete_id)
        assert store.claim(f"{socket.gethostname()}:{server.proc.pid}:0", delete_id)
        server.start()
        assert wait_final(store, copy_id) == "ERROR"
        assert wait_final(store, delete_id) == "COMPLETED"
        with arc.client() as c:
            assert c.get(copy_job + "/error").text == "TransferFailed"
            assert "stopped" in c.get(copy_job).text
            # the half-made copy is invisible, the resumed delete finished its work
            assert c.get(arc.nodes_url(f"{base}/copy")).status_code == 404
            assert c.get(arc.nodes_url(f"{base}/doomed")).status_code == 404
            listing = c.get(arc.nodes_url(base)).text
            assert "copy" not in listing and "big" in listing
            # a graceful stop (SIGTERM) does not wait for a long copy: it hands it back
            # (the SIGKILLed copy's hidden temp folder stays for fsck; nothing is added)
            before = sorted(os.listdir(os.path.join(server.data_dir, "arc", base)))
            job = new_job(c, arc, f"{base}/big", f"{base}/copy2", keep_bytes=True)
            assert c.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
        assert store.phase(job.rsplit("/", 1)[1]) == EXECUTING
        start = time.monotonic()
        server.stop()
        assert server.proc.returncode is not None and time.monotonic() - start < 10
        assert store.phase(job.rsplit("/", 1)[1]) == "ERROR"
        assert sorted(os.listdir(os.path.join(server.data_dir, "arc", base))) == before
    finally:
        server.stop()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_server_processes_share_the_job_table(database, tmp_path, request):
    url = request.getfixturevalue("postgres").create_database() if database == "postgres" else None
    first = make_server(str(tmp_path), url)
    second = Server(data_dir=first.data_dir, port=free_port(), env=first.env,
                    tokens=dict(first.tokens)).start()
    try:
        vault = ServiceUnderTest(first, "vault", "vault")
        other = ServiceUnderTest(second, "vault", "vault")
        base = vault.unique()
        vault.create(base)
        for i in range(12):
            vault.create(f"{base}/n{i}", "DataNode")
        store = job_store(first)
        # created through one process, run by the other (inline, or past the inline budget
        # on its worker threads when the machine is busy), and the other way round
        with vault.client() as c1, other.client() as c2:
            job = new_job(c1, vault, f"{base}/n0", f"{base}/m0", keep_bytes=True)
            assert c2.post(job.replace(first.url, second.url) + "/phase",
                           data={"PHASE": "RUN"}).status_code == 303
            assert wait_final(store, job.rsplit("/", 1)[1]) == "COMPLETED"
            assert c1.get(job + "/phase").text == "COMPLETED"
            job = new_job(c2, other, f"{base}/n1", f"{base}/m1", keep_bytes=True)
            assert c1.post(job.replace(second.url, first.url) + "/phase",
                           data={"PHASE": "RUN"}).status_code == 303
            assert wait_final(store, job.rsplit("/", 1)[1]) == "COMPLETED"
            assert c2.get(job + "/phase").text == "COMPLETED"
            # queued jobs are claimed by the background runners of both processes; a copy
            # run twice would end in DuplicateNode, so all COMPLETED means each ran once
            ids = [new_job(c1, vault, f"{base}/n{i}", f"{base}/c{i}", keep_bytes=True)
                   .rsplit("/", 1)[1] for i in range(2, 12)]
        for job_id in ids:
            assert store.queue(job_id)
        assert [wait_final(store, job_id) for job_id in ids] == ["COMPLETED"] * len(ids)
        with vault.client() as c:
            for i in range(2, 12):
                assert c.get(vault.nodes_url(f"{base}/c{i}")).status_code == 200
    finally:
        second.stop()
        first.stop()


def test_abort_stops_an_executing_copy_and_leaves_nothing(sqlite_server):
    arc = ServiceUnderTest(sqlite_server, "arc", "arc")
    base = arc.unique()
    fill_on_disk(sqlite_server, f"{base}/big")
    with arc.client() as c:
        job = new_job(c, arc, f"{base}/big", f"{base}/copy", keep_bytes=True)
        assert c.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
        assert c.get(job + "/phase").text == "EXECUTING"
        assert c.post(job + "/phase", data={"PHASE": "ABORT"}).status_code == 303
        assert c.get(job + "/phase").text == "ABORTED"
        # the copy notices within a moment, removes what it made and stays ABORTED
        wait_until(lambda: not any(
            n.startswith(".vospace-tmp-")
            for n in os.listdir(os.path.join(sqlite_server.data_dir, "arc", base))),
            30, "the aborted copy's temp file to go", interval=0.2)
        assert sorted(os.listdir(os.path.join(sqlite_server.data_dir, "arc", base))) == ["big"]
        assert c.get(arc.nodes_url(f"{base}/copy")).status_code == 404
        assert c.get(job + "/phase").text == "ABORTED"
