"""A session's app cannot act as its visitor on the platform (Chromium, selenium).

A contributed app (session_app.py) serves a page whose script does what a hostile app would
against the platform: fetch a storage page with the visitor's cookies, read the CSRF token
of a framed platform page (which refuses to be framed anyway), launch a session, read cookies. Opened by the logged-in owner
through the app's connectURL (its own host, entered with a ticket), every one of these fails
while the same script reads the app's own pages; no session is launched. Screenshot:
tests/artifacts/web/session-origin-probe.png.
"""
from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

from .browser import chromium, portal_log_in, screenshot, wait_until
from .sessions_helpers import (API, app_server, catalogue_image, launch, session_host,
                               wait_status)
from .test_sessions_proxy import APP, APP_COMMAND
PASSWORD = "origin-pw-1234"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_server(str(tmp_path_factory.mktemp("origin")), ("alice",), PASSWORD,
                    catalogue_image(APP, ["contributed"], APP_COMMAND)) as srv:
        yield srv


def test_an_apps_script_can_neither_read_nor_act_on_the_platform(server):
    with chromium() as driver, server.client("alice") as api:
        portal_log_in(driver, server.url, "alice", PASSWORD)
        sid = launch(api, "probe", image=APP, type="contributed")
        try:
            url = wait_status(api, sid, ("Running",))["connectURL"]
            driver.get(f"{url}page?platform={server.url}")
            result = wait_until(lambda: (lambda text: text if text != "running" else None)(
                driver.find_element(By.ID, "result").text), timeout=60, what="the probe")
            screenshot(driver, "session-origin-probe")
            seen = json.loads(result)
            # the page is the session host's, at its clean address (the ticket spent on the way)
            assert seen["address"] == (f"https://{session_host(server, sid)}/session/contrib/"
                                       f"{sid}/page?platform={server.url}")
            assert seen["referrer"] == ""  # the ticket's redirects pass on no Referer
            assert seen["own"] == "read 200"  # the script works on its own origin...
            # ... but reads nothing of the platform's, and sees none of its cookies or the pass
            assert seen["storage"] == "refused: TypeError"
            assert seen["launch"] == "refused: TypeError"
            assert seen["csrf"] == "no document"  # a framed platform page stays closed,
            portal = api.get("/science-portal")  # and the platform's pages refuse frames
            assert portal.headers["x-frame-options"] == "DENY"
            assert portal.headers["content-security-policy"] == "frame-ancestors 'none'"
            assert seen["cookies"] == ""
            names = [s["name"] for s in api.get(f"{API}/session").json()]
            assert names == ["probe"]  # the app's launch did not happen
        finally:
            api.delete(f"{API}/session/{sid}")
