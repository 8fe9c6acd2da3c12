"""The session proxy (/session/<type>/<id>/... on the session's own host <id>.sessions.localhost)
in front of a contributed app (session_app.py) run by the local runner: HTTP and websockets
streamed both ways, credentials never forwarded, the owner, admins and a shared group
admitted, everyone else refused (403, websockets too), a dying app a clear 502 with the proxy
still serving. Clients reach a session host as tests/sessions_helpers.host_client says."""
from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import create_engine, select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from vospace_server import migrations
from vospace_server.sessions.tickets import TICKET_SECONDS, Pass, Tickets, session_tickets

from .browser import chromium, portal_log_in, screenshot
from .clock import ManualClock
from .sessions_helpers import (API, app_server, catalogue_image, enter, host_client, launch,
                               sandbox_pids, session, session_host, text, ticket_url,
                               wait_status)
from .waiting import wait_until

APP = "images.canfar.net/test/contrib-app:1.0"
APP_SOURCE = (Path(__file__).with_name("session_app.py")).read_text()
APP_COMMAND = ["python3", "-c", APP_SOURCE, "{socket}"]
PORT_APP = "images.canfar.net/test/port-app:1.0"  # serves on $PORT, after 2 s
PORT_APP_COMMAND = ["python3", "-c", "import time; time.sleep(2)\n" + APP_SOURCE]
PASSWORD = "proxy-pw-1234"
PASS = "__Host-vospace_session_pass"  # the pass cookie over TLS (services/cookies.py)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_server(str(tmp_path_factory.mktemp("proxy")), ("alice", "bob", "carol"), PASSWORD,
                    catalogue_image(APP, ["contributed", "desktop"], APP_COMMAND),
                    catalogue_image(PORT_APP, ["contributed"], PORT_APP_COMMAND)) as srv:
        yield srv


@pytest.fixture(scope="module")
def app(server):
    """alice's running contributed session: (id, proxy prefix)."""
    with server.client("alice") as c:
        sid = launch(c, "proxied", image=APP, type="contributed")
        found = wait_status(c, sid, ("Running",))
    assert found["connectURL"] == f"https://{session_host(server, sid)}/session/contrib/{sid}/"
    yield sid, f"/session/contrib/{sid}"
    with server.client("alice") as c:
        c.delete(f"{API}/session/{sid}")


def ws_open(server, sid: str, path: str, user: str | None = None, headers=None):
    """A websocket to ``path`` on session ``sid``'s host (a socket to the server's address)."""
    headers = dict(headers or {})
    if user:
        headers["Authorization"] = f"Bearer {server.tokens[user]}"
    sock = socket.create_connection(("127.0.0.1", server.port))
    return ws_connect(f"wss://{session_host(server, sid)}{path}", sock=sock,
                      ssl=ssl._create_unverified_context(), additional_headers=headers,
                      open_timeout=30)


def test_http_reaches_the_app_without_the_platform_credentials(server, app):
    sid, prefix = app
    with host_client(server, sid, "alice") as c:
        for ours in ("__Host-vospace_session", "vospace_session", PASS, "vospace_csrf"):
            c.cookies.set(ours, "the-platform's")
        c.cookies.set("own", "kept")
        r = c.get(f"{prefix}/headers?x=1", headers={"X-CADC-DelegationToken": "secret"})
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["target"] == "/headers?x=1"  # a contributed app is served from "/"
    assert "authorization" not in seen["headers"]
    assert "x-cadc-delegationtoken" not in seen["headers"]
    assert seen["headers"]["cookie"] == "own=kept"
    assert seen["headers"]["x-forwarded-prefix"] == prefix
    assert seen["headers"]["host"] == session_host(server, sid)


def test_app_cookies_and_redirects_stay_under_the_prefix(server, app):
    sid, prefix = app
    with host_client(server, sid, "alice") as c:
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

    with host_client(server, sid, "alice") as c:
        r = c.post(f"{prefix}/echo", content=chunks(), headers={"content-length": str(size)})
        assert r.status_code == 200, r.text
        assert r.json() == {"length": size, "sha256": hashlib.sha256(upload).hexdigest()}
        with c.stream("GET", f"{prefix}/big", params={"n": str(size)}) as down:
            assert down.status_code == 200
            assert int(down.headers["content-length"]) == size
            assert sum(len(chunk) for chunk in down.iter_bytes()) == size


def test_websockets_relay_text_and_binary(server, app):
    sid, prefix = app
    with ws_open(server, sid, f"{prefix}/ws", "alice") as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        blob = bytes(range(256)) * 1024
        ws.send(blob)
        assert ws.recv(timeout=10) == blob


