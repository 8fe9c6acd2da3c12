"""``vospace serve --workers N``: N processes share the main and the data port, the
database (node writes, the count of wrong passwords, sessions), /metrics and the count of
transfers in flight (which blob copies give way to); the supervisor replaces a worker that
dies, gives up on one that dies at once, and leaves no worker behind when it stops or is
killed."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from vosclient.client import Client
from vospace_server.yielding import TransfersInFlight, WorkerBoard

from .harness import VOSPACE, Server, free_port, make_server, requests_total
from .sessions_helpers import API, end_leftovers, launch, sandbox_pids, text, wait_status
from .waiting import wait_until

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CRASH_WINDOW = 10  # vospace_server/workers.py: a worker dying sooner stops the supervisor


def workers_of(server: Server) -> list[int]:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as fh:
        return sorted(int(pid) for pid in fh.read().split())


def answered_by(server: Server, path_part: str) -> list[int]:
    """The pids in the access log lines of requests whose path contains ``path_part``."""
    with open(server.log_path) as fh:
        lines = [json.loads(line) for line in fh if line.startswith('{"time"')]
    return [line["pid"] for line in lines if path_part in line["path"]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited child of a process not yet reaped is not alive either
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def age(pid: int) -> float:
    """Seconds since process ``pid`` started."""
    with open(f"/proc/{pid}/stat") as fh:
        started = int(fh.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0]) - started


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def remove_shared_dir(supervisor: int) -> None:
    """What a supervisor killed outright leaves: its private directory (workers.py)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"vospace-workers-{supervisor}-*")):
        shutil.rmtree(path)


@pytest.fixture
def two_workers(tmp_path):
    server = make_server(str(tmp_path), users=("alice",), workers=2)
    yield server
    server.stop()
    assert end_leftovers(server) == []
    remove_shared_dir(server.proc.pid)


def test_two_workers_share_both_ports_the_database_and_the_metrics(two_workers):
    server = two_workers
    workers = workers_of(server)
    assert len(workers) == 2 and server.proc.pid not in workers
    # Every request on a connection of its own: the kernel hands each to either worker.
    headers = {"Authorization": f"Bearer {server.tokens['alice']}", "Connection": "close"}

    def create(i: int) -> int:
        body = (f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" '
                f'uri="vos://localhost~vault/alice/many/n{i}" xsi:type="vos:DataNode"/>')
        return httpx.put(f"{server.url}/vault/nodes/alice/many/n{i}", content=body,
                         headers=headers, verify=False, timeout=60).status_code

    with server.client("alice") as c:
        assert c.put("/vault/nodes/alice/many", content=(
            f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" uri="vos://localhost~vault/'
            f'alice/many" xsi:type="vos:ContainerNode"/>')).status_code == 201
    with ThreadPoolExecutor(8) as pool:  # both processes write the one SQLite file at once
        assert set(pool.map(create, range(120))) == {201}
    assert set(answered_by(server, "/vault/nodes/alice/many/n")) == set(workers)
    with server.client("alice") as c:
        listing = c.get("/vault/nodes/alice/many", params={"limit": 1000}).text
    assert all(f'alice/many/n{i}"' in listing for i in range(120))
    # /metrics from either worker counts the requests of both.
    assert requests_total(server, "vault", "nodes", "PUT", "201") == 121

    # The data port: an upload through one worker, downloads through both.
    data = os.urandom(300_000)
    with Client(url=server.url, token=server.tokens["alice"], verify=False) as client:
        url = client.negotiate("vos:alice/shared.bin", push=True)
        assert httpx.put(url, content=data, verify=False).status_code in (200, 201)
        url = client.negotiate("vos:alice/shared.bin", push=False)
    assert str(server.data_port) in url
    for _ in range(30):
        r = httpx.get(url, verify=False, headers={"Connection": "close"})
        assert r.status_code == 200 and r.content == data
    assert set(answered_by(server, "/shared.bin")) == set(workers)


def test_wrong_passwords_are_counted_across_workers(two_workers):
    server = two_workers

    def login() -> int:
        return httpx.post(f"{server.url}/ac/login", verify=False, headers={"Connection": "close"},
                          data={"username": "guessed", "password": "wrong guess"}).status_code

    assert [login() for _ in range(10)] == [401] * 10
    assert set(answered_by(server, "/ac/login")) == set(workers_of(server))
    assert [login() for _ in range(6)] == [429] * 6  # each worker saw only some of the ten


