"""The storage browser in a real headless Chromium (selenium + Debian's chromium-driver)
against a real server: log in with the /ac/login accounts, browse, upload two files and a
folder (per-file progress, straight to /files), sizes shown, rename, permissions checked
through the VOSpace API, a ZIP of a selection compared with the originals, an older vault
version restored, an arc snapshot restored, paging, log out and a private folder refused;
names with spaces, unicode, quotes and markup shown as text; a forged form without the
CSRF token refused; another user's private folder refused. Screenshots of the main pages
go to tests/artifacts/web/.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import zipfile
from urllib.parse import quote

import httpx
import pytest
from lxml import etree
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from .browser import chromium, downloaded, screenshot, wait_until
from .harness import VOSPACE, Server, make_server

PASSWORDS = {"alice": "alice-pw-123", "bob": "bob-pw-456"}
CORE = "ivo://ivoa.net/vospace/core#"
VOS = "{http://www.ivoa.net/xml/VOSpace/v2.0}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = make_server(str(tmp_path_factory.mktemp("web")))
    try:
        for user, password in PASSWORDS.items():
            subprocess.run([VOSPACE, "--data-dir", server.data_dir, "user", "passwd", user,
                            "--password-stdin"], input=password + "\n", text=True, env=server.env,
                           check=True, capture_output=True, timeout=60)
        with server.client("alice") as c:
            assert c.put("/ac/groups/survey").status_code == 201
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def login(driver: WebDriver, server: Server, user: str, target: str = "/storage/list") -> None:
    driver.get(f"{server.url}/storage/login?next={quote(target)}")
    driver.find_element(By.ID, "username-input").send_keys(user)
    driver.find_element(By.ID, "password-input").send_keys(PASSWORDS[user])
    driver.find_element(By.ID, "login-submit").click()
    wait_until(lambda: driver.find_element(By.ID, "username").text == user, what="logged in")


def rows(driver: WebDriver) -> dict[str, WebElement]:
    return {r.get_attribute("data-name"): r
            for r in driver.find_elements(By.CSS_SELECTOR, "#listing tbody tr[data-name]")}


def wait_rows(driver: WebDriver, *names: str) -> dict[str, WebElement]:
    return wait_until(lambda: (found := rows(driver)) and all(n in found for n in names)
                      and found, what=f"rows {names}")


def click_action(driver: WebDriver, name: str, action: str) -> None:
    rows(driver)[name].find_element(By.CSS_SELECTOR, f'button[data-act="{action}"]').click()


def reload_after(driver: WebDriver, action) -> None:
    """Run ``action`` (which ends in a page reload) and wait for the new page."""
    old = driver.find_element(By.TAG_NAME, "html")
    action()
    wait_until(lambda: old.id != driver.find_element(By.TAG_NAME, "html").id
               and driver.execute_script("return document.readyState") == "complete",
               what="the page to reload")
    assert not driver.find_element(By.ID, "error").is_displayed(), \
        driver.find_element(By.ID, "error").text


def rename_in_page(driver: WebDriver, old: str, new: str) -> None:
    click_action(driver, old, "rename")
    box = driver.find_element(By.ID, "rename-name")
    box.clear()
    box.send_keys(new)
    reload_after(driver, lambda: driver.find_element(By.ID, "rename-ok").click())
    wait_rows(driver, new)


def node(server: Server, service: str, path: str, user: str = "alice") -> etree._Element:
    with server.client(user) as c:
        r = c.get(f"/{service}/nodes/{quote(path)}")
        assert r.status_code == 200, r.text
        return etree.fromstring(r.content)


def prop(doc: etree._Element, uri: str) -> str | None:
    for p in doc.iter(f"{VOS}property"):
        if p.get("uri") == uri:
            return p.text
    return None


def file_bytes(server: Server, service: str, path: str, user: str = "alice") -> bytes:
    with server.client(user) as c:
        r = c.get(f"/{service}/files/{quote(path)}", follow_redirects=True)
        assert r.status_code == 200, r.text
        return r.content


def test_browse_upload_rename_permissions_zip_version_logout(server, browser, tmp_path):
    driver = browser
    driver.get(f"{server.url}/storage/login")
    screenshot(driver, "login")
    login(driver, server, "alice", "/storage/list/alice")
    assert "/storage/list/alice" in driver.current_url

    # a new folder, then browse into it
    driver.find_element(By.ID, "new-folder").click()
    driver.find_element(By.ID, "mkdir-name").send_keys("run 1")
    reload_after(driver, lambda: driver.find_element(By.ID, "mkdir-ok").click())
    wait_rows(driver, "run 1")["run 1"].find_element(By.CSS_SELECTOR, "td.name a").click()
    wait_until(lambda: driver.current_url.endswith("/storage/vault/list/alice/run%201"), what="folder")
    crumbs = driver.find_element(By.ID, "breadcrumbs").text
    assert "alice" in crumbs and "run 1" in crumbs

    # two files and a folder, straight to the data endpoint
    originals = {"small.txt": b"x" * 1536, "image.fits": os.urandom(3 * 1024 * 1024)}
    for name, data in originals.items():
        (tmp_path / name).write_bytes(data)
    folder = tmp_path / "obs"
    (folder / "night2").mkdir(parents=True)
    originals_in_folder = {"obs/a.dat": os.urandom(70_000), "obs/night2/b.dat": b"b" * 10}
    for rel, data in originals_in_folder.items():
        (tmp_path / rel).write_bytes(data)
    reload_after(driver, lambda: driver.find_element(By.ID, "upload-files").send_keys(
        "\n".join(str(tmp_path / n) for n in originals)))
    reload_after(driver, lambda: driver.find_element(By.ID, "upload-folder").send_keys(str(folder)))
    found = wait_rows(driver, "small.txt", "image.fits", "obs")
    assert found["small.txt"].find_element(By.CSS_SELECTOR, "td.size").text == "1.5 KiB"
    assert found["image.fits"].find_element(By.CSS_SELECTOR, "td.size").text == "3.0 MiB"
    assert found["small.txt"].find_element(By.CSS_SELECTOR, "td.owner").text == "alice"
    for rel, data in {**originals, **originals_in_folder}.items():
        assert file_bytes(server, "vault", f"alice/run 1/{rel}") == data
    screenshot(driver, "listing")

    # rename
    rename_in_page(driver, "small.txt", "notes.txt")
    assert "small.txt" not in rows(driver)

    # permissions, checked through the VOSpace API
    click_action(driver, "notes.txt", "perms")
    driver.find_element(By.ID, "perms-public").click()
    driver.find_element(By.ID, "perms-read").send_keys("survey")
    screenshot(driver, "permissions")
    reload_after(driver, lambda: driver.find_element(By.ID, "perms-ok").click())
    doc = node(server, "vault", "alice/run 1/notes.txt")
    assert prop(doc, CORE + "ispublic") == "true"
    assert prop(doc, CORE + "groupread") == "ivo://localhost/gms?survey"
    row = wait_rows(driver, "notes.txt")["notes.txt"]
    assert row.find_element(By.CSS_SELECTOR, "td.readgroup").text == "survey"
    assert row.find_element(By.CSS_SELECTOR, "td.public").text == "yes"
    with httpx.Client(base_url=server.url, verify=False) as anon:  # public now: anyone reads
        assert anon.get(f"/vault/files/{quote('alice/run 1/notes.txt')}",
                        follow_redirects=True).status_code == 401  # ...but alice's home is private

    # a ZIP of a selection (a file and a folder), compared member by member
    for name in ("image.fits", "obs"):
        rows(driver)[name].find_element(By.CSS_SELECTOR, "input.select").click()
    Select(driver.find_element(By.ID, "download-format")).select_by_value("zip")
    driver.find_element(By.ID, "download-selected").click()
    archive = downloaded(driver, ".zip")
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        got = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    assert got == {"image.fits": originals["image.fits"], **originals_in_folder}

    # an older vault version restored from the versions dialog
    (tmp_path / "upload2").mkdir()
    (tmp_path / "upload2" / "image.fits").write_bytes(b"a newer, shorter content")
    reload_after(driver, lambda: driver.find_element(By.ID, "upload-files").send_keys(
        str(tmp_path / "upload2" / "image.fits")))
    assert file_bytes(server, "vault", "alice/run 1/image.fits") == b"a newer, shorter content"
    click_action(driver, "image.fits", "versions")
    restore = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#versions .restore-version"),
                         what="the versions list")
    assert [b.get_attribute("data-version") for b in restore] == ["1"]
    screenshot(driver, "versions")
    reload_after(driver, lambda: restore[0].click())
    assert file_bytes(server, "vault", "alice/run 1/image.fits") == originals["image.fits"]

    # log out: the private folder is refused to the anonymous visitor
    driver.find_element(By.ID, "logout").click()
    wait_until(lambda: driver.find_elements(By.ID, "login-link"), what="logged out")
    driver.get(f"{server.url}/storage/list/alice/run%201")
    assert "NotAuthenticated" in driver.find_element(By.ID, "error").text
    screenshot(driver, "refused-anonymous")


def test_names_with_spaces_unicode_quotes_and_markup_are_text(server, browser):
    names = ["with space", "ünïcødé ✓", "q\"uo'te", "<script>window.pwned=1<",
             "\"'><img src=x onerror=window.pwned=2>"]
    with server.client("alice") as c:
        c.put("/arc/nodes/home/alice/names", content=_container("arc", "home/alice/names"))
        for name in names:
            r = c.put(f"/arc/files/home/alice/names/{quote(name)}", content=name.encode())
            assert r.status_code == 201, r.text
    login(browser, server, "alice", "/storage/arc/list/home/alice/names")
    found = wait_rows(browser, *names)
    for name in names:
        assert found[name].find_element(By.CSS_SELECTOR, "td.name a").text == name
    assert browser.execute_script("return window.pwned") is None
    screenshot(browser, "names")
    # the page's own requests quote them too: rename one with quotes and markup
    rename_in_page(browser, "q\"uo'te", "q\"uo'te <b>&amp;")
    assert file_bytes(server, "arc", "home/alice/names/q\"uo'te <b>&amp;") == b"q\"uo'te"
    assert browser.execute_script("return window.pwned") is None


def _container(service: str, path: str) -> str:
    return ('<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'uri="vos://localhost~{service}/{quote(path)}" xsi:type="vos:ContainerNode"/>')


def test_forged_requests_without_csrf_token_are_refused(server, browser):
    login(browser, server, "alice", "/storage/list/alice")
    # a form the attacker's page would post: same cookies, no token
    browser.execute_script("""
        const f = document.createElement('form');
        f.method = 'post'; f.action = '/storage/logout';
        document.body.appendChild(f); f.submit();""")
    wait_until(lambda: "CSRF" in browser.find_element(By.ID, "error").text, what="refusal")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("403")
    screenshot(browser, "forged-form-refused")
    browser.get(f"{server.url}/storage/list/alice")  # still logged in
    assert browser.find_element(By.ID, "username").text == "alice"
    # the API itself: a cookie-only write is refused, the page's token makes it pass
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    token = browser.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
    with httpx.Client(base_url=server.url, verify=False, cookies=cookies) as c:
        r = c.put("/vault/files/alice/forged.txt", content=b"x")
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.put("/vault/files/alice/forged.txt", content=b"x", headers={"X-CSRF-Token": "0" * 64})
        assert r.status_code == 403
        r = c.put("/vault/files/alice/forged.txt", content=b"x", headers={"X-CSRF-Token": token})
        assert r.status_code == 201
        r = c.post("/storage/vault/download", data={"path": "alice", "format": "zip"})
        assert r.status_code == 403
    with httpx.Client(base_url=server.url, verify=False) as c:  # the token without its cookies
        r = c.put("/vault/files/alice/forged.txt", content=b"x", headers={"X-CSRF-Token": token})
        assert r.status_code == 401


def test_another_users_private_folder_gives_the_refusal_page(server, browser):
    login(browser, server, "alice", "/storage/list")
    browser.get(f"{server.url}/storage/list/bob")
    assert browser.find_element(By.TAG_NAME, "h1").text == "403 PermissionDenied"
    assert "PermissionDenied: alice may not read /bob" in browser.find_element(By.ID, "error").text
    screenshot(browser, "refused-other-user")
    browser.get(f"{server.url}/storage/arc/list/home/bob")
    assert "PermissionDenied" in browser.find_element(By.ID, "error").text


def test_arc_snapshot_browse_and_restore_with_quota_bar(server, browser):
    with server.client("alice") as c:
        assert c.put("/arc/files/home/alice/plan.txt", content=b"version one").status_code == 201
    stamp = subprocess.run([VOSPACE, "--data-dir", server.data_dir, "snapshot", "create",
                            "home/alice"], env=server.env, capture_output=True, text=True,
                           check=True, timeout=60).stdout
    stamp = re.search(r"\d{8}T\d{6}Z", stamp).group(0)
    subprocess.run([VOSPACE, "--data-dir", server.data_dir, "quota", "set", "arc:home/alice",
                    "1G"], env=server.env, check=True, capture_output=True, timeout=60)
    with server.client("alice") as c:
        assert c.put("/arc/files/home/alice/plan.txt", content=b"version two!").status_code == 201
    login(browser, server, "alice", "/storage/arc/list/home/alice")
    quota_text = browser.find_element(By.ID, "quota").text
    assert "used of 1.0 GiB" in quota_text and "left" in quota_text
    browser.find_element(By.ID, "snapshots-link").click()
    wait_rows(browser, stamp)[stamp].find_element(By.CSS_SELECTOR, "td.name a").click()
    wait_rows(browser, "plan.txt")
    screenshot(browser, "snapshot")
    reload_after(browser, lambda: click_action(browser, "plan.txt", "restore-snapshot"))
    assert file_bytes(server, "arc", "home/alice/plan.txt") == b"version one"


def test_paging_search_and_sort(server, browser):
    with server.client("alice") as c:
        c.put("/vault/nodes/alice/many", content=_container("vault", "alice/many"))
        for i in range(230):
            data = b"y" * (230 - i)
            assert c.put(f"/vault/files/alice/many/f{i:04d}", content=data).status_code == 201
    login(browser, server, "alice", "/storage/list/alice/many")
    first = list(rows(browser))
    assert first[0] == "f0000" and len(first) == 200
    browser.find_element(By.ID, "next-page").click()
    wait_until(lambda: list(rows(browser))[:1] == ["f0200"], what="second page")
    assert list(rows(browser)) == [f"f{i:04d}" for i in range(200, 230)]
    browser.get(f"{server.url}/storage/list/alice/many")
    browser.find_element(By.ID, "search").send_keys("f012\n")
    wait_until(lambda: list(rows(browser)) == [f"f012{i}" for i in range(10)], what="search")
    browser.get(f"{server.url}/storage/list/alice/many")
    browser.find_element(By.ID, "sort-size").click()  # ascending size: the last file first
    wait_until(lambda: list(rows(browser))[:2] == ["f0229", "f0228"], what="sorted by size")


def test_phone_sized_window_shows_the_listing(server):
    with chromium(width=390, height=844) as phone:
        login(phone, server, "alice", "/storage/list/alice")
        table = phone.find_element(By.ID, "listing")
        assert table.is_displayed()
        assert phone.find_element(By.ID, "new-folder").is_displayed()
        screenshot(phone, "phone")


def test_batch_url_list_and_shell_script(server, browser, tmp_path):
    with server.client("alice") as c:
        c.put("/vault/nodes/alice/share", content=_container("vault", "alice/share"))
        for name in ("one.txt", "two words.txt"):
            assert c.put(f"/vault/files/alice/share/{quote(name)}", content=name.encode()).status_code == 201
    login(browser, server, "alice", "/storage/list/alice")
    wait_rows(browser, "share")["share"].find_element(By.CSS_SELECTOR, "input.select").click()
    Select(browser.find_element(By.ID, "download-format")).select_by_value("script")
    browser.find_element(By.ID, "download-selected").click()
    script = downloaded(browser, ".sh")
    work = tmp_path / "run"
    work.mkdir()
    # curl needs -k for the test's self-signed certificate: run the script's lines with it
    text = script.read_text()
    assert text.startswith("#!/bin/sh") and text.count("curl ") == 2
    subprocess.run(["sh", "-c", text.replace("curl -fsS", "curl -k -fsS")], cwd=work,
                   check=True, timeout=60, capture_output=True)
    assert (work / "share" / "one.txt").read_bytes() == b"one.txt"
    assert (work / "share" / "two words.txt").read_bytes() == b"two words.txt"
    Select(browser.find_element(By.ID, "download-format")).select_by_value("urls")
    browser.find_element(By.ID, "download-selected").click()
    urls = downloaded(browser, ".txt").read_text().split()
    assert len(urls) == 2
    with httpx.Client(verify=False) as anon:  # pre-authorized: no credentials needed
        assert sorted(anon.get(u).content for u in urls) == [b"one.txt", b"two words.txt"]


def test_link_move_delete_lock_and_recursive_permissions_on_arc(server, browser):
    base = "home/alice/ops"
    with server.client("alice") as c:
        for folder in (base, f"{base}/dest", f"{base}/tree", f"{base}/tree/inner"):
            assert c.put(f"/arc/nodes/{folder}", content=_container("arc", folder)).status_code == 201
        for name in ("mover.txt", "doomed.txt", "tree/inner/leaf.txt"):
            assert c.put(f"/arc/files/{base}/{name}", content=b"data").status_code == 201
    login(browser, server, "alice", f"/storage/arc/list/{base}")

    browser.find_element(By.ID, "new-link").click()
    browser.find_element(By.ID, "link-name").send_keys("to-dest")
    browser.find_element(By.ID, "link-target").send_keys(f"vos://localhost~arc/{base}/dest")
    reload_after(browser, lambda: browser.find_element(By.ID, "link-ok").click())
    link = node(server, "arc", f"{base}/to-dest")
    assert link.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vos:LinkNode"
    assert link.find(f"{VOS}target").text == f"vos://localhost~arc/{base}/dest"

    rows(browser)["mover.txt"].find_element(By.CSS_SELECTOR, "input.select").click()
    browser.find_element(By.ID, "move-selected").click()
    dest = browser.find_element(By.ID, "move-dest")
    dest.clear()
    dest.send_keys(f"{base}/dest")
    reload_after(browser, lambda: browser.find_element(By.ID, "move-ok").click())
    assert "mover.txt" not in rows(browser)
    assert file_bytes(server, "arc", f"{base}/dest/mover.txt") == b"data"

    # lock: the service refuses the delete and the page shows its message
    reload_after(browser, lambda: click_action(browser, "doomed.txt", "lock"))
    assert prop(node(server, "arc", f"{base}/doomed.txt"), "ivo://cadc.nrc.ca/vospace/core#islocked") == "true"
    rows(browser)["doomed.txt"].find_element(By.CSS_SELECTOR, "input.select").click()
    browser.find_element(By.ID, "delete-selected").click()
    assert browser.find_element(By.ID, "delete-list").text == "doomed.txt"
    browser.find_element(By.ID, "delete-ok").click()
    error = wait_until(lambda: browser.find_element(By.ID, "error").text, what="the refusal")
    assert "locked" in error
    screenshot(browser, "locked-refusal")
    browser.refresh()
    reload_after(browser, lambda: click_action(browser, "doomed.txt", "lock"))  # unlock
    rows(browser)["doomed.txt"].find_element(By.CSS_SELECTOR, "input.select").click()
    browser.find_element(By.ID, "delete-selected").click()
    reload_after(browser, lambda: browser.find_element(By.ID, "delete-ok").click())
    assert "doomed.txt" not in rows(browser)
    with server.client("alice") as c:
        assert c.get(f"/arc/nodes/{base}/doomed.txt").status_code == 404

    # recursive permissions reach the leaf, as the API reports
    click_action(browser, "tree", "perms")
    browser.find_element(By.ID, "perms-write").send_keys("survey")
    browser.find_element(By.ID, "perms-recursive").click()
    reload_after(browser, lambda: browser.find_element(By.ID, "perms-ok").click())
    for path in ("tree", "tree/inner", "tree/inner/leaf.txt"):
        assert prop(node(server, "arc", f"{base}/{path}"), CORE + "groupwrite") == \
            "ivo://localhost/gms?survey"


def test_csrf_tokens_of_any_text_are_refused_cleanly(server):
    with server.client("alice") as c:
        token = c.post("/ac/login", data={"username": "alice", "password": PASSWORDS["alice"]}).text
    cookies = {"__Host-vospace_session": token, "__Host-vospace_csrf": "abc"}
    with httpx.Client(base_url=server.url, verify=False, cookies=cookies) as c:
        for forged in ("ü" * 64, "", "x"):
            r = c.put("/vault/files/alice/x.txt", content=b"x",
                      headers={"X-CSRF-Token": forged.encode("utf-8")})
            assert r.status_code == 403 and r.text.startswith("PermissionDenied"), r.text
        r = c.post("/storage/vault/download", data={"csrf": "ü", "path": "alice"})
        assert r.status_code == 403 and "CSRF" in r.text


def test_files_dropped_on_the_listing_are_uploaded(server, browser):
    with server.client("alice") as c:
        assert c.put("/vault/nodes/alice/drops", content=_container("vault", "alice/drops")).status_code == 201
    login(browser, server, "alice", "/storage/list/alice/drops")
    # what a drop of two files from the desktop delivers (no directory entries)
    drop = """
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(5000)], "dropped one.bin"));
        dt.items.add(new File(["hello"], "dropped-two.txt"));
        const zone = document.getElementById("dropzone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));"""
    reload_after(browser, lambda: browser.execute_script(drop))
    found = wait_rows(browser, "dropped one.bin", "dropped-two.txt")
    assert found["dropped one.bin"].find_element(By.CSS_SELECTOR, "td.size").text == "4.9 KiB"
    assert file_bytes(server, "vault", "alice/drops/dropped-two.txt") == b"hello"
