"""Sessions benchmark: launch-to-Running latency and 100 headless launches, local runner.

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
from tests.harness import make_server  # noqa: E402
from tests.sessions_helpers import end_leftovers  # noqa: E402
from vospace_server.sessions.runners.sandbox import (ROOT_ENV, SandboxPaths,  # noqa: E402
                                                     bwrap_argv, sandbox_env)

API = "/skaha/v1"
IMAGE = "images.canfar.net/skaha/python:3.11"
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
    missed = failed > 0 or (args.check and median > LATENCY_TARGET)
    if missed:
        print(f"sessions: MISSED (target: median launch-to-Running <= {LATENCY_TARGET} s, "
              f"no failures)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
