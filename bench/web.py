"""Web page benchmark: the storage browser in headless Chromium against a real server.

    .venv/bin/python bench/web.py [--entries 100000] [--size-mib 1024] [--services vault,arc]

1. Time to first listing: a container of ``--entries`` children (arc: files made on disk,
   which is what arc is; vault: the node rows, inserted in one transaction), opened
   at ``/storage/<svc>/list/...`` in Chromium (navigation start to a loaded page with its
   first rows), against curl fetching the same first page from the VOSpace API
   (``GET /<svc>/nodes/...?limit=200``) and the whole listing (what a page without paging
   would need). Target: the page within 2 s. Also shown: the page sorted by size, which
   needs the whole folder.
2. Upload throughput of a ``--size-mib`` file from the page (file picker -> PUT to
   ``/<svc>/files``, as the page does it) against ``curl -T`` of the same file to the same
   endpoint; the ratio is page/curl throughput. Target: at least 0.5.

With ``--check`` it exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from selenium.webdriver.common.by import By  # noqa: E402

from tests.browser import chromium, wait_until  # noqa: E402
from bench.summary import record  # noqa: E402
from tests.harness import VOSPACE, Server, make_server  # noqa: E402
from vospace_server.storage.vault.schema import nodes  # noqa: E402

PASSWORD = "bench-password-1"
FIRST_LISTING_TARGET = 2.0   # seconds
UPLOAD_RATIO_TARGET = 0.5    # page throughput / curl throughput


def fill(server: Server, service: str, folder: str, entries: int) -> None:
    """``entries`` children in ``folder`` (created here)."""
    if service == "arc":  # arc is a POSIX tree: files made on disk are its nodes
        base = Path(server.data_dir) / "arc" / folder
        base.mkdir(parents=True)
        for i in range(entries):
            os.close(os.open(base / f"f{i:06d}", os.O_WRONLY | os.O_CREAT, 0o644))
        subprocess.run(["chown", "-R", "--reference", str(base.parent), str(base)], check=True)
        return
    # vault: the folder over HTTP, then its empty DataNodes as the rows 100,000 PUTs leave
    # behind, in one transaction (PUT at a loaded machine's ~200/s would take many minutes)
    with server.client("alice") as c:
        r = c.put(f"/{service}/nodes/{folder}", headers={"Content-Type": "text/xml"},
                  content=_container(service, folder))
        r.raise_for_status()
    engine = create_engine(f"sqlite:///{server.data_dir}/vospace.db")
    now = time.time()
    with engine.begin() as conn:
        conn.execute(insert(nodes), [
            dict(path=f"{folder}/f{i:06d}", parent=folder, name=f"f{i:06d}", type="DataNode",
                 owner="alice", length=0, md5=None, created=now, modified=now, target=None,
                 props="{}") for i in range(entries)])
    engine.dispose()


def _container(service: str, path: str) -> str:
    return ('<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'uri="vos://localhost~{service}/{path}" xsi:type="vos:ContainerNode"/>')


def curl_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(["curl", "-k", "-sS", "-f", "-o", "/dev/null", *args], check=True,
                   timeout=3600)
    return time.perf_counter() - start


def login(driver, server: Server) -> None:
    driver.get(f"{server.url}/storage/login")
    driver.find_element(By.ID, "username-input").send_keys("alice")
    driver.find_element(By.ID, "password-input").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    wait_until(lambda: driver.find_element(By.ID, "username").text == "alice", what="login")


def first_listing(driver, server: Server, service: str, folder: str, query: str = "",
                  loads: int = 3) -> float:
    """Seconds from navigation start to the loaded page (median of ``loads``)."""
    times = []
    for _ in range(loads):
        driver.get(f"{server.url}/storage/{service}/list/{folder}{query}")
        rows = driver.find_elements(By.CSS_SELECTOR, "#listing tbody tr[data-name]")
        assert len(rows) == 200, len(rows)
        timing = driver.execute_script(
            "const t = performance.getEntriesByType('navigation')[0];"
            "return t.loadEventEnd - t.startTime;")
        times.append(timing / 1000.0)
    return sorted(times)[len(times) // 2]


def page_upload(driver, server: Server, service: str, folder: str, source: Path) -> float:
    """Seconds from picking the file to the server holding all of it."""
    driver.get(f"{server.url}/storage/{service}/list/{folder}")
    size = source.stat().st_size
    token = server.tokens["alice"]
    url = f"{server.url}/{service}/nodes/{folder}/{quote(source.name)}"
    start = time.perf_counter()
    driver.find_element(By.ID, "upload-files").send_keys(str(source))
    with httpx.Client(verify=False, headers={"Authorization": f"Bearer {token}"}) as c:
        def stored() -> bool:
            r = c.get(url)
            return r.status_code == 200 and f">{size}<" in r.text
        wait_until(stored, timeout=3600, what="the upload")
    return time.perf_counter() - start


def run_service(server: Server, service: str, entries: int, source: Path) -> dict:
    home = "alice" if service == "vault" else "home/alice"
    folder = f"{home}/many"
    t0 = time.perf_counter()
    fill(server, service, folder, entries)
    fill_s = time.perf_counter() - t0
    auth = ["-H", f"Authorization: Bearer {server.tokens['alice']}"]
    api = f"{server.url}/{service}/nodes/{folder}"
    api_page = min(curl_seconds([*auth, f"{api}?limit=200"]) for _ in range(3))
    api_whole = curl_seconds([*auth, api])
    upload_folder = f"{home}/uploads"
    with server.client("alice") as c:
        c.put(f"/{service}/nodes/{upload_folder}", headers={"Content-Type": "text/xml"},
              content=_container(service, upload_folder))
    curl_up = curl_seconds([*auth, "-T", str(source),
                            f"{server.url}/{service}/files/{upload_folder}/curl-{source.name}"])
    with chromium() as driver:
        login(driver, server)
        page_first = first_listing(driver, server, service, folder)
        page_sorted = first_listing(driver, server, service, folder, "?sort=size&order=desc", 1)
        page_up = page_upload(driver, server, service, upload_folder, source)
    size_mib = source.stat().st_size / 2**20
    return {"service": service, "fill_s": fill_s, "page_first": page_first,
            "page_sorted": page_sorted,
            "api_page": api_page, "api_whole": api_whole,
            "page_mib_s": size_mib / page_up, "curl_mib_s": size_mib / curl_up}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--services", default="vault,arc")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-web-")
    source = Path(work) / "upload.bin"
    with open(source, "wb") as fh:
        for _ in range(args.size_mib):
            fh.write(os.urandom(2**20))
    server = make_server(work, users=("alice",))
    missed = False
    try:
        subprocess.run([VOSPACE, "--data-dir", server.data_dir, "user", "passwd", "alice",
                        "--password-stdin"], input=PASSWORD + "\n", text=True, env=server.env,
                       check=True, capture_output=True)
        for service in args.services.split(","):
            r = run_service(server, service, args.entries, source)
            ratio = r["page_mib_s"] / r["curl_mib_s"]
            print(f"web {service}: {args.entries} entries (filled in {r['fill_s']:.1f} s): "
                  f"first listing in Chromium {r['page_first']:.2f} s "
                  f"(target <= {FIRST_LISTING_TARGET} s); API first page "
                  f"{r['api_page']:.2f} s, whole listing {r['api_whole']:.2f} s; "
                  f"page/API-first-page {r['page_first'] / r['api_page']:.1f}x; "
                  f"sorted by size (whole folder) {r['page_sorted']:.2f} s")
            print(f"web {service}: {args.size_mib} MiB upload: page {r['page_mib_s']:.0f} MiB/s, "
                  f"curl {r['curl_mib_s']:.0f} MiB/s, ratio {ratio:.2f} "
                  f"(target >= {UPLOAD_RATIO_TARGET})")
            first_ok = record(f"{service} first listing of {args.entries} in Chromium",
                              r["page_first"], FIRST_LISTING_TARGET, "s", at_most=True,
                              note=f"API first page {r['api_page']:.2f} s")
            upload_ok = record(f"{service} {args.size_mib} MiB page upload vs curl", ratio,
                               UPLOAD_RATIO_TARGET, note=f"curl {r['curl_mib_s']:.0f} MiB/s")
            missed |= not (first_ok and upload_ok)
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", work], check=False)
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
