"""Interactive sessions of the default catalogue in headless Chromium, through the session
proxy on each session's own host (<id>.sessions.localhost, which Chromium resolves to
loopback; entered with a ticket from the platform): a JupyterLab notebook whose cell writes
a file that the arc VOSpace API then serves (its kernel's websocket working); a noVNC
desktop whose websocket opens and whose canvas draws; a second user refused (no ticket, the
websocket too) until the owner shares the session with their group, and again at once when
it is unshared. Screenshots under tests/artifacts/web (notebook-*.png, desktop-*.png)."""
from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from vospace_server.sessions.catalogue import Catalogue

from .browser import chromium, portal_log_in, screenshot, wait_until
from .harness import VOSPACE, make_server
from .sessions_helpers import API, end_leftovers, launch, session_host, wait_status

NOTEBOOK = "images.canfar.net/skaha/notebook-scipy:0.4"
DESKTOP = "images.canfar.net/skaha/desktop:1.0"
PASSWORD = "sessions-pw-456"
CANVAS_DRAWN = """
const canvas = document.querySelector('#noVNC_container canvas, canvas');
if (!canvas || canvas.width < 100) return false;
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const first = data.slice(0, 4).join();
for (let i = 0; i < data.length; i += 4 * 97) {
  if (data.slice(i, i + 4).join() !== first) return true;
}
return false;"""
WEBSOCKET_OPENS = """
const done = arguments[arguments.length - 1];
const ws = new WebSocket(arguments[0]);
ws.onopen = () => { ws.close(); done('open'); };
ws.onerror = () => done('refused');"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = make_server(str(tmp_path_factory.mktemp("interactive")), users=("alice", "bob"))
    try:
        for user in ("alice", "bob"):
            subprocess.run([VOSPACE, "--data-dir", srv.data_dir, "user", "passwd", user,
                            "--password-stdin"], input=PASSWORD + "\n", text=True,
                           env=srv.env, check=True, capture_output=True, timeout=60)
        yield srv
    finally:
        srv.stop()
        assert end_leftovers(srv) == []


def require_installed(image: str) -> None:
    """Fail, naming what is missing, where `make test` has not run: it installs both, so a
    missing piece is a broken set-up, never a reason to pass over the test."""
    missing = Catalogue.load().images[image].missing_software()
    if missing:
        pytest.fail(f"not installed here: {', '.join(missing)} (make jupyter system-deps)")


def log_in(driver: WebDriver, server, user: str) -> None:
    """The web login on the platform (the session hosts then give its user tickets)."""
    portal_log_in(driver, server.url, user, PASSWORD)


def connect_novnc(driver: WebDriver, url: str) -> None:
    """Open the desktop's noVNC page, connect, and wait for its websocket and a drawing."""
    driver.get(url)
    wait_until(lambda: driver.find_element(By.ID, "noVNC_connect_button"),
               what="the noVNC page").click()
    wait_until(lambda: "noVNC_connected" in driver.find_element(
        By.TAG_NAME, "html").get_attribute("class"), timeout=60,
        what="the VNC websocket to connect")
    wait_until(lambda: driver.execute_script(CANVAS_DRAWN), timeout=60,
               what="the desktop drawn on the canvas")


def ws_url(server, sid: str, path: str) -> str:
    return f"wss://{session_host(server, sid)}{path}"


def on_session_host(driver: WebDriver, server, sid: str) -> bool:
    """The page is the session's own host's, reached with no ticket left in its address."""
    address = urlsplit(driver.current_url)
    return address.netloc == session_host(server, sid) and "ticket" not in address.query


def test_notebook_cell_writes_to_arc_home(server):
    require_installed(NOTEBOOK)
    with chromium() as driver, server.client("alice") as api:
        log_in(driver, server, "alice")
        sid = launch(api, "nb", image=NOTEBOOK, type="notebook")
        try:
            url = wait_status(api, sid, ("Running",), timeout=120)["connectURL"]
            assert url == (f"https://{session_host(server, sid)}/session/notebook/{sid}"
                           f"/lab/tree/arc/home/alice?token={sid}")
            driver.get(url)  # to the platform for a ticket, and back with the pass
            wait_until(lambda: driver.find_elements(
                By.CSS_SELECTOR, ".jp-LauncherCard[data-category='Notebook']"),
                timeout=90, what="the JupyterLab launcher")[0].click()
            editor = wait_until(lambda: [e for e in driver.find_elements(
                By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .jp-InputArea-editor") if e.is_displayed()],
                timeout=60, what="a notebook cell")[0]
            wait_until(lambda: "(ipykernel) | Idle" in driver.find_element(
                By.ID, "jp-main-statusbar").text, timeout=120, what="the kernel to be ready")
            screenshot(driver, "notebook-open")
            assert on_session_host(driver, server, sid)
            editor.click()
            ActionChains(driver).send_keys(
                "import os; open('/arc/home/alice/from-notebook.txt', 'w')"
                ".write('written by a cell in ' + os.getcwd())").perform()
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(
                Keys.SHIFT).perform()
            r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
                api.get("/arc/files/home/alice/from-notebook.txt")), timeout=60,
                what="the file through the arc API")
            assert r.text == "written by a cell in /arc/home/alice"
            screenshot(driver, "notebook-cell")
            node = api.get("/arc/nodes/home/alice/from-notebook.txt")
            assert node.status_code == 200 and "alice" in node.text
        finally:
            api.delete(f"{API}/session/{sid}")


def test_desktop_connects_and_a_second_user_waits_for_sharing(server):
    require_installed(DESKTOP)
    _, group = server.add_project("bob")
    with server.client("alice") as api:
        sid = launch(api, "desk", image=DESKTOP, type="desktop")
        try:
            url = wait_status(api, sid, ("Running",), timeout=120)["connectURL"]
            with chromium() as alice:
                log_in(alice, server, "alice")
                connect_novnc(alice, url)
                assert on_session_host(alice, server, sid)
                screenshot(alice, "desktop-connected")
            with chromium() as bob:
                log_in(bob, server, "bob")
                bob.set_script_timeout(30)
                bob.get(url)  # the platform refuses bob a ticket
                assert f"bob may not use session {sid}" in bob.find_element(By.TAG_NAME, "body").text
                assert urlsplit(bob.current_url).netloc == urlsplit(server.url).netloc
                screenshot(bob, "desktop-refused")
                socket = ws_url(server, sid, f"/session/desktop/{sid}/")
                bob.get(f"https://{session_host(server, sid)}/nothing-here")  # a page there
                assert bob.execute_async_script(WEBSOCKET_OPENS, socket) == "refused"
                r = api.post(f"{API}/session/{sid}", data={"action": "share", "group": group})
                assert r.status_code == 200, r.text
                connect_novnc(bob, url)
                assert on_session_host(bob, server, sid)
                assert bob.execute_async_script(WEBSOCKET_OPENS, socket) == "open"
                screenshot(bob, "desktop-shared")
                r = api.post(f"{API}/session/{sid}", data={"action": "unshare"})
                assert r.status_code == 200, r.text
                assert bob.execute_async_script(WEBSOCKET_OPENS, socket) == "refused"
                bob.refresh()
                assert f"bob may not use session {sid}" in bob.find_element(By.TAG_NAME, "body").text
                screenshot(bob, "desktop-unshared")
        finally:
            api.delete(f"{API}/session/{sid}")