def test_a_session_launched_through_one_worker_is_served_by_both(two_workers):
    server = two_workers
    with server.client("alice") as c:
        c.headers["Connection"] = "close"  # each request to either worker
        sid = launch(c, "workers", cmd="bash", args="-c echo${IFS}started;sleep${IFS}300")
        assert wait_status(c, sid, ("Running",))["id"] == sid
        wait_until(lambda: "started" in text(c, sid, "logs"), 10, "the session's output")
        for _ in range(10):
            assert text(c, sid, "logs") == "started\n"
        assert c.delete(f"{API}/session/{sid}").status_code == 200
        assert c.get(f"{API}/session/{sid}").status_code == 404
    assert set(answered_by(server, f"{API}/session/{sid}")) == set(workers_of(server))
    assert sandbox_pids(sid) == []


def test_a_worker_that_dies_is_replaced_and_sigterm_stops_them_all(two_workers):
    server = two_workers
    first = workers_of(server)
    time.sleep(max(0.0, CRASH_WINDOW + 0.5 - min(age(pid) for pid in first)))
    os.kill(first[0], signal.SIGKILL)
    now = wait_until(lambda: (w := workers_of(server)) and len(w) == 2 and first[0] not in w
                     and w, what="a new worker in place of the killed one")
    assert first[1] in now
    with server.client("alice") as c:
        for _ in range(10):  # whichever worker takes the connection answers
            assert c.get("/vault/nodes/alice", headers={"Connection": "close"}).status_code == 200
    server.stop()
    assert server.proc.returncode == 0
    assert not any(alive(pid) for pid in now)
    assert refused(server.port) and refused(server.data_port)


def test_a_worker_dying_at_once_stops_the_supervisor_with_an_error(two_workers):
    server = two_workers
    workers = workers_of(server)
    os.kill(workers[0], signal.SIGKILL)  # within the crash window: a broken set-up
    assert server.proc.wait(timeout=30) == 1
    assert not any(alive(pid) for pid in workers)
    with open(server.log_path) as fh:
        assert "within 10 s of its start; stopping" in fh.read()
    assert refused(server.port) and refused(server.data_port)


def test_workers_end_when_their_supervisor_is_killed(two_workers):
    server = two_workers
    workers = workers_of(server)
    server.proc.kill()
    server.proc.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=20,
               what="the orphaned workers to stop")
    assert refused(server.port) and refused(server.data_port)


def test_workers_still_starting_end_when_their_supervisor_is_killed(tmp_path):
    """Killed before its workers are up (they are then children of another process by
    the time they look for it), the supervisor still leaves none behind."""
    server = Server(data_dir=str(tmp_path), port=free_port(), env=dict(os.environ),
                    workers=2)
    server.proc = subprocess.Popen([VOSPACE, "--data-dir", server.data_dir, "serve", "--port",
                                    str(server.port), "--workers", "2"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = wait_until(lambda: len(w := workers_of(server)) == 2 and w, timeout=30,
                         what="two worker processes")
    server.proc.kill()
    server.proc.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=20,
               what="the orphaned workers to stop")
    remove_shared_dir(server.proc.pid)


@pytest.mark.parametrize("count", ["0", "-2"])
def test_fewer_than_one_worker_is_a_one_line_error(tmp_path, count):
    out = subprocess.run([VOSPACE, "--data-dir", str(tmp_path), "serve", "--workers", count],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == f"ERROR:: workers must be at least 1, not {count}"


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([VOSPACE, "--data-dir", str(tmp_path), "serve", "--workers", "2",
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == \
        f"ERROR:: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_the_transfers_board_shows_each_worker_every_workers_transfers(tmp_path):
    """Two workers' counts on one board file (as the supervisor shares it): a transfer in
    one keeps the other busy, its end starts the grace period for both, and a dead
    worker's record cleared by the supervisor no longer counts."""
    path = str(tmp_path / "transfers")
    WorkerBoard.create(path, 2)
    one, two = (TransfersInFlight(WorkerBoard(path, slot)) for slot in (0, 1))
    assert two.wait_idle(0, 1)
    one.add(1)
    assert not two.wait_idle(0.1, 0.5)
    one.add(-1)
    started = time.monotonic()
    assert two.wait_idle(0.3, 5) and time.monotonic() - started >= 0.25
    one.add(1)                        # then its worker dies with the transfer counted
    assert not two.wait_idle(0.1, 0.3)
    WorkerBoard.clear(path, 0)
    assert two.wait_idle(0, 1)
