"""The session proxy (/session/<type>/<id>/...) in front of a contributed app (session_app.py)
run by the local runner: HTTP and websockets streamed both ways, the platform's credentials
never forwarded, the owner, admins and a shared group admitted, everyone else refused (403,
websockets too), a dying app a clear 502 with the proxy still serving."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from .harness import make_server
from .sessions_helpers import (API, catalogue, catalogue_image, end_leftovers, launch,
                               sandbox_pids, session, text, wait_status)

APP = "images.canfar.net/test/contrib-app:1.0"
APP_SOURCE = (Path(__file__).with_name("session_app.py")).read_text()
APP_COMMAND = ["python3", "-c", APP_SOURCE, "{socket}"]
PORT_APP = "images.canfar.net/test/port-app:1.0"  # serves on $PORT, after 2 s
PORT_APP_COMMAND = ["python3", "-c", "import time; time.sleep(2)\n" + APP_SOURCE]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxy")
    images = root / "images.toml"
    images.write_text(catalogue(["images.canfar.net"],
                                catalogue_image(APP, ["contributed", "desktop"], APP_COMMAND),
                                catalogue_image(PORT_APP, ["contributed"], PORT_APP_COMMAND)))
    srv = make_server(str(root), users=("alice", "bob", "carol"),
                      extra_env={"VOSPACE_SESSION_IMAGES": str(images)})
    yield srv
    srv.stop()
    assert end_leftovers(srv) == []


@pytest.fixture(scope="module")
def app(server):
    """alice's running contributed session: (id, proxy prefix)."""
    with server.client("alice") as c:
        sid = launch(c, "proxied", image=APP, type="contributed")
        found = wait_status(c, sid, ("Running",))
    assert found["connectURL"] == f"{server.url}/session/contrib/{sid}/"
    yield sid, f"/session/contrib/{sid}"
    with server.client("alice") as c:
        c.delete(f"{API}/session/{sid}")


def ws_url(server, path: str) -> str:
    return server.url.replace("https://", "wss://").replace("http://", "ws://") + path


