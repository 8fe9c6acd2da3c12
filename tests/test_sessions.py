"""Sessions through the real /skaha API, run by the local runner in real bubblewrap sandboxes.

Each test ends the sessions it starts (delete, exit, or the server's own shutdown); the
module fixture's teardown then asserts that no sandbox process of the server is left.
"""
from __future__ import annotations

import os
import socket
import time
import uuid

import pytest
from lxml import etree

from vospace_server.config import load_settings
from vospace_server.deployment import Deployment
from vospace_server.sessions.runners.local import connect_unix
from vospace_server.sessions.service import SessionService

from .conftest import VOS_NS
from .harness import make_server
from .sessions_helpers import (API, FINAL, PYTHON, SOCKET_APP, SOCKET_APP_COMMAND, catalogue,
                               catalogue_image, end_leftovers, launch, sandbox_pids, session,
                               session_dir, session_host, text, wait_status)
from .waiting import wait_until

CORE = "ivo://ivoa.net/vospace/core#"
SYMLINK_APP = "images.canfar.net/test/symlink-app:1.0"
ROOT_SOCKET = f"/tmp/vospace-root-{uuid.uuid4().hex[:12]}.sock"  # a socket only root listens on
APP_CATALOGUE = catalogue(
    ["images.canfar.net", "images.example.org"],
    catalogue_image("images.canfar.net/skaha/notebook-scipy:0.4", ["notebook"], ["jupyter-lab"],
                    requires="jupyter-lab-not-installed-here"),
    catalogue_image(SOCKET_APP, ["contributed", "carta"], SOCKET_APP_COMMAND),
    catalogue_image(SYMLINK_APP, ["firefly"], [
        "python3", "-c", "import os, sys, time; os.symlink(sys.argv[2], sys.argv[1]); "
        "time.sleep(600)", "{socket}", ROOT_SOCKET]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    images_file = root / "images.toml"
    images_file.write_text(APP_CATALOGUE)
    srv = make_server(str(root), users=("alice", "bob", "carol"),
                      extra_env={"VOSPACE_SESSION_IMAGES": str(images_file),
                                 "VOSPACE_SESSION_MAX_INTERACTIVE": "2"})
    yield srv
    srv.stop()
    assert end_leftovers(srv) == []


def node_properties(server, path: str, user: str) -> dict[str, str]:
    with server.client(user) as c:
        r = c.get(f"/arc/nodes/{path}")
    assert r.status_code == 200, r.text
    found = etree.fromstring(r.content).find(f"{{{VOS_NS}}}properties")
    return {p.get("uri"): p.text for p in found}


def put_script(server, user: str, name: str, body: str) -> str:
    with server.client(user) as c:
        assert c.put(f"/arc/files/home/{user}/{name}", content=body.encode()).status_code == 201
    return f"/arc/home/{user}/{name}"


def test_headless_session_writes_home_and_scratch_and_scratch_is_removed(server):
    script = put_script(server, "alice", "job.py", "\n".join([
        "import os, subprocess, numpy, astropy",
        "open('/arc/home/alice/result.txt', 'w').write('sum=%d' % numpy.arange(5).sum())",
        "open('/scratch/tmp.dat', 'w').write('x' * 1000)",
        "print('scratch', os.listdir('/scratch'), 'home', os.environ['HOME'])",
        "print('session', os.environ['skaha_sessionid'], os.environ['skaha_username'])",
        "print(subprocess.run(['id'], capture_output=True, text=True).stdout.strip())",
        "print(subprocess.run(['ls', '-l', '/scratch'], capture_output=True, text=True).stdout)",
    ]))
    with server.client("alice") as c:
        sid = launch(c, "job-1", cmd="python3", args=script)
        assert len(sid) == 8 and sid.isalnum()
        done = wait_status(c, sid, FINAL)
        logs = text(c, sid, "logs")
        assert done["status"] == "Succeeded", logs
        assert f"session {sid} alice" in logs
        assert "scratch ['tmp.dat'] home /arc/home/alice" in logs
        assert "uid=10001(alice) gid=10001(alice)" in logs or "(alice)" in logs.split("uid=")[1]
        assert " alice alice " in logs  # ls -l shows names from the session's passwd/group
        # the arc file, read back through the arc VOSpace API, is alice's
        assert c.get("/arc/files/home/alice/result.txt").content == b"sum=10"
        props = node_properties(server, "home/alice/result.txt", "alice")
        assert props[CORE + "creator"] == "alice"
        on_disk = os.stat(os.path.join(server.data_dir, "arc", "home", "alice", "result.txt"))
        assert on_disk.st_uid == int(done["runAsUID"]) and on_disk.st_gid == int(done["runAsGID"])
        events = text(c, sid, "events").splitlines()
        assert events[0].split("  ") == ["TYPE", "REASON", "MESSAGE", "FIRST-SEEN", "LAST-SEEN"]
        assert [line.split("  ")[1] for line in events[1:]] == ["Created", "Started", "Succeeded"]
        assert all(len(line.split("  ")) == 5 for line in events)
    assert not os.path.exists(os.path.join(session_dir(server, sid), "scratch"))
    assert sandbox_pids(sid) == []


def test_session_json_has_skahas_fields_and_types(server):
    with server.client("alice") as c:
        sid = launch(c, "fields", cmd="true")
        found = wait_status(c, sid, FINAL)
        listed = c.get(f"{API}/session").json()
    assert found["status"] == "Succeeded"
    for key in ("id", "userid", "runAsUID", "runAsGID", "appid", "image", "type", "status",
                "name", "startTime", "expiryTime", "connectURL", "requestedRAM",
                "requestedCPUCores", "requestedGPUCores", "ramInUse", "gpuRAMInUse",
                "cpuCoresInUse", "gpuUtilization"):
        assert isinstance(found[key], str), key  # the canfar client needs strings
    assert found["supplementalGroups"] == [] and found["isFixedResources"] is False
    assert found["requestedCPUCores"] == "1" and found["requestedRAM"] == "2G"
    assert found["startTime"].endswith("Z") and found["userid"] == "alice"
    assert found["type"] == "headless" and found["connectURL"] == ""
    assert sid in [s["id"] for s in listed]


def test_fixed_1g_session_allocating_2g_fails(server):
    with server.client("alice") as c:
        sid = launch(c, "greedy", cmd="python3", args="-c b=bytearray(2*1024**3)",
                     cores="1", ram="1")
        done = wait_status(c, sid, FINAL)
        assert done["status"] == "Failed"
        assert done["isFixedResources"] is True and done["requestedRAM"] == "1G"
        assert "OOMKilled" in text(c, sid, "events")
        small = launch(c, "modest", cmd="python3", args="-c b=bytearray(200*1024**2)",
                       cores="1", ram="1")
        assert wait_status(c, small, FINAL)["status"] == "Succeeded"


def test_two_users_are_isolated(server):
    put_script(server, "bob", "secret.txt", "bob's secret")
    with server.client("bob") as c:
        bob_sid = launch(c, "bobjob", cmd="bash",
                         args="-c echo${IFS}hidden>/scratch/bobs;chmod${IFS}600${IFS}"
                              "/arc/home/bob/secret.txt;sleep${IFS}300")
        wait_status(c, bob_sid, ("Running",))
    bob_scratch = os.path.join(session_dir(server, bob_sid), "scratch")
    probe = put_script(server, "alice", "probe.py", "\n".join([
        "import os",
        f"print('scratch', os.listdir('/scratch'))",
        f"print('host path', os.path.exists({bob_scratch!r}))",
        "for path in ['/arc/home/bob/secret.txt', '/arc/home/bob']:",
        "    try:",
        "        print(path, open(path).read() if path.endswith('.txt') else os.listdir(path))",
        "    except OSError as e:",
        "        print(path, 'refused', e.strerror)",
    ]))
    try:
        with server.client("alice") as c:
            sid = launch(c, "probe", cmd="python3", args=probe)
            assert wait_status(c, sid, FINAL)["status"] == "Succeeded"
            logs = text(c, sid, "logs")
            # alice sees neither bob's session, nor its logs, nor can she delete it
            assert c.get(f"{API}/session/{bob_sid}").status_code == 404
            assert c.get(f"{API}/session/{bob_sid}", params={"view": "logs"}).status_code == 404
            assert c.delete(f"{API}/session/{bob_sid}").status_code == 404
            assert bob_sid not in [s["id"] for s in c.get(f"{API}/session").json()]
        assert "scratch []" in logs and "host path False" in logs
        assert "bob's secret" not in logs
        assert "/arc/home/bob/secret.txt refused Permission denied" in logs
        with server.client("admin") as c:  # administrators see (and may end) any session
            assert c.get(f"{API}/session/{bob_sid}").json()["userid"] == "bob"
            assert c.get(f"{API}/session/{bob_sid}", params={"view": "logs"}).status_code == 200
    finally:
        with server.client("bob") as c:
            assert c.delete(f"{API}/session/{bob_sid}").status_code == 200


def test_usage_is_measured_and_cores_are_limited(server):
    script = put_script(server, "alice", "burn.py", "\n".join([
        "import multiprocessing, time",
        "def burn():",
        "    end = time.time() + 30",
        "    while time.time() < end: pass",
        "if __name__ == '__main__':",
        "    data = bytearray(300 * 2**20)",
        "    workers = [multiprocessing.Process(target=burn) for _ in range(3)]",
        "    [w.start() for w in workers]",
        "    [w.join() for w in workers]",
    ]))
    with server.client("alice") as c:
        sid = launch(c, "burner", cmd="python3", args=script, cores="1", ram="1")
        try:
            wait_status(c, sid, ("Running",))
            wait_until(lambda: float(session(c, sid)["cpuCoresInUse"]) > 0, 30,
                       "a first usage sample", interval=0.5)
            # The next sample (the server takes one every 5 s, USAGE_EVERY) covers a whole
            # busy period; the first may not. No sample says when it was taken, so wait.
            time.sleep(5.5)
            found = session(c, sid)
            assert 0.1 < float(found["cpuCoresInUse"]) <= 1.15  # three busy processes, 1 core
            assert float(found["ramInUse"].rstrip("G")) >= 0.25
        finally:
            assert c.delete(f"{API}/session/{sid}").status_code == 200


def test_delete_stops_a_running_session(server):
    with server.client("alice") as c:
        sid = launch(c, "sleeper", cmd="sleep", args="300")
        wait_status(c, sid, ("Running",))
        assert sandbox_pids(sid)
        assert os.path.isdir(os.path.join(session_dir(server, sid), "scratch"))
        r = c.delete(f"{API}/session/{sid}")
        assert r.status_code == 200, r.text
        assert c.get(f"{API}/session/{sid}").status_code == 404
    assert sandbox_pids(sid) == []
    assert not os.path.exists(session_dir(server, sid))


def test_command_arguments_and_env_never_reach_a_shell(server):
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    with server.client("alice") as c:
        r = c.post(f"{API}/session", data={
            "name": "quotes", "image": PYTHON, "cmd": "printf",
            "args": f"[%s]\\n a;b $(touch${{IFS}}{marker}) 'q\"` >x",
            "env": ["EVIL=$(touch " + marker + ")\nsecond line; rm -rf /", "PLAIN=a=b"]})
        assert r.status_code == 200, r.text
        sid = r.text.strip()
        assert wait_status(c, sid, FINAL)["status"] == "Succeeded"
        logs = text(c, sid, "logs")
        env_sid = launch(c, "env", cmd="printenv", args="EVIL PLAIN", env=[
            "EVIL=$(touch " + marker + ")\nsecond line; rm -rf /", "PLAIN=a=b"])
        assert wait_status(c, env_sid, FINAL)["status"] == "Succeeded"
        env_logs = text(c, env_sid, "logs")
    assert f"[a;b]\n[$(touch${{IFS}}{marker})]\n['q\"`]\n[>x]\n" == logs
    assert env_logs == f"$(touch {marker})\nsecond line; rm -rf /\na=b\n"
    assert not os.path.exists(marker)


def test_loader_variables_reach_only_the_users_own_processes(server):
    """bubblewrap and setpriv run as root: a user's LD_PRELOAD must never be loaded by them
    (root code execution); it reaches the user's command alone, as on any Linux login."""
    marker = f"/nonexistent-{uuid.uuid4().hex}.so"
    with server.client("alice") as c:
        sid = launch(c, "preload", cmd="true", env=[f"LD_PRELOAD={marker}",
                                                    "LD_LIBRARY_PATH=/arc/home/alice"])
        assert wait_status(c, sid, FINAL)["status"] == "Succeeded"
        logs = text(c, sid, "logs")
    assert logs.count(marker) == 1 and "cannot be preloaded" in logs  # only `true` saw it


@pytest.mark.parametrize("params, status, message", [
    ({"image": "docker.io/library/python:3"}, 400,
     "session image must come from one of [images.canfar.net,images.example.org]"),
    ({"image": "images.canfar.net/skaha/nothing:1"}, 400,
     "image not found or not labelled: images.canfar.net/skaha/nothing:1"),
    ({"type": "desktop"}, 400, f"image/type mismatch: {PYTHON}/desktop"),
    ({"type": "spaceship"}, 400, "Illegal session type: spaceship"),
    ({"cores": "3"}, 400, "Invalid value for 'cores': 3"),
    ({"cores": "two"}, 400, "Invalid value for 'cores': two"),
    ({"ram": "1000"}, 400, "Invalid value for 'ram': 1000"),
    ({"gpus": "4"}, 400, "Invalid value for 'gpus': 4"),
    ({"name": "a;b"}, 400, "name can only contain alpha-numeric chars and '-'"),
    ({"name": "x\ny"}, 400, "name can only contain alpha-numeric chars and '-'"),
    ({"name": None}, 400, "Missing parameter 'name'"),
    ({"image": None}, 400, "Missing parameter 'image'"),
    ({"env": "no-equals"}, 400, "Invalid value for 'env': 'no-equals' (expected KEY=VALUE)"),
    ({"env": "HOME=/etc"}, 400, "Invalid value for 'env': HOME is set by the session service"),
    ({"cmd": "a\0b"}, 400, "parameter 'cmd' contains a NUL character"),
    ({"cmd": "X=1"}, 400, "Invalid value for 'cmd': a program name cannot contain '='"),
    ({"image": "images.canfar.net/skaha/notebook-scipy:0.4", "type": "notebook", "cmd": None},
     400,
     "image images.canfar.net/skaha/notebook-scipy:0.4 cannot run on this server: "
     "jupyter-lab-not-installed-here not installed"),
    ({"image": "images.canfar.net/test/socket-app:1.0", "cmd": "id"}, 400,
     "cmd and args are only for headless sessions"),
])
def test_bad_launches_get_skahas_messages(server, params, status, message):
    data = {"name": "bad", "image": PYTHON, "cmd": "true"}
    data.update(params)
    data = {k: v for k, v in data.items() if v is not None}
    with server.client("alice") as c:
        before = c.get(f"{API}/session").json()
        r = c.post(f"{API}/session", data=data)
        assert (r.status_code, r.text) == (status, message + "\n")
        assert r.headers["content-type"].startswith("text/plain")
        assert c.get(f"{API}/session").json() == before


def test_missing_sessions_other_verbs_and_anonymous_callers(server):
    with server.client("alice") as c:
        for method, params in (("GET", {}), ("GET", {"view": "logs"}),
                               ("GET", {"view": "events"}), ("DELETE", {}),
                               ("POST", {"action": "renew"})):
            r = c.request(method, f"{API}/session/nosuch12", params=params)
            assert r.status_code == 404, (method, params, r.text)
            assert r.text == "session nosuch12 not found\n"
        sid = launch(c, "done", cmd="true")
        wait_status(c, sid, FINAL)
        r = c.post(f"{API}/session/{sid}", data={"name": "renamed"})
        assert (r.status_code, r.text) == (400, "Cannot modify an existing session\n")
        r = c.post(f"{API}/session/{sid}", params={"action": "renew"})
        assert r.status_code == 400 and "No active job" in r.text
        assert c.get(f"{API}/session", params={"view": "nonsense"}).status_code == 400
    with server.client() as anonymous:
        for path in ("/session", "/image", "/context", "/repository", f"/session/{sid}"):
            assert anonymous.get(API + path).status_code == 401, path
        assert anonymous.post(f"{API}/session", data={"name": "x", "image": PYTHON}
                              ).status_code == 401


def test_catalogue_context_repositories_v0_and_vosi(server):
    with server.client("alice") as c:
        images = c.get(f"{API}/image").json()
        assert {"id": PYTHON, "types": ["headless"]}.items() <= images[0].items()
        assert all(i["digest"].startswith("sha256:") for i in images)
        assert [i["id"] for i in c.get(f"{API}/image", params={"type": "carta"}).json()] == [
            "images.canfar.net/test/socket-app:1.0"]
        # catalogued, but its software is not installed here: not offered (a launch is a 400)
        assert "images.canfar.net/skaha/notebook-scipy:0.4" not in {i["id"] for i in images}
        context = c.get(f"{API}/context").json()
        assert context["cores"]["options"] == [1, 2, 4, 8]
        assert context["maxInteractiveSessions"] == 2
        assert c.get(f"{API}/repository").json() == ["images.canfar.net", "images.example.org"]
        assert c.get("/skaha/v0/context").json() == context
        sid = launch(c, "v0", cmd="true")
        assert c.get(f"/skaha/v0/session/{sid}").json()["id"] == sid
        wait_status(c, sid, FINAL)
        stats = c.get(f"{API}/session", params={"view": "stats"}).json()
        assert isinstance(stats["cores"]["requestedCPUCores"], int)
        assert isinstance(stats["cores"]["cpuCoresAvailable"], int)
        assert stats["ram"]["ramAvailable"].endswith("G")
        caps = c.get("/skaha/capabilities")
        assert caps.status_code == 200 and "#session-1" in caps.text
        assert f"{server.url}/skaha/v1/session" in caps.text
        assert "<vosi:available>true" in c.get("/skaha/availability").text
        assert "ivo://localhost/skaha = " in c.get("/reg/resource-caps").text


def test_list_filters_and_view_all(server):
    with server.client("bob") as c:
        sid = launch(c, "listed", cmd="sleep", args="300")
        wait_status(c, sid, ("Running",))
    try:
        with server.client("carol") as c:
            everyone = c.get(f"{API}/session", params={"view": "all"}).json()
            mine = c.get(f"{API}/session").json()
        assert mine == [] or all(s["userid"] == "carol" for s in mine)
        bobs = [s for s in everyone if s["userid"] == "bob" and s["status"] == "Running"]
        assert bobs and set(bobs[0]) == {"userid", "type", "status", "startTime"}
        with server.client("bob") as c:
            running = c.get(f"{API}/session", params={"status": "Running"}).json()
            assert [s["id"] for s in running] == [sid]
            assert c.get(f"{API}/session", params={"type": "notebook"}).json() == []
            assert all(s["status"] == "Succeeded" for s in c.get(
                f"{API}/session", params={"status": "Succeeded", "type": "headless"}).json())
    finally:
        with server.client("bob") as c:
            assert c.delete(f"{API}/session/{sid}").status_code == 200


def assert_app_endpoint_answers(server, session_id: str) -> None:
    """The seam the session proxy will use: the runner names the app's endpoint (from any
    process: here one made for the test on the same database and data dir)."""
    deployment = Deployment(load_settings({"data_dir": server.data_dir}, environ=server.env))
    try:
        service = SessionService(deployment)
        endpoint = service.runner.app_endpoint(service.store.get(session_id))
    finally:
        deployment.close()
    assert endpoint == "unix:" + os.path.join(session_dir(server, session_id), "app", "app.sock")
    uid = int(session_row_uid(server, session_id))
    connect_unix(endpoint.removeprefix("unix:"), 5, uid).close()
    with pytest.raises(PermissionError):  # any other listener is refused
        connect_unix(endpoint.removeprefix("unix:"), 5, uid + 1)


def session_row_uid(server, session_id: str) -> str:
    with server.client("admin") as c:
        return session(c, session_id)["runAsUID"]


def test_interactive_sessions_wait_for_the_app_and_count_against_the_limit(server):
    app = "images.canfar.net/test/socket-app:1.0"
    ids = []
    with server.client("carol") as c:
        try:
            first = launch(c, "app-1", image=app, type="contributed", env="REPLICA_ID=1")
            ids.append(first)
            assert session(c, first)["status"] == "Pending"  # the app binds after 1 s
            found = wait_status(c, first, ("Running",))
            assert found["connectURL"] == (f"https://{session_host(server, first)}"
                                           f"/session/contrib/{first}/")
            assert "the app answers" in text(c, first, "events")
            assert_app_endpoint_answers(server, first)
            ids.append(launch(c, "app-2", image=app, type="carta"))
            assert session(c, ids[1])["connectURL"] == ""  # Pending: no app to connect to
            assert wait_status(c, ids[1], ("Running",))["connectURL"] == \
                f"https://{session_host(server, ids[1])}/session/carta/{ids[1]}/"
            r = c.post(f"{API}/session", data={"name": "app-3", "image": app})
            assert (r.status_code, r.text) == (
                400, "User carol has reached the maximum of 2 active sessions.\n")
            headless = launch(c, "still-fine", cmd="true")  # headless ones do not count
            wait_status(c, headless, FINAL)
            interactive = c.get(f"{API}/session", params={"view": "interactive"}).json()
            assert sorted(s["id"] for s in interactive) == sorted(ids)
            assert c.delete(f"{API}/session/{ids.pop(0)}").status_code == 200
            ids.append(launch(c, "app-3", image=app))
        finally:
            for sid in ids:
                assert c.delete(f"{API}/session/{sid}").status_code == 200


def test_an_app_socket_symlinked_to_a_root_socket_never_counts_as_the_app(server):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(ROOT_SOCKET)
    listener.listen(8)
    try:
        with server.client("bob") as c:
            sid = launch(c, "sneaky", image=SYMLINK_APP)
            deadline = time.monotonic() + 4  # the probe runs every 0.2 s
            while time.monotonic() < deadline:
                assert session(c, sid)["status"] == "Pending"
                time.sleep(0.2)
            assert os.path.islink(os.path.join(session_dir(server, sid), "app", "app.sock"))
            assert "the app answers" not in text(c, sid, "events")
            assert c.delete(f"{API}/session/{sid}").status_code == 200
    finally:
        listener.close()
        os.unlink(ROOT_SOCKET)


def test_first_launch_creates_the_home_with_the_default_quota(server):
    with server.client("admin") as c:
        assert c.delete("/arc/nodes/home/carol").status_code in (200, 204)
        assert c.get("/arc/nodes/home/carol").status_code == 404
    with server.client("carol") as c:
        sid = launch(c, "first", cmd="touch", args="/arc/home/carol/hello")
        assert wait_status(c, sid, FINAL)["status"] == "Succeeded"
    props = node_properties(server, "home/carol", "carol")
    assert props[CORE + "quota"] == str(10 * 10**9)
    assert node_properties(server, "home/carol/hello", "carol")[CORE + "creator"] == "carol"


def test_launch_parameters_in_the_query_as_canfar_sends_them(server):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with server.client("alice") as c:
        r = c.post(f"{API}/session", headers=form, params=[
            ("name", "query"), ("image", PYTHON), ("cores", "1"), ("type", "headless"),
            ("cmd", "printenv"), ("args", "REPLICA_ID REPLICA_COUNT"),
            ("env", "REPLICA_ID=1"), ("env", "REPLICA_COUNT=1")])
        assert r.status_code == 200, r.text
        sid = r.text.strip()
        assert wait_status(c, sid, FINAL)["status"] == "Succeeded"
        assert text(c, sid, "logs") == "1\n1\n"
        assert session(c, sid)["isFixedResources"] is True
        r = c.post(f"{API}/session", files={"name": (None, "x")}, data={"image": PYTHON})
        assert r.status_code == 400 and "x-www-form-urlencoded" in r.text
        r = c.post(f"{API}/session", headers=form, content=b"name=%ff%fe&image=x")
        assert (r.status_code, r.text) == (400, "the form is not valid UTF-8 URL-encoded text\n")


def test_project_groups_reach_the_sandbox_as_supplementary_gids(server):
    name, group = server.add_project("alice")
    write = f"-ec echo${{IFS}}from-session>/arc/projects/{name}/made.txt;id"
    with server.client("alice") as c:
        sid = launch(c, "member", cmd="bash", args=write)
        member = wait_status(c, sid, FINAL)
        assert member["status"] == "Succeeded", text(c, sid, "logs")
        assert len(member["supplementalGroups"]) == 1
        assert f"{member['supplementalGroups'][0]}({group})" in text(c, sid, "logs")
        assert c.get(f"/arc/files/projects/{name}/made.txt").content == b"from-session\n"
    assert node_properties(server, f"projects/{name}/made.txt", "alice")[CORE + "creator"] == "alice"
    with server.client("bob") as c:  # not a member: the kernel refuses the write
        sid = launch(c, "outsider", cmd="bash", args=write)
        assert wait_status(c, sid, FINAL)["status"] == "Failed"
        assert "Permission denied" in text(c, sid, "logs")
        assert session(c, sid)["supplementalGroups"] == []
