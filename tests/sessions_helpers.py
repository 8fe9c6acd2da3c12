"""Helpers for the session tests: launching through the real /skaha API and waiting, and the
safety net that ends every sandbox a test server leaves behind (by cgroup members' PIDs)."""
from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

import httpx

from .harness import Server, make_server
from .waiting import wait_until

API = "/skaha/v1"
PYTHON = "images.canfar.net/skaha/python:3.11"
# where a session's processes are listed: cgroup v1 (these machines), else v2
CGROUP_PROCS = ("/sys/fs/cgroup/pids/vospace-sessions/{}/cgroup.procs",
                "/sys/fs/cgroup/vospace-sessions/{}/cgroup.procs")
FINAL = ("Succeeded", "Failed")


def launch(client: httpx.Client, name: str, cmd: str | None = None, args: str | None = None,
           image: str = PYTHON, **params) -> str:
    data = {"name": name, "image": image, **params}
    if cmd is not None:
        data["cmd"] = cmd
    if args is not None:
        data["args"] = args
    r = client.post(f"{API}/session", data=data)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.text.endswith("\n")
    return r.text.strip()


def session(client: httpx.Client, session_id: str) -> dict:
    r = client.get(f"{API}/session/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_status(client: httpx.Client, session_id: str, statuses: tuple[str, ...],
                timeout: float = 60.0) -> dict:
    def reached() -> dict | None:
        found = session(client, session_id)
        return found if found["status"] in statuses else None
    return wait_until(reached, timeout, f"session {session_id} to be one of {statuses}",
                      retry=())


def seconds(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


def after_start(found: dict, whole_seconds: int) -> None:
    """Return once ``whole_seconds`` have passed since the session's startTime. A session's
    times are whole seconds of the server's clock, which really ends the sandbox: a renewal
    shows a later expiry only once the clock has reached a later second than the start."""
    time.sleep(max(0.0, seconds(found["startTime"]) + whole_seconds - time.time()))


def text(client: httpx.Client, session_id: str, view: str) -> str:
    r = client.get(f"{API}/session/{session_id}", params={"view": view})
    assert r.status_code == 200, r.text
    return r.text


def session_dir(server: Server, session_id: str) -> str:
    return os.path.join(server.data_dir, "sessions", session_id)


def sandbox_pids(session_id: str) -> list[int]:
    for pattern in CGROUP_PROCS:
        try:
            with open(pattern.format(session_id)) as fh:
                return [int(line) for line in fh if line.strip()]
        except FileNotFoundError:
            continue
    return []


def end_leftovers(server: Server) -> list[str]:
    """Kill what is left of any session of this server's data dir (its cgroups' members);
    returns the ids that had processes left, so a test can also assert there were none."""
    left = []
    base = os.path.join(server.data_dir, "sessions")
    for session_id in (os.listdir(base) if os.path.isdir(base) else []):
        pids = sandbox_pids(session_id)
        if pids:
            left.append(session_id)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return left


SOCKET_APP = "images.canfar.net/test/socket-app:1.0"
SOCKET_APP_COMMAND = ["python3", "-c", "import socket, sys, time; s = socket.socket(socket.AF_UNIX); "
                      "time.sleep(1); s.bind(sys.argv[1]); s.listen(); time.sleep(600)", "{socket}"]


def catalogue_image(image_id: str, types: list[str], command: list[str],
                    requires: str = "python3") -> str:
    """One ``[[image]]`` of a test image catalogue (TOML; JSON string arrays are TOML too)."""
    return (f'\n[[image]]\nid = "{image_id}"\ntypes = {json.dumps(types)}\n'
            f'requires = ["{requires}"]\ncommand = {json.dumps(command)}\n')


def catalogue(repositories: list[str], *images: str) -> str:
    """A test image catalogue: the python image (default command prints a line) first, and
    ``images`` (``catalogue_image`` entries); the socket app serves any interactive type."""
    python = catalogue_image(PYTHON, ["headless"], ["python3", "-c", "print('default command')"])
    return f"repositories = {json.dumps(repositories)}\n" + python + "".join(images)


SESSION_DOMAIN = "sessions.localhost"  # the server's default session_domain


def session_host(server: Server, session_id: str) -> str:
    """The Host (with port) of a session's own origin on this test server."""
    return f"{session_id}.{SESSION_DOMAIN}:{server.port}"


def host_client(server: Server, session_id: str, user: str | None = None) -> httpx.Client:
    """A client of a session's host: httpx resolves no ``*.localhost`` name (browsers do),
    so it connects to the server's loopback address and names the session host in Host."""
    headers = {"Host": session_host(server, session_id)}
    if user:
        headers["Authorization"] = f"Bearer {server.tokens[user]}"
    return httpx.Client(base_url=server.url, headers=headers, verify=False, timeout=60)


def ticket_url(platform: httpx.Client, session_id: str, path: str) -> str:
    """The session host's ticket address the platform hands its (authenticated) client."""
    r = platform.get(f"/session-ticket/{session_id}", params={"next": path})
    assert r.status_code == 303, r.text
    return r.headers["location"]


@contextmanager
def enter(server: Server, session_id: str, platform: httpx.Client,
          path: str) -> Iterator[httpx.Client]:
    """A session host client holding the pass a ticket from ``platform`` bought, as a
    browser gets it: platform -> ticket -> session host -> pass cookie -> ``path``."""
    location = httpx.URL(ticket_url(platform, session_id, path))
    assert location.netloc.decode() == session_host(server, session_id)
    with host_client(server, session_id) as client:
        swapped = client.get(location.raw_path.decode())
        assert swapped.status_code == 303 and swapped.headers["location"] == path, swapped.text
        yield client


@contextmanager
def app_server(root: str, users: tuple[str, ...], password: str,
               *images: str) -> Iterator[Server]:
    """A test server whose catalogue holds ``images`` (``catalogue_image`` entries) and whose
    ``users`` can also log in on the web pages with ``password``; every sandbox it leaves
    behind is ended, and there must have been none."""
    path = os.path.join(root, "images.toml")
    with open(path, "w") as fh:
        fh.write(catalogue(["images.canfar.net"], *images))
    server = make_server(root, users=users, extra_env={"VOSPACE_SESSION_IMAGES": path})
    try:
        for user in users:
            assert server.vospace("user", "passwd", user, "--password-stdin",
                                  stdin=password + "\n").returncode == 0
        yield server
    finally:
        server.stop()
        assert end_leftovers(server) == []