def test_outsiders_are_refused_everywhere_until_shared(server, app):
    sid, prefix = app
    _, group = server.add_project("bob")
    for user in ("bob", "carol"):
        with host_client(server, sid, user) as c:
            for path in ("/headers", "/ws", "/", "/anything/else"):
                assert c.get(f"{prefix}{path}").status_code == 403
            assert c.post(f"{prefix}/echo", content=b"x").status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            ws_open(server, sid, f"{prefix}/ws", user)
        assert refused.value.response.status_code == 403
    with host_client(server, sid) as anonymous:  # a browser: sent to the platform for a ticket
        sent = anonymous.get(f"{prefix}/headers")
        assert sent.status_code == 303
        assert sent.headers["location"] == (f"{server.url}/session-ticket/{sid}?next="
                                            f"%2Fsession%2Fcontrib%2F{sid}%2Fheaders")
        assert anonymous.post(f"{prefix}/echo", content=b"x").status_code == 401
    with server.client("bob") as bob:  # only the owner shares
        assert bob.post(f"{API}/session/{sid}",
                        data={"action": "share", "group": group}).status_code == 404
    with server.client("alice") as alice:
        r = alice.post(f"{API}/session/{sid}", data={"action": "share", "group": group})
        assert r.status_code == 200, r.text
        assert session(alice, sid)["sharedGroup"].endswith(f"?{group}")
    with host_client(server, sid, "bob") as bob:
        assert bob.get(f"{prefix}/headers").json()["user"] == session_uid(server, sid)
        with ws_open(server, sid, f"{prefix}/ws", "bob") as ws:
            ws.send("shared")
            assert ws.recv(timeout=10) == "shared"
    with server.client("bob") as bob:
        assert bob.get(f"{API}/session/{sid}").status_code == 404  # the app, not the session
    with host_client(server, sid, "carol") as carol:
        assert carol.get(f"{prefix}/headers").status_code == 403
    with host_client(server, sid, "admin") as admin:
        assert admin.get(f"{prefix}/headers").status_code == 200
    with server.client("alice") as alice:
        assert alice.post(f"{API}/session/{sid}", data={"action": "unshare"}).status_code == 200
        assert "sharedGroup" not in session(alice, sid)
    with host_client(server, sid, "bob") as bob:
        assert bob.get(f"{prefix}/headers").status_code == 403


def session_uid(server, sid: str) -> int:
    with server.client("alice") as c:
        return int(session(c, sid)["runAsUID"])


@contextmanager
def login_cookie_client(server, user: str) -> Iterator[httpx.Client]:
    """A platform client holding the web login cookie, as a logged-in browser does."""
    with httpx.Client(base_url=server.url, verify=False, timeout=60) as client:
        r = client.post("/ac/login", data={"username": user, "password": PASSWORD,
                                           "session": "true"})
        assert r.status_code == 200, r.text
        yield client


