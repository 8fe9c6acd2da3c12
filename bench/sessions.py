"""Sessions benchmark: launch-to-Running latency and 100 headless launches, local runner;
launch to a usable notebook page; the session proxy's throughput.

    .venv/bin/python bench/sessions.py [--launches 100] [--latency-runs 10] [--check]

Starts a real ``vospace serve --tls`` (tests/harness.py) and drives ``/skaha/v1`` over one
keep-alive HTTPS connection, as alice:
- latency: POST a headless ``sleep`` session, poll ``GET /session/{id}`` until Running,
  then DELETE it (median and worst of ``--latency-runs``);
- throughput: POST ``--launches`` headless ``true`` sessions back to back, then wait until
  all are Succeeded (launches/s, and end-to-end sessions/s).
The reference, measured in the same run: the same sandbox started directly
(``bwrap ... setpriv ... true``, the command line the local runner builds, no HTTP, no
database, no cgroup), whose start-to-exit time bounds what any launch can cost. Ratios are
API over reference. ``--check`` exits 1 when the median latency exceeds LATENCY_TARGET.

Interactive (skipped with a note when `make jupyter` has not installed JupyterLab):
- notebook: launch the default notebook image, then GET its connectURL and the kernel specs
  through the proxy until both answer 200 (the page JupyterLab builds itself from), against
  the headless launch-to-Running median above;
- proxy: a 100 MiB download from a contributed app (tests/session_app.py) through
  ``/session/contrib/<id>/`` on the session's host (HTTPS, bearer token) vs the same download read directly from the
  session's unix socket on the host (ratio = direct time / proxied time: 1.0 is no overhead).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.summary import record  # noqa: E402
from tests.harness import Server, make_server  # noqa: E402
from tests.sessions_helpers import (catalogue, catalogue_image, end_leftovers,  # noqa: E402
                                    host_client)
from tests.test_sessions_proxy import APP, APP_COMMAND  # noqa: E402
from vospace_server.sessions.catalogue import Catalogue  # noqa: E402
from vospace_server.sessions.runners.local import connect_unix  # noqa: E402
from vospace_server.sessions.runners.sandbox import (ROOT_ENV, SandboxPaths,  # noqa: E402
                                                     bwrap_argv, sandbox_env)

API = "/skaha/v1"
IMAGE = "images.canfar.net/skaha/python:3.11"
NOTEBOOK = "images.canfar.net/skaha/notebook-scipy:0.4"
DOWNLOAD = 100 * 2**20
LATENCY_TARGET = 1.0  # s, median launch-to-Running


def reference_runs(server_dir: str, runs: int) -> list[float]:
    """Seconds from spawn to exit of the bare sandbox running ``true`` as uid 10001."""
    work = tempfile.mkdtemp(prefix="bench-sandbox-", dir=server_dir)
    arc = os.path.join(server_dir, "arc")
    paths = SandboxPaths(arc, os.path.join(work, "scratch"), os.path.join(work, "app"),
                         "/etc/passwd", "/etc/group")
    for folder in (paths.scratch, paths.app_dir):
        os.mkdir(folder)
    argv = bwrap_argv(paths, "alice", "bench", 10001, 10001, [], sandbox_env("alice", {}),
                      ["true"])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=ROOT_ENV)
        times.append(time.perf_counter() - start)
    shutil.rmtree(work)
    return times


def wait(client: httpx.Client, session_id: str, statuses: tuple[str, ...]) -> str:
    while True:
        status = client.get(f"{API}/session/{session_id}").json()["status"]
        if status in statuses:
            return status
        time.sleep(0.005)


def launch(client: httpx.Client, name: str, cmd: str, args: str = "") -> str:
    r = client.post(f"{API}/session", data={"name": name, "image": IMAGE, "cmd": cmd,
                                           "args": args})
    r.raise_for_status()
    return r.text.strip()


def latencies(client: httpx.Client, runs: int) -> list[float]:
    found = []
    for i in range(runs):
        start = time.perf_counter()
        session_id = launch(client, f"lat-{i}", "sleep", "60")
        wait(client, session_id, ("Running", "Failed"))
        found.append(time.perf_counter() - start)
        client.delete(f"{API}/session/{session_id}").raise_for_status()
    return found


def throughput(client: httpx.Client, count: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    ids = [launch(client, f"many-{i}", "true") for i in range(count)]
    launched = time.perf_counter() - start
    failed = sum(wait(client, sid, ("Succeeded", "Failed")) != "Succeeded" for sid in ids)
    return launched, time.perf_counter() - start, failed


def notebook_ready(server: Server, client: httpx.Client) -> float | None:
    """Seconds from the launch POST to the notebook page and its kernel specs answering
    (on the session's own host, as its connectURL says)."""
    if Catalogue.load().images[NOTEBOOK].missing_software():
        return None
    start = time.perf_counter()
    r = client.post(f"{API}/session", data={"name": "nb", "image": NOTEBOOK,
                                           "type": "notebook"})
    r.raise_for_status()
    session_id = r.text.strip()
    try:
        wait(client, session_id, ("Running", "Failed"))
        url = httpx.URL(client.get(f"{API}/session/{session_id}").json()["connectURL"])
        prefix = f"/session/notebook/{session_id}"
        with host_client(server, session_id, "alice") as app:
            while not (app.get(url.raw_path.decode()).status_code == 200
                       and app.get(f"{prefix}/api/kernelspecs").status_code == 200):
                time.sleep(0.05)
        return time.perf_counter() - start
    finally:
        client.delete(f"{API}/session/{session_id}")


def proxy_throughput(root: str) -> tuple[float, float]:
    """(seconds through the proxy, seconds straight from the socket) for DOWNLOAD bytes."""
    images = os.path.join(root, "proxy-images.toml")
    Path(images).write_text(catalogue(["images.canfar.net"],
                                      catalogue_image(APP, ["contributed"], APP_COMMAND)))
    server = make_server(root, users=("alice",),
                         extra_env={"VOSPACE_SESSION_IMAGES": images})
    try:
        with server.client("alice") as client:
            r = client.post(f"{API}/session", data={"name": "big", "image": APP})
            r.raise_for_status()
            session_id = r.text.strip()
            wait(client, session_id, ("Running",))
            uid = int(client.get(f"{API}/session/{session_id}").json()["runAsUID"])
            start = time.perf_counter()
            with host_client(server, session_id, "alice") as app, app.stream(
                    "GET", f"/session/contrib/{session_id}/big",
                    params={"n": str(DOWNLOAD)}) as down:
                got = sum(len(chunk) for chunk in down.iter_bytes())
            proxied = time.perf_counter() - start
            assert got == DOWNLOAD, got
            socket_path = os.path.join(server.data_dir, "sessions", session_id, "app", "app.sock")
            start = time.perf_counter()
            direct_bytes = read_direct(socket_path, uid)
            direct = time.perf_counter() - start
            assert direct_bytes >= DOWNLOAD, direct_bytes
            client.delete(f"{API}/session/{session_id}")
    finally:
        server.stop()
        end_leftovers(server)
    return proxied, direct


def read_direct(socket_path: str, uid: int) -> int:
    """The download straight from the app's socket (HTTP/1.1, the app closes at the end)."""
    sock = connect_unix(socket_path, 30, uid)
    with sock:
        sock.sendall(f"GET /big?n={DOWNLOAD} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        total = 0
        while data := sock.recv(1 << 20):
            total += len(data)
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--latency-runs", type=int, default=10)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-sessions-")
    server = make_server(root, users=("alice",))
    try:
        reference = reference_runs(server.data_dir, args.latency_runs)
        with server.client("alice") as client:
            lat = latencies(client, args.latency_runs)
            launched, total, failed = throughput(client, args.launches)
            notebook = notebook_ready(server, client)
        server.stop()
        proxied, direct = proxy_throughput(root)
    finally:
        server.stop()
        end_leftovers(server)
        shutil.rmtree(root, ignore_errors=True)
    ref = statistics.median(reference)
    median = statistics.median(lat)
    print(f"sessions: bare sandbox start-to-exit (reference)  median {ref * 1000:7.1f} ms")
    print(f"sessions: launch-to-Running (API, headless)       median {median * 1000:7.1f} ms, "
          f"worst {max(lat) * 1000:.1f} ms  (x{median / ref:.1f} the reference)")
    print(f"sessions: {args.launches} headless launches: POSTs {launched:.2f} s "
          f"({args.launches / launched:.1f} launches/s), all Succeeded after {total:.2f} s "
          f"({args.launches / total:.1f} sessions/s; reference {1 / ref:.1f}/s sequential, "
          f"x{(total / args.launches) / ref:.1f}), failed: {failed}")
    if notebook is None:
        print("sessions: notebook: JupyterLab not installed (make jupyter): not measured")
    else:
        print(f"sessions: launch to a usable notebook page         {notebook:7.2f} s  "
              f"(x{notebook / median:.1f} the headless launch-to-Running)")
    mib = DOWNLOAD / 2**20
    print(f"sessions: proxy, {mib:.0f} MiB download: through /session/contrib {proxied:.2f} s "
          f"({mib / proxied:.0f} MiB/s), straight from the socket {direct:.2f} s "
          f"({mib / direct:.0f} MiB/s): ratio {direct / proxied:.2f}")
    slow = not record("median launch-to-Running", median, LATENCY_TARGET, "s", at_most=True,
                      note=f"bare sandbox {ref * 1000:.0f} ms")
    record(f"{args.launches} headless launches", failed, 0, "failed", at_most=True,
           note=f"{args.launches / total:.1f} sessions/s")
    record("proxy download vs the socket", direct / proxied, None,
           note=f"direct {mib / direct:.0f} MiB/s")
    missed = failed > 0 or (args.check and slow)
    if missed:
        print(f"sessions: MISSED (target: median launch-to-Running <= {LATENCY_TARGET} s, "
              f"no failures)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
