"""How local sessions end besides exiting: expiry (and renew), a server restart (graceful or
``kill -9``), and a second server process answering for sessions the first one runs."""
from __future__ import annotations

import os
import signal

import pytest

from .harness import Server, free_port, make_server
from .sessions_helpers import (API, SOCKET_APP, SOCKET_APP_COMMAND, after_start, catalogue,
                               catalogue_image, end_leftovers, launch, sandbox_pids, seconds,
                               session, session_dir, text, wait_status)
from .waiting import wait_until


class Servers:
    """The servers one test starts, each with its own settings; all are stopped when the
    test ends, and none may leave a sandbox behind."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.started: list[Server] = []

    def start(self, database_url: str | None = None, **settings: str) -> Server:
        """A server whose environment adds ``settings`` (VOSPACE_... variables)."""
        self.started.append(make_server(self.root, database_url, extra_env=settings))
        return self.started[-1]

    def second(self, first: Server) -> Server:
        """Another server process on ``first``'s data (and database), as a replica."""
        self.started.append(Server(data_dir=first.data_dir, port=free_port(), env=first.env,
                                   tokens=first.tokens).start())
        return self.started[-1]

    def stop_all(self) -> list[str]:
        """Stop them all; the ids of sessions whose processes were left running."""
        for srv in reversed(self.started):
            srv.stop()
        return [sid for srv in self.started for sid in end_leftovers(srv)]


@pytest.fixture
def servers(tmp_path):
    started = Servers(str(tmp_path))
    yield started
    assert started.stop_all() == []


@pytest.fixture
def short_lived(servers):
    return servers.start(VOSPACE_SESSION_HEADLESS_EXPIRY="5")


@pytest.fixture
def server(servers):
    return servers.start()


def test_expiry_ends_a_session_and_renew_extends_it(short_lived):
    with short_lived.client("alice") as c:
        renewed = launch(c, "renewed", cmd="sleep", args="300")
        plain = launch(c, "plain", cmd="sleep", args="300")
        first = wait_status(c, renewed, ("Running",))
        assert seconds(first["expiryTime"]) - seconds(first["startTime"]) == 5
        after_start(first, 2)
        r = c.post(f"{API}/session/{renewed}", params={"action": "renew"})
        assert r.status_code == 200, r.text
        later = session(c, renewed)
        assert seconds(later["expiryTime"]) >= seconds(first["expiryTime"]) + 2
        ended = wait_status(c, plain, ("Failed",), timeout=30)
        assert session(c, renewed)["status"] == "Running"  # its expiry is later
        assert "DeadlineExceeded" in text(c, plain, "events")
        assert wait_status(c, renewed, ("Failed",), timeout=30)["status"] == "Failed"
        assert "Renewed" in text(c, renewed, "events")
    assert ended["status"] == "Failed"
    for sid in (renewed, plain):
        assert not os.path.exists(os.path.join(session_dir(short_lived, sid), "scratch"))
        assert sandbox_pids(sid) == []


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_server_restart_ends_its_sessions_and_keeps_their_rows(server, how):
    with server.client("alice") as c:
        sid = launch(c, "survivor", cmd="bash", args="-c echo${IFS}x>/scratch/f;sleep${IFS}300")
        wait_status(c, sid, ("Running",))
    scratch = os.path.join(session_dir(server, sid), "scratch")
    wait_until(lambda: os.path.exists(os.path.join(scratch, "f")), 10, "the session's file",
               interval=0.05)
    assert sandbox_pids(sid)
    server.stop(how)
    # bubblewrap --die-with-parent, or the shutdown
    wait_until(lambda: not sandbox_pids(sid), 10, "the sandbox to end", interval=0.05)
    assert sandbox_pids(sid) == []
    server.start()
    with server.client("alice") as c:
        found = wait_status(c, sid, ("Failed",), timeout=30)
        events = text(c, sid, "events")
    assert found["name"] == "survivor"
    expected = "the server stopped" if how == signal.SIGTERM else "running this session stopped"
    assert expected in events
    assert not os.path.exists(scratch)