def test_a_browser_enters_with_a_ticket_once_and_its_pass_opens_this_session_only(server, app):
    sid, prefix = app
    with login_cookie_client(server, "alice") as platform:
        portal = platform.get("/science-portal")
        assert {c.name for c in platform.cookies.jar} == {"__Host-vospace_session",
                                                     "__Host-vospace_csrf"}
        for cookie in platform.cookies.jar:  # host-only: never sent to a session host, and
            assert not cookie.domain_specified  # out of reach of its scripts
            assert cookie.has_nonstandard_attr("HttpOnly") and cookie.secure, cookie.name
        assert portal.status_code == 200
        location = ticket_url(platform, sid, f"{prefix}/headers")
        issued = platform.get(f"/session-ticket/{sid}", params={"next": f"{prefix}/headers"})
    assert issued.headers["referrer-policy"] == "no-referrer"
    assert issued.headers["cache-control"] == "no-store"
    ticket = httpx.URL(location)
    assert ticket.netloc.decode() == session_host(server, sid) and ticket.path == "/ticket"
    with host_client(server, sid) as browser:
        swapped = browser.get(ticket.raw_path.decode())
        assert swapped.status_code == 303 and swapped.headers["location"] == f"{prefix}/headers"
        assert swapped.headers["referrer-policy"] == "no-referrer"
        cookie = swapped.headers["set-cookie"]
        assert cookie.startswith(f"{PASS}=")
        attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
        assert attributes == {"httponly", "max-age", "path", "samesite", "secure"}, cookie
        assert "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
        r = browser.get(f"{prefix}/headers")
        assert r.status_code == 200, r.text
        assert "cookie" not in r.json()["headers"]  # the pass stays with the proxy
        own = browser.post(f"{prefix}/echo", content=b"abc",
                           headers={"Origin": f"https://{session_host(server, sid)}"})
        assert own.status_code == 200 and own.json()["length"] == 3
        for foreign in ("https://evil.example", f"https://other0.sessions.localhost:{server.port}",
                        server.url):
            assert browser.post(f"{prefix}/echo", content=b"abc",
                                headers={"Origin": foreign}).status_code == 403
            assert browser.get(f"{prefix}/headers",
                               headers={"Origin": foreign}).status_code == 403
        with pytest.raises(InvalidStatus) as refused:
            ws_open(server, sid, f"{prefix}/ws",
                    headers={"Cookie": f"{PASS}={browser.cookies[PASS]}",
                             "Origin": "https://evil.example"})
        assert refused.value.response.status_code == 403
        with ws_open(server, sid, f"{prefix}/ws",
                     headers={"Cookie": f"{PASS}={browser.cookies[PASS]}",
                              "Origin": f"https://{session_host(server, sid)}"}) as ws:
            ws.send("with a pass")
            assert ws.recv(timeout=10) == "with a pass"
        pass_value = browser.cookies[PASS]
    with host_client(server, sid) as replay:
        again = replay.get(ticket.raw_path.decode())
        assert again.status_code == 403 and "used, expired" in again.text
        assert "set-cookie" not in again.headers
    with server.client("alice") as c:
        other = launch(c, "second", image=APP, type="contributed")
        try:
            wait_status(c, other, ("Running",))
            with host_client(server, other) as elsewhere:
                elsewhere.cookies.set(PASS, pass_value)
                r = elsewhere.get(f"/session/contrib/{other}/headers")
                assert r.status_code == 303 and "/session-ticket/" in r.headers["location"]
                # a ticket for one session is spent, not honoured, on another's host
                wrong = httpx.URL(ticket_url(c, sid, f"{prefix}/headers"))
                assert elsewhere.get(wrong.raw_path.decode()).status_code == 403
            with host_client(server, sid) as here:
                assert here.get(wrong.raw_path.decode()).status_code == 403  # spent
        finally:
            c.delete(f"{API}/session/{other}")


@contextmanager
def shared_with_bob(server, sid: str) -> Iterator[str]:
    """alice's session ``sid`` shared with a fresh project group of bob's (its name);
    unshared at the end."""
    _, group = server.add_project("bob")
    with server.client("alice") as alice:
        assert alice.post(f"{API}/session/{sid}",
                          data={"action": "share", "group": group}).status_code == 200
    try:
        yield group
    finally:
        with server.client("alice") as alice:
            alice.post(f"{API}/session/{sid}", data={"action": "unshare"})


def test_a_logout_ends_the_pass_and_unsharing_shuts_a_visitor_out_at_once(server, app):
    sid, prefix = app
    with shared_with_bob(server, sid) as group:
        with login_cookie_client(server, "bob") as platform:
            with enter(server, sid, platform, f"{prefix}/headers") as bob:
                assert bob.get(f"{prefix}/headers").status_code == 200
                with server.client("alice") as alice:
                    assert alice.post(f"{API}/session/{sid}",
                                      data={"action": "unshare"}).status_code == 200
                assert bob.get(f"{prefix}/headers").status_code == 403
                with server.client("alice") as alice:
                    alice.post(f"{API}/session/{sid}", data={"action": "share", "group": group})
                assert bob.get(f"{prefix}/headers").status_code == 200
                csrf = platform.get("/science-portal")
                token = csrf.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
                assert platform.post("/ac/logout", headers={"X-CSRF-Token": token}).status_code == 204
                r = bob.get(f"{prefix}/headers")
                assert r.status_code == 303 and "/session-ticket/" in r.headers["location"]


