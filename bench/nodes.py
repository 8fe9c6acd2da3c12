"""Node-service benchmark: create 10,000 nodes, then list the 10,000-child container.

    .venv/bin/python bench/nodes.py [--nodes 10000] [--concurrency 8] [--services vault,arc]
        [--workers N]

Starts a real ``vospace serve --tls`` (tests/harness.py) in a temporary directory, then from
one client process, over keep-alive HTTPS connections, PUTs ``--nodes`` DataNodes into one
container of each service and lists that container whole (one GET) and paged
(``limit=1000`` with the ``uri`` cursor, as the CADC client pages). Prints creates/s and
list seconds against the targets (>= 1,000 creates/s with the default concurrency; a whole
10,000-child listing in under 1 s), with what bounds the create rate beside it: the
server's and the client's CPU per create, and how many cores the server kept busy. The
server runs ``--workers`` processes (default: one per core, as README "Workers" advises),
each of which can keep about one core busy with its Python (the GIL); ``--workers 1``
shows one process's limit. With ``--check`` it exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import httpx
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cpu import tree_cpu_seconds  # noqa: E402
from bench.summary import record  # noqa: E402
from tests.harness import Server, make_server  # noqa: E402

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CREATE_TARGET = 1000.0   # nodes/s
LIST_TARGET = 1.0        # seconds for the whole listing
PAGE = 1000


def node_xml(uri: str, node_type: str) -> bytes:
    return (f'<vos:node xmlns:vos="{VOS_NS}" xmlns:xsi="{XSI_NS}" uri="{uri}" '
            f'xsi:type="vos:{node_type}"><vos:properties/></vos:node>').encode()


class Bench:
    def __init__(self, server: Server, service: str, concurrency: int) -> None:
        self.server, self.service, self.concurrency = server, service, concurrency
        self.home = "alice" if service == "vault" else "home/alice"
        self.base_uri = f"vos://localhost~{service}"

    def client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.concurrency,
                              max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(base_url=self.server.url, verify=False, timeout=120,
                                 limits=limits,
                                 headers={"Authorization": f"Bearer {self.server.tokens['alice']}",
                                          "Content-Type": "text/xml"})

    def create_many(self, folder: str, count: int) -> float:
        """PUT ``count`` DataNodes into new container ``folder``; seconds taken."""
        return self.run_many(folder, count, lambda conn, i: self.put(
            conn, f"{folder}/n{i:06d}", "DataNode"))

    def run_many(self, folder: str, count: int,
                 one: Callable[[http.client.HTTPSConnection, int], tuple[int, str]]) -> float:
        """Create container ``folder``, then run ``one(conn, i)`` for i < ``count`` from
        ``concurrency`` threads, each with one keep-alive connection (http.client: a light
        client, so the figures measure the server); seconds taken."""
        names = iter(range(count))
        lock = threading.Lock()
        errors: list[str] = []

        def worker(conn: http.client.HTTPSConnection) -> None:
            while not errors:
                with lock:
                    i = next(names, None)
                if i is None:
                    return
                status, text = one(conn, i)
                if status != 201:
                    errors.append(f"{status} {text[:300]}")

        conns = [self.connection() for _ in range(self.concurrency)]
        status, text = self.put(conns[0], folder, "ContainerNode")
        if status != 201:
            raise RuntimeError(f"create {folder}: {status} {text}")
        for conn in conns:  # TLS handshakes happen before the clock starts
            conn.connect()
        threads = [threading.Thread(target=worker, args=(conn,)) for conn in conns]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        for conn in conns:
            conn.close()
        if errors:
            raise RuntimeError(f"create failed: {errors[0]}")
        return elapsed

    def connection(self) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", self.server.port, context=ctx,
                                           timeout=120)

    def put(self, conn: http.client.HTTPSConnection, path: str, node_type: str) -> tuple[int, str]:
        return self.request(conn, "PUT", f"/{self.service}/nodes/{quote(path)}",
                            node_xml(f"{self.base_uri}/{path}", node_type), "text/xml")

    def request(self, conn: http.client.HTTPSConnection, method: str, url: str, body: bytes,
                content_type: str) -> tuple[int, str]:
        conn.request(method, url, body=body,
                     headers={"Authorization": f"Bearer {self.server.tokens['alice']}",
                              "Content-Type": content_type})
        resp = conn.getresponse()
        answer = resp.read()
        return resp.status, answer.decode(errors="replace") if resp.status != 201 else ""

    async def list_whole(self, folder: str) -> tuple[float, int]:
        async with self.client() as c:
            await c.get(f"/{self.service}/nodes/{folder}", params={"limit": "1"})  # warm
            start = time.perf_counter()
            r = await c.get(f"/{self.service}/nodes/{folder}")
            elapsed = time.perf_counter() - start
        return elapsed, _count_children(r)

    async def list_paged(self, folder: str) -> tuple[float, int, int]:
        """Pages the way the CADC client does: the next page starts at the last child seen."""
        seen, pages, cursor = 0, 0, None
        async with self.client() as c:
            start = time.perf_counter()
            while True:
                params = {"limit": str(PAGE)}
                if cursor:
                    params["uri"] = cursor
                r = await c.get(f"/{self.service}/nodes/{folder}", params=params)
                pages += 1
                uris = _child_uris(r)
                fresh = uris[1:] if cursor else uris
                seen += len(fresh)
                if len(uris) < PAGE:
                    break
                cursor = uris[-1]
            return time.perf_counter() - start, seen, pages


def _child_uris(r: httpx.Response) -> list[str]:
    if r.status_code != 200:
        raise RuntimeError(f"list: {r.status_code} {r.text[:300]}")
    nodes = etree.fromstring(r.content).find(f"{{{VOS_NS}}}nodes")
    return [n.get("uri") for n in nodes] if nodes is not None else []


def _count_children(r: httpx.Response) -> int:
    return len(_child_uris(r))


def file_create_cpu_ms(folder: str, count: int = 1000) -> float:
    """CPU milliseconds one thread spends creating one empty file in new folder ``folder``:
    the filesystem's own share of every arc create, which no server code goes below. On a
    journal-less ext4 (this machine's root) it swings with how many files anything deleted
    nearby in the last minutes: each new inode is looked for past the recently freed ones."""
    os.mkdir(folder)
    start = time.thread_time()
    for i in range(count):
        os.close(os.open(os.path.join(folder, f"f{i:06d}"),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    return (time.thread_time() - start) * 1000 / count


def create_limits(rate: float, server_ms: float, client_ms: float, workers: int) -> str:
    """What bounds the create rate, from the CPU each create costs: each server process's
    Python runs one thread at a time (the GIL), so ``workers`` processes cannot keep much
    more than ``workers`` cores busy; and the client shares the cores with them."""
    cores = os.cpu_count() or 1
    busy = rate * server_ms / 1000
    machine = cores * 1000 / (server_ms + client_ms)
    return (f", keeping {busy:.2f} of {cores} cores busy ({workers} server process"
            f"{'es' if workers > 1 else ''}, each running one thread of Python at a time); "
            f"client {client_ms:.2f} ms (both on all {cores} cores: {machine:.0f}/s at most)")


async def run_service(server: Server, service: str, count: int, concurrency: int) -> dict:
    bench = Bench(server, service, concurrency)
    folder = f"{bench.home}/bench-{int(time.time() * 1000)}"
    cpu_before, client_before = tree_cpu_seconds(server.proc.pid), time.process_time()
    created_s = bench.create_many(folder, count)
    cpu_ms = (tree_cpu_seconds(server.proc.pid) - cpu_before) * 1000 / count
    client_ms = (time.process_time() - client_before) * 1000 / count
    # next to the server's data directory, so on the filesystem (and near the inodes) arc uses
    file_ms = file_create_cpu_ms(os.path.join(os.path.dirname(server.data_dir),
                                              f"file-probe-{service}")) \
        if service == "arc" else None
    whole_s, whole_n = await bench.list_whole(folder)
    paged_s, paged_n, pages = await bench.list_paged(folder)
    if whole_n != count or paged_n != count:
        raise RuntimeError(f"{service}: listed {whole_n}/{paged_n} of {count} children")
    return {"service": service, "creates_per_s": count / created_s, "create_s": created_s,
            "server_cpu_ms": cpu_ms, "client_cpu_ms": client_ms, "file_create_ms": file_ms,
            "list_whole_s": whole_s, "list_paged_s": paged_s, "pages": pages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="keep-alive connections used by the one client (1 = sequential)")
    parser.add_argument("--services", default="vault,arc")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="server processes (vospace serve --workers; default: one per core)")
    parser.add_argument("--database-url", default=None, help="e.g. a PostgreSQL URL")
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="vospace-bench-")
    server = make_server(root, args.database_url, users=("alice",), workers=args.workers)
    failed = False
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work "
              "on the machine lowers every figure)")
        print(f"server {server.url} (pid {server.proc.pid})  data {server.data_dir}  nodes {args.nodes}  "
              f"concurrency {args.concurrency} (one client, keep-alive HTTPS)  "
              f"workers {args.workers}")
        for service in args.services.split(","):
            res = asyncio.run(run_service(server, service, args.nodes, args.concurrency))
            cpu_note = f"server CPU {res['server_cpu_ms']:.2f} ms per create"
            if res["file_create_ms"] is not None:
                cpu_note += (f", of which creating the empty file alone "
                             f"{res['file_create_ms']:.2f} ms (kernel, same filesystem)")
            cpu_note += create_limits(res["creates_per_s"], res["server_cpu_ms"],
                                      res["client_cpu_ms"], args.workers)
            ok_create = record(f"{service} create {args.nodes} nodes", res["creates_per_s"],
                               CREATE_TARGET, "nodes/s", note=cpu_note)
            ok_list = record(f"{service} list {args.nodes} children whole", res["list_whole_s"],
                             LIST_TARGET if args.nodes >= 10_000 else None, "s", at_most=True,
                             note=f"paged by {PAGE}: {res['list_paged_s']:.2f} s")
            failed |= not (ok_create and ok_list)
            print(f"{service:6s} create {args.nodes} nodes: {res['create_s']:.2f} s = "
                  f"{res['creates_per_s']:.0f} nodes/s [{'ok' if ok_create else 'BELOW TARGET'}]"
                  f"; {cpu_note}")
            print(f"{service:6s} list {args.nodes} children whole: {res['list_whole_s']:.3f} s "
                  f"[{'ok' if ok_list else 'OVER TARGET'}]; paged by {PAGE}: "
                  f"{res['list_paged_s']:.3f} s in {res['pages']} pages")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