def test_any_server_process_answers_for_any_session(servers, server):
    other = servers.second(server)
    with server.client("alice") as here, other.client("alice") as there:
        sid = launch(here, "shared", cmd="bash", args="-c echo${IFS}started;sleep${IFS}300")
        assert wait_status(there, sid, ("Running",))["id"] == sid
        wait_until(lambda: "started" in text(there, sid, "logs"), 10, "the session's output")
        assert text(there, sid, "logs") == "started\n"
        assert sid in [s["id"] for s in there.get(f"{API}/session").json()]
        r = there.delete(f"{API}/session/{sid}")  # the first process stops the sandbox
        assert r.status_code == 200, r.text
        assert here.get(f"{API}/session/{sid}").status_code == 404
    assert sandbox_pids(sid) == []
    assert not os.path.exists(session_dir(server, sid))


def test_without_cgroups_memory_is_limited_by_rlimits(servers):
    srv = servers.start(VOSPACE_SESSION_CGROUP_ROOT="")
    with srv.client("alice") as c:
        greedy = launch(c, "greedy", cmd="python3", args="-c b=bytearray(2*1024**3)",
                        cores="1", ram="1")
        fine = launch(c, "fine", cmd="python3", args="-c b=bytearray(100*1024**2)",
                      cores="1", ram="1")
        assert wait_status(c, greedy, ("Succeeded", "Failed"))["status"] == "Failed"
        assert "MemoryError" in text(c, greedy, "logs")
        assert "(rlimits)" in text(c, greedy, "events")
        assert wait_status(c, fine, ("Succeeded", "Failed"))["status"] == "Succeeded"
        sleeper = launch(c, "sleeper", cmd="sleep", args="300")
        wait_status(c, sleeper, ("Running",))
        assert c.delete(f"{API}/session/{sleeper}").status_code == 200
        assert not os.path.exists(session_dir(srv, sleeper))


def test_finished_sessions_are_forgotten_after_their_ttl(servers):
    srv = servers.start(VOSPACE_SESSION_FINISHED_TTL="1")
    with srv.client("alice") as c:
        sid = launch(c, "brief", cmd="echo", args="bye")
        assert wait_status(c, sid, ("Succeeded",))["status"] == "Succeeded"
        assert text(c, sid, "logs") == "bye\n"
        # the supervisor sweeps every 10 s
        wait_until(lambda: c.get(f"{API}/session/{sid}").status_code != 200, 30,
                   "the finished session to leave the listing", interval=0.5)
        assert c.get(f"{API}/session/{sid}").status_code == 404
    assert not os.path.exists(session_dir(srv, sid))


def test_endless_output_is_cut_back_at_the_limit(servers):
    srv = servers.start(VOSPACE_SESSION_LOG_MAX_MB="1")
    with srv.client("alice") as c:
        sid = launch(c, "chatty", cmd="bash",
                     args="-c head${IFS}-c${IFS}3000000${IFS}/dev/zero;sleep${IFS}300")
        wait_status(c, sid, ("Running",))
        log = os.path.join(session_dir(srv, sid), "output.log")
        # sampled every 5 s
        wait_until(lambda: os.path.getsize(log) == len("[output cut: more than 1 MiB]\n"), 30,
                   "the output cut back", interval=0.2)
        assert text(c, sid, "logs") == "[output cut: more than 1 MiB]\n"
        assert c.delete(f"{API}/session/{sid}").status_code == 200


def test_sessions_on_postgresql_with_two_server_processes(servers, tmp_path, postgres):
    images = tmp_path / "images.toml"
    images.write_text(catalogue(["images.canfar.net"],
                                catalogue_image(SOCKET_APP, ["notebook"], SOCKET_APP_COMMAND)))
    srv = servers.start(postgres.create_database(), VOSPACE_SESSION_IMAGES=str(images),
                        VOSPACE_SESSION_MAX_INTERACTIVE="1")
    other = servers.second(srv)
    with srv.client("alice") as here, other.client("alice") as there:
        headless = launch(here, "pg-job", cmd="echo", args="on postgres")
        app = launch(there, "pg-app", image=SOCKET_APP)
        assert wait_status(here, app, ("Running",))["type"] == "notebook"
        r = here.post(f"{API}/session", data={"name": "second", "image": SOCKET_APP})
        assert (r.status_code, r.text) == (
            400, "User alice has reached the maximum of 1 active sessions.\n")
        assert wait_status(there, headless, ("Succeeded",))["status"] == "Succeeded"
        assert text(there, headless, "logs") == "on postgres\n"
        assert here.delete(f"{API}/session/{app}").status_code == 200
        assert there.get(f"{API}/session/{app}").status_code == 404
    assert sandbox_pids(app) == []