def test_a_link_from_another_site_into_someone_elses_session_asks_first(server, app):
    """A member of the group a session is shared with, sent by another site's link, gets
    a page that names the session's owner and a ticket only from its form; our own pages,
    a typed address, the owner and bearer-token callers go straight on."""
    sid, prefix = app
    ticket_path = f"/session-ticket/{sid}"
    wanted = {"next": f"{prefix}/headers"}
    with shared_with_bob(server, sid) as group:
        with login_cookie_client(server, "bob") as bob:
            for site in ("cross-site", "same-site"):
                asked = bob.get(ticket_path, params=wanted, headers={"Sec-Fetch-Site": site})
                assert asked.status_code == 200 and "location" not in asked.headers
                assert "Open alice's session?" in asked.text and group in asked.text
                assert asked.headers["cache-control"] == "no-store"
                assert "ticket=" not in asked.text
                peeked = bob.head(ticket_path, params=wanted, headers={"Sec-Fetch-Site": site})
                assert peeked.status_code == 200 and "location" not in peeked.headers
            form = {"csrf": asked.text.split('name="csrf" value="', 1)[1].split('"', 1)[0],
                    "next": f"{prefix}/headers"}
            refused = bob.post(ticket_path, data={**form, "csrf": "forged"})
            assert refused.status_code == 403 and "CSRF" in refused.text
            answered = bob.post(ticket_path, data=form)
            assert answered.status_code == 303, answered.text
            location = httpx.URL(answered.headers["location"])
            assert location.netloc.decode() == session_host(server, sid)
            with host_client(server, sid) as host:
                swapped = host.get(location.raw_path.decode())
                assert swapped.status_code == 303
                assert swapped.headers["location"] == f"{prefix}/headers"
                assert host.get(f"{prefix}/headers").status_code == 200
            for site in ("same-origin", "none", None):
                headers = {"Sec-Fetch-Site": site} if site else {}
                r = bob.get(ticket_path, params=wanted, headers=headers)
                assert r.status_code == 303 and "ticket=" in r.headers["location"], site
        with login_cookie_client(server, "alice") as owner:
            r = owner.get(ticket_path, headers={"Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 303 and "ticket=" in r.headers["location"]
        with server.client("bob") as bearer:
            r = bearer.get(ticket_path, headers={"Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 303 and "ticket=" in r.headers["location"]


def test_chromium_sent_by_another_site_asks_before_opening_a_shared_session(server, app):
    """In a real browser: a link on a page of another origin into alice's shared session
    shows bob the question (Chromium sends ``Sec-Fetch-Site: cross-site`` and the login
    cookie, SameSite=Lax, with the top-level navigation); its button opens the app."""
    sid, prefix = app
    link = f"{server.url}/session-ticket/{sid}?next={quote(prefix + '/headers')}"
    with shared_with_bob(server, sid), chromium() as driver:
        portal_log_in(driver, server.url, "bob", PASSWORD)
        driver.get("data:text/html," + quote(f'<a id="go" href="{link}">go</a>'))
        driver.find_element(By.ID, "go").click()
        owner = wait_until(lambda: driver.find_elements(By.ID, "join-owner"),
                           what="the question before someone else's session")[0]
        assert owner.text == "alice" and sid not in urlsplit(driver.current_url).netloc
        screenshot(driver, "session-join-asks")
        driver.find_element(By.ID, "join-submit").click()
        wait_until(lambda: urlsplit(driver.current_url).netloc == session_host(server, sid)
                   and urlsplit(driver.current_url).path == f"{prefix}/headers",
                   what="the app on the session host")
        assert '"method": "GET"' in driver.find_element(By.TAG_NAME, "body").text


def test_the_platform_sends_browsers_on_and_refuses_outsiders_a_ticket(server, app):
    sid, prefix = app
    with httpx.Client(base_url=server.url, verify=False) as anonymous:
        r = anonymous.get(f"/session-ticket/{sid}", params={"next": f"{prefix}/x"})
        assert r.status_code == 303 and r.headers["location"].startswith("/storage/login?next=")
        old = anonymous.get(f"{prefix}/headers?x=1")
        assert old.status_code == 307
        assert old.headers["location"] == f"https://{session_host(server, sid)}{prefix}/headers?x=1"
    with server.client("carol") as carol:
        r = carol.get(f"/session-ticket/{sid}")
        assert r.status_code == 403 and f"carol may not use session {sid}" in r.text
        assert carol.get("/session-ticket/nosuch00").status_code == 404
    with server.client("alice") as alice:
        r = alice.get(f"/session-ticket/{sid}", params={"next": "https://evil.example/"})
        assert r.status_code == 303 and "next=%2Fsession%2Fcontrib%2F" in r.headers["location"]


def test_tickets_expire_fast_work_once_and_passes_are_bound_to_their_session(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/meta.db")
    migrations.upgrade(engine)
    clock = ManualClock(start=time.time())
    tickets = Tickets(engine, b"a deployment secret", clock=clock)
    late = tickets.issue("abcd1234", "alice", "digest-of-the-login")
    clock.advance(TICKET_SECONDS + 1)
    assert tickets.redeem(late, "abcd1234") is None
    fresh = tickets.issue("abcd1234", "alice", "digest-of-the-login")
    assert tickets.redeem(fresh, "abcd1234") == Pass("abcd1234", "alice", "digest-of-the-login")
    assert tickets.redeem(fresh, "abcd1234") is None
    with engine.connect() as conn:  # a redeemed ticket, in time or late, leaves no row
        assert conn.execute(select(session_tickets)).all() == []
    value = tickets.sign(Pass("abcd1234", "alice", "digest", clock() + 60))
    assert tickets.verify(value, "abcd1234") == Pass("abcd1234", "alice", "digest",
                                                     float(int(clock() + 60)))
    assert tickets.verify(value, "other123") is None
    assert tickets.verify(value.replace("alice", "admin"), "abcd1234") is None
    assert Tickets(engine, b"another secret", clock=clock).verify(value, "abcd1234") is None
    clock.advance(61)
    assert tickets.verify(value, "abcd1234") is None
    engine.dispose()


def test_a_session_host_never_reaches_the_platform(server, app):
    sid, prefix = app
    hosts = [session_host(server, sid), session_host(server, sid).upper(),
             f"{sid}.sessions.localhost.:{server.port}", f"sessions.localhost:{server.port}",
             f"a.b.sessions.localhost:{server.port}"]
    for host in hosts:
        with httpx.Client(base_url=server.url, verify=False, headers={
                "Host": host, "Authorization": f"Bearer {server.tokens['admin']}"}) as c:
            for path in ("/storage/list", "/skaha/v1/session", "/science-portal", "/ac/whoami",
                         "/reg/resource-caps", "/arc/nodes/home", f"/session-ticket/{sid}"):
                assert c.get(path).status_code == 404, (host, path)
            assert c.post("/ac/login", data={"username": "a", "password": "b"}).status_code == 404
    with host_client(server, sid, "alice") as c:
        assert c.get(f"{prefix}/headers").status_code == 200


def test_the_bare_session_host_leads_to_the_sessions_app(server, app):
    sid, prefix = app
    with host_client(server, sid) as browser:
        bare = browser.get("/")
    assert bare.status_code == 303 and bare.headers["referrer-policy"] == "no-referrer"
    assert bare.headers["location"] == f"{server.url}/session-ticket/{sid}"
    with login_cookie_client(server, "alice") as platform:
        # no `next`: the platform sends the ticket on to the app's own path
        location = httpx.URL(platform.get(f"/session-ticket/{sid}").headers["location"])
    assert location.params["next"] == f"{prefix}/"
    with host_client(server, sid) as browser:
        swapped = browser.get(location.raw_path.decode())
        assert swapped.status_code == 303 and swapped.headers["location"] == f"{prefix}/"
    for host in (f"sessions.localhost:{server.port}", f"a.b.sessions.localhost:{server.port}"):
        with httpx.Client(base_url=server.url, verify=False, headers={"Host": host}) as c:
            r = c.get("/")
            assert r.status_code == 404 and "no session" in r.text, host


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
    with host_client(server, sid, "alice") as c:
        assert c.get(f"/session/desktop/{sid}/headers").status_code == 404
        assert c.get("/session/contrib/nosuch00/headers").status_code == 404
    with host_client(server, "nosuch00", "alice") as c:
        assert c.get("/session/contrib/nosuch00/headers").status_code == 404


def test_a_dying_app_is_a_502_and_the_proxy_lives_on(server):
    with server.client("alice") as c:
        sid = launch(c, "doomed", image=APP, type="contributed")
        wait_status(c, sid, ("Running",))
        with host_client(server, sid, "alice") as app_host:
            r = app_host.get(f"/session/contrib/{sid}/die")
            assert r.status_code == 502
            assert f"session {sid}: its app is not answering" in r.text
            gone = app_host.get(f"/session/contrib/{sid}/headers")
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
            assert running["connectURL"] == (f"https://{session_host(server, sid)}"
                                             f"/session/contrib/{sid}/")
            with host_client(server, sid, "alice") as app_host:
                r = app_host.get(f"/session/contrib/{sid}/headers")
            assert r.status_code == 200 and r.json()["target"] == "/headers"
            with ws_open(server, sid, f"/session/contrib/{sid}/ws", "alice") as ws:
                ws.send(b"through the bridge")
                assert ws.recv(timeout=10) == b"through the bridge"
            mine = os.readlink("/proc/self/ns/net")
            users = [pid for pid in sandbox_pids(sid)  # bubblewrap's own (root) stays outside
                     if os.stat(f"/proc/{pid}").st_uid == int(running["runAsUID"])]
            assert len(users) >= 2  # the bridge and the app
            assert all(os.readlink(f"/proc/{pid}/ns/net") != mine for pid in users)
        finally:
            c.delete(f"{API}/session/{sid}")
