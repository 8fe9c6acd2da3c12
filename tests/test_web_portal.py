"""The sessions page (/science-portal) in headless Chromium against a real server whose skaha
API runs sessions in real bubblewrap sandboxes: launch a headless session with flexible
resources and see it succeed; launch one with fixed resources, renew it (expiry moves, as
the API reports) and delete it; an interactive session's connect link is the API's
connectURL; a bad launch shows skaha's message; anonymous visitors are asked to log in.
"""
from __future__ import annotations

import subprocess

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from .browser import chromium, screenshot, wait_until
from .harness import VOSPACE, make_server
from .sessions_helpers import after_start, end_leftovers, session, wait_status
from .test_sessions import APP_CATALOGUE

PASSWORD = "portal-pw-789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal")
    (root / "images.toml").write_text(APP_CATALOGUE)  # the session tests' catalogue
    srv = make_server(str(root), users=("alice",),
                      extra_env={"VOSPACE_SESSION_IMAGES": str(root / "images.toml")})
    try:
        subprocess.run([VOSPACE, "--data-dir", srv.data_dir, "user", "passwd", "alice",
                        "--password-stdin"], input=PASSWORD + "\n", text=True, env=srv.env,
                       check=True, capture_output=True, timeout=60)
        yield srv
    finally:
        srv.stop()
        assert end_leftovers(srv) == []


def session_rows(driver: WebDriver) -> dict[str, dict]:
    found = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#sessions tbody tr[data-id]"):
        found[tr.get_attribute("data-name")] = {
            "id": tr.get_attribute("data-id"), "status": tr.get_attribute("data-status"), "row": tr}
    return found


def launch(driver: WebDriver, kind: str, image: str, name: str, fixed: tuple[str, str] | None = None,
           cmd: str = "", args: str = "") -> None:
    Select(driver.find_element(By.ID, "launch-type")).select_by_value(kind)
    Select(driver.find_element(By.ID, "launch-image")).select_by_value(image)
    box = driver.find_element(By.ID, "launch-name")
    box.clear()
    box.send_keys(name)
    if fixed:
        driver.find_element(By.ID, "launch-fixed").click()
        Select(driver.find_element(By.ID, "launch-cores")).select_by_value(fixed[0])
        Select(driver.find_element(By.ID, "launch-ram")).select_by_value(fixed[1])
    else:
        driver.find_element(By.ID, "launch-flexible").click()
    if kind == "headless":
        for field, value in (("launch-cmd", cmd), ("launch-args", args)):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
    driver.find_element(By.ID, "launch-submit").click()


def test_sessions_page_launch_renew_delete_connect(server):
    with chromium() as driver, server.client("alice") as api:
        driver.get(f"{server.url}/science-portal")
        assert driver.find_element(By.ID, "portal-login").is_displayed()
        driver.find_element(By.ID, "portal-login").click()
        driver.find_element(By.ID, "username-input").send_keys("alice")
        driver.find_element(By.ID, "password-input").send_keys(PASSWORD)
        driver.find_element(By.ID, "login-submit").click()
        wait_until(lambda: driver.find_elements(By.ID, "launch-image")
                   and driver.find_elements(By.CSS_SELECTOR, "#launch-cores option"),
                   what="the launch form")
        assert driver.current_url.endswith("/science-portal")

        # headless, flexible: runs to the end
        launch(driver, "headless", "images.canfar.net/skaha/python:3.11", "quick-job",
               cmd="python3", args="-c print(6*7)")
        job = wait_until(lambda: session_rows(driver).get("quick-job"), what="the new row")
        done = wait_status(api, job["id"], ("Succeeded", "Failed"))
        assert done["status"] == "Succeeded" and done["isFixedResources"] is False
        wait_until(lambda: session_rows(driver)["quick-job"]["status"] == "Succeeded",
                   what="the page to show Succeeded")

        # fixed resources, renewed, then deleted
        cores, ram = (str(v) for v in (api.get("/skaha/v1/context").json()["cores"]["options"][0],
                                       api.get("/skaha/v1/context").json()["memoryGB"]["options"][0]))
        launch(driver, "headless", "images.canfar.net/skaha/python:3.11", "long-job",
               fixed=(cores, ram), cmd="sleep", args="600")
        long_job = wait_until(lambda: session_rows(driver).get("long-job"), what="the long job")
        running = wait_status(api, long_job["id"], ("Running",))
        assert running["isFixedResources"] is True and running["requestedCPUCores"] == cores
        before = running["expiryTime"]
        wait_until(lambda: session_rows(driver)["long-job"]["status"] == "Running", what="Running")
        screenshot(driver, "portal")
        after_start(running, 1)
        session_rows(driver)["long-job"]["row"].find_element(By.CSS_SELECTOR, "button.renew").click()
        wait_until(lambda: session(api, long_job["id"])["expiryTime"] > before, what="renewed")

        # an interactive session's connect link is the API's connectURL
        launch(driver, "contributed", "images.canfar.net/test/socket-app:1.0", "my-app")
        app = wait_until(lambda: session_rows(driver).get("my-app"), what="the app row")
        url = wait_status(api, app["id"], ("Running",))["connectURL"]
        link = wait_until(lambda: session_rows(driver)["my-app"]["row"].find_elements(
            By.CSS_SELECTOR, "a.connect"), what="the connect link")[0]
        assert link.get_attribute("href") == url

        for name in ("long-job", "my-app"):
            session_rows(driver)[name]["row"].find_element(By.CSS_SELECTOR, "button.delete").click()
            driver.switch_to.alert.accept()
            wait_until(lambda: name not in session_rows(driver), what=f"{name} deleted")
        assert api.get(f"/skaha/v1/session/{long_job['id']}").status_code == 404

        # skaha's own message for a bad launch
        launch(driver, "headless", "images.canfar.net/skaha/python:3.11", "bad name!")
        error = wait_until(lambda: driver.find_element(By.ID, "error").text, what="the error")
        assert "name" in error.lower()
        screenshot(driver, "portal-error")