def ws_open(server, path: str, user: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {server.tokens[user]}"} if user else {}
    ssl = None
    if server.url.startswith("https"):
        import ssl as ssl_module
        ssl = ssl_module._create_unverified_context()
    return ws_connect(ws_url(server, path), additional_headers=headers, ssl=ssl,
                      open_timeout=30, **kwargs)


def test_http_reaches_the_app_without_the_platform_credentials(server, app):
    sid, prefix = app
    with server.client("alice") as c:
        c.cookies.set("vospace_session", "the-login-cookie")
        c.cookies.set("own", "kept")
        r = c.get(f"{prefix}/headers?x=1", headers={"X-CADC-DelegationToken": "secret"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["target"] == "/headers?x=1"  # a contributed app is served from "/"
    assert "authorization" not in seen["headers"]
    assert "x-cadc-delegationtoken" not in seen["headers"]
    assert seen["headers"]["cookie"] == "own=kept"
    assert seen["headers"]["x-forwarded-prefix"] == prefix
    assert seen["headers"]["host"] == httpx.URL(server.url).netloc.decode()


def test_app_cookies_and_redirects_stay_under_the_prefix(server, app):
    sid, prefix = app
    with server.client("alice") as c:
        r = c.get(f"{prefix}/cookies")
        redirect = c.get(f"{prefix}/redirect")
        bare = c.get(prefix)
    assert r.headers.get_list("set-cookie") == [f"app=1; HttpOnly; Path={prefix}/"]
    assert redirect.status_code == 302 and redirect.headers["location"] == f"{prefix}/headers"
    assert bare.status_code == 307 and bare.headers["location"].endswith(f"{prefix}/")


def test_bodies_stream_both_ways(server, app):
    sid, prefix = app
    size = 20 * 2**20
    upload = bytes(range(256)) * (size // 256)

    def chunks():
        for i in range(0, len(upload), 2**20):
            yield upload[i:i + 2**20]

    with server.client("alice") as c:
        r = c.post(f"{prefix}/echo", content=chunks(), headers={"content-length": str(size)})
        assert r.status_code == 200, r.text
        assert r.json() == {"length": size, "sha256": hashlib.sha256(upload).hexdigest()}
        with c.stream("GET", f"{prefix}/big", params={"n": str(size)}) as down:
            assert down.status_code == 200
            assert int(down.headers["content-length"]) == size
            assert sum(len(chunk) for chunk in down.iter_bytes()) == size


def test_websockets_relay_text_and_binary(server, app):
    sid, prefix = app
    with ws_open(server, f"{prefix}/ws", "alice") as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        blob = bytes(range(256)) * 1024
        ws.send(blob)
        assert ws.recv(timeout=10) == blob


def test_outsiders_are_refused_everywhere_until_shared(server, app):
    sid, prefix = app
    _, group = server.add_project("bob")
    for user in ("bob", "carol"):
        with server.client(user) as c:
            for path in ("/headers", "/ws", "/", "/anything/else"):
                assert c.get(f"{prefix}{path}").status_code == 403
            assert c.post(f"{prefix}/echo", content=b"x").status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            ws_open(server, f"{prefix}/ws", user)
        assert refused.value.response.status_code == 403
    with httpx.Client(verify=False) as anonymous:
        assert anonymous.get(f"{server.url}{prefix}/headers").status_code == 403
    with server.client("bob") as bob:  # only the owner shares
        assert bob.post(f"{API}/session/{sid}",
                        data={"action": "share", "group": group}).status_code == 404
    with server.client("alice") as alice:
        r = alice.post(f"{API}/session/{sid}", data={"action": "share", "group": group})
        assert r.status_code == 200, r.text
        assert session(alice, sid)["sharedGroup"].endswith(f"?{group}")
    with server.client("bob") as bob:
        assert bob.get(f"{prefix}/headers").json()["user"] == session_uid(server, sid)
        with ws_open(server, f"{prefix}/ws", "bob") as ws:
            ws.send("shared")
            assert ws.recv(timeout=10) == "shared"
        assert bob.get(f"{API}/session/{sid}").status_code == 404  # the app, not the session
    with server.client("carol") as carol:
        assert carol.get(f"{prefix}/headers").status_code == 403
    with server.client("admin") as admin:
        assert admin.get(f"{prefix}/headers").status_code == 200
    with server.client("alice") as alice:
        assert alice.post(f"{API}/session/{sid}", data={"action": "unshare"}).status_code == 200
        assert "sharedGroup" not in session(alice, sid)
    with server.client("bob") as bob:
        assert bob.get(f"{prefix}/headers").status_code == 403


def session_uid(server, sid: str) -> int:
    with server.client("alice") as c:
        return int(session(c, sid)["runAsUID"])


def test_the_login_cookie_works_and_foreign_pages_are_refused(server, app):
    sid, prefix = app
    with httpx.Client(base_url=server.url, verify=False) as browser:
        browser.cookies.set("vospace_session", server.tokens["alice"])
        r = browser.get(f"{prefix}/headers")
        assert r.status_code == 200 and "cookie" not in r.json()["headers"]
        host = httpx.URL(server.url).netloc.decode()
        own = browser.post(f"{prefix}/echo", content=b"abc",
                           headers={"Origin": f"{httpx.URL(server.url).scheme}://{host}"})
        assert own.status_code == 200 and own.json()["length"] == 3
        foreign = browser.post(f"{prefix}/echo", content=b"abc",
                               headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403


def test_bad_share_requests(server, app):
    sid, prefix = app
    with server.client("alice") as c:
        missing = c.post(f"{API}/session/{sid}", data={"action": "share"})
        bad = c.post(f"{API}/session/{sid}", data={"action": "share", "group": "a b;c"})
        headless = launch(c, "batch", cmd="sleep", args="30")
        not_app = c.post(f"{API}/session/{headless}", data={"action": "share", "group": "x"})
        c.delete(f"{API}/session/{headless}")
    assert missing.status_code == 400 and "group" in missing.text
    assert bad.status_code == 400 and "invalid group name" in bad.text
    assert not_app.status_code == 400 and "interactive" in not_app.text


def test_other_types_and_unknown_sessions_are_not_found(server, app):
    sid, prefix = app
    with server.client("alice") as c:
        assert c.get(f"/session/desktop/{sid}/headers").status_code == 404
        assert c.get("/session/contrib/nosuch00/headers").status_code == 404


def test_a_dying_app_is_a_502_and_the_proxy_lives_on(server):
    with server.client("alice") as c:
        sid = launch(c, "doomed", image=APP, type="contributed")
        wait_status(c, sid, ("Running",))
        r = c.get(f"/session/contrib/{sid}/die")
        assert r.status_code == 502
        assert f"session {sid}: its app is not answering" in r.text
        gone = c.get(f"/session/contrib/{sid}/headers")
        assert gone.status_code in (502, 503), gone.text
        assert c.get(f"{API}/session").status_code == 200
        c.delete(f"{API}/session/{sid}")


def test_an_app_on_port_is_running_once_it_answers_and_only_reachable_by_the_proxy(server):
    with server.client("alice") as c:
        sid = launch(c, "on-port", image=PORT_APP, type="contributed")
        try:
            pending = session(c, sid)
            assert pending["status"] == "Pending" and pending["connectURL"] == ""
            running = wait_status(c, sid, ("Running", "Failed"))
            assert running["status"] == "Running", text(c, sid, "logs")
            assert running["connectURL"] == f"{server.url}/session/contrib/{sid}/"
            r = c.get(f"/session/contrib/{sid}/headers")
            assert r.status_code == 200 and r.json()["target"] == "/headers"
            with ws_open(server, f"/session/contrib/{sid}/ws", "alice") as ws:
                ws.send(b"through the bridge")
                assert ws.recv(timeout=10) == b"through the bridge"
            mine = os.readlink("/proc/self/ns/net")
            users = [pid for pid in sandbox_pids(sid)  # bubblewrap's own (root) stays outside
                     if os.stat(f"/proc/{pid}").st_uid == int(running["runAsUID"])]
            assert len(users) >= 2  # the bridge and the app
            assert all(os.readlink(f"/proc/{pid}/ns/net") != mine for pid in users)
        finally:
            c.delete(f"{API}/session/{sid}")
