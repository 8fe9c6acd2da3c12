"""Debian's headless Chromium driven by selenium (chromium-driver), for the web page tests
and bench/web.py: flags from MACHINE-NOTES, a fresh profile and download folder per browser,
the self-signed test certificate accepted, screenshots kept under ``tests/artifacts/web``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By

from .waiting import wait_until

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "web"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium; its profile and downloads are removed at the end, even on failure."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    downloads = tempfile.mkdtemp(prefix="chromium-downloads-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.accept_insecure_certs = True
    options.add_experimental_option("prefs", {
        "download.default_directory": downloads, "download.prompt_for_download": False,
        "safebrowsing.enabled": False})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                               {"behavior": "allow", "downloadPath": downloads})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)


def downloaded(driver: webdriver.Chrome, suffix: str, timeout: float = 60.0) -> Path:
    """The finished (non-empty) download ending in ``suffix``. Chromium writes into a
    ``.crdownload`` file and renames it at the end, and meanwhile keeps the final name
    reserved as an empty file: that one is not finished (a test read it empty once)."""
    folder = Path(driver.downloads)  # type: ignore[attr-defined]

    def finished() -> Path | None:
        files = list(folder.iterdir())
        if any(p.name.endswith(".crdownload") for p in files):
            return None
        return next((p for p in files if p.name.endswith(suffix) and p.stat().st_size), None)
    return wait_until(finished, timeout, f"a finished download ending in {suffix}")


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def portal_log_in(driver: webdriver.Chrome, url: str, user: str, password: str) -> None:
    """The science portal's web login at ``url`` (its cookie is what a browser then has)."""
    driver.get(f"{url}/science-portal")
    driver.find_element(By.ID, "portal-login").click()
    driver.find_element(By.ID, "username-input").send_keys(user)
    driver.find_element(By.ID, "password-input").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait_until(lambda: driver.find_elements(By.ID, "launch-image"), what="the logged-in portal")
