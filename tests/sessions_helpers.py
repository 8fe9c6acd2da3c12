"""Helpers for the session tests: launching through the real /skaha API and waiting, and the
safety net that ends every sandbox a test server leaves behind (by cgroup members' PIDs)."""
from __future__ import annotations

import json
import os
import signal

import httpx

from .harness import Server
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
