"""Scale benchmark on PostgreSQL: a 1,000,000-child vault container, and replicas.

    .venv/bin/python bench/scale.py [--children 1000000] [--requests 2000] [--check]

1. Listing: a container with ``--children`` DataNodes (rows loaded in bulk with COPY, as a
   migration or an ingest would) and one with 1,000; pages of 1,000 (``limit=1000`` with the
   ``uri`` cursor, as the CADC client pages) from the start, the middle and the end of the
   big one, each as a ratio to the same page (the first 1,000) of the small one, median of 5.
   Target: <= 2x (paging is an index range scan on (parent, name), independent of size).
2. Throughput through nginx (tests/cluster.py: the test deployment) with one replica and with
   two on one PostgreSQL: node creates/s and 4 KiB uploads/s from 8 keep-alive connections,
   and the two-replica/one-replica ratio. This machine has 2 cores shared by nginx,
   PostgreSQL, the replicas and the client, so a second replica adds little here; on
   separate hosts it scales with the cores given to it.

Vault bytes go to one blob folder shared by the replicas (moto, the only S3 server here, is a
single Python process that would be what is measured). Not part of ``make test``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.nodes import Bench, node_xml  # noqa: E402
from bench.summary import record  # noqa: E402
from tests.cluster import Balancer, Cluster  # noqa: E402

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
PAGE = 1000
LIST_TARGET = 2.0
REPEATS = 5
UPLOAD = os.urandom(4096)


def bulk_children(cluster: Cluster, folder: str, count: int) -> float:
    """``count`` empty DataNodes in ``folder`` by COPY; seconds taken (with ANALYZE)."""
    dsn = cluster.env["VOSPACE_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    now = time.time()
    start = time.perf_counter()
    tail = f"\tDataNode\talice\t0\t{now}\t{now}\t{{}}\n"
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy("COPY nodes (path, parent, name, type, owner, length, created,"
                                " modified, props) FROM STDIN") as copy:
            for block in range(0, count, 50_000):  # COPY text, 50,000 rows a write
                copy.write("".join(f"{folder}/f{i:07d}\t{folder}\tf{i:07d}{tail}"
                                   for i in range(block, min(block + 50_000, count))))
        conn.execute("ANALYZE nodes")
    return time.perf_counter() - start


def page_seconds(c: httpx.Client, folder: str, first: int | None) -> float:
    """Seconds of one page of PAGE children starting at child ``first``."""
    params = {"limit": str(PAGE)}
    if first is not None:
        params["uri"] = f"vos://localhost~vault/{folder}/f{first:07d}"
    start = time.perf_counter()
    r = c.get(f"/vault/nodes/{folder}", params=params)
    seconds = time.perf_counter() - start
    children = etree.fromstring(r.content).find(f"{{{VOS_NS}}}nodes")
    if r.status_code != 200 or children is None or len(children) != PAGE:
        raise RuntimeError(f"page of {folder} at {first}: {r.status_code} {r.text[:200]}")
    return seconds


def listing(cluster: Cluster, children: int) -> list[tuple[str, float, float]]:
    with cluster.client() as c:
        for folder in ("alice/big", "alice/small"):
            body = node_xml(f"vos://localhost~vault/{folder}", "ContainerNode")
            assert c.put(f"/vault/nodes/{folder}", content=body,
                         headers={"Content-Type": "text/xml"}).status_code == 201
    loaded = bulk_children(cluster, "alice/big", children)
    bulk_children(cluster, "alice/small", PAGE)
    print(f"loaded {children:,} children in {loaded:.1f} s ({children / loaded:,.0f} rows/s)")
    pages = {"small": ("alice/small", None), "start": ("alice/big", None),
             "middle": ("alice/big", children // 2), "end": ("alice/big", children - PAGE)}
    times: dict[str, list[float]] = {label: [] for label in pages}
    with cluster.client() as c:
        for round_ in range(REPEATS + 1):  # interleaved, so load changes hit all alike
            for label, (folder, first) in pages.items():
                seconds = page_seconds(c, folder, first)
                if round_:  # the first round warms caches
                    times[label].append(seconds)
    median = {label: statistics.median(values) for label, values in times.items()}
    reference = median.pop("small")
    rows = [(label, seconds, seconds / reference) for label, seconds in median.items()]
    print(f"page of {PAGE} from a {PAGE:,}-child container: {reference * 1000:.1f} ms")
    for label, seconds, ratio in rows:
        print(f"page of {PAGE} at the {label:6} of {children:,}: {seconds * 1000:.1f} ms = "
              f"{ratio:.2f}x  (target <= {LIST_TARGET}x)")
    return rows


def rates(balancer: Balancer, tokens: dict[str, str], tag: str, count: int) -> tuple[float, float]:
    """(creates/s, 4 KiB uploads/s) through ``balancer``, ``count`` of each."""
    bench = Bench(SimpleNamespace(port=balancer.port, tokens=tokens, url=balancer.url),
                  "vault", concurrency=8)
    creates = count / bench.create_many(f"alice/creates-{tag}", count)
    folder = f"alice/uploads-{tag}"
    uploads = count / bench.run_many(folder, count, lambda conn, i: bench.request(
        conn, "PUT", f"/vault/files/{folder}/u{i:06d}", UPLOAD, "application/octet-stream"))
    return creates, uploads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--children", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    cluster = Cluster(replicas=2, users=("alice",), s3=False)
    try:
        pages = listing(cluster, args.children)
        # Alternated in halves, so a change of load on the machine hits both alike.
        half = args.requests // 2
        runs = [(rates(cluster.via[0], cluster.tokens, f"one{i}", half),
                 rates(cluster.balancer, cluster.tokens, f"two{i}", half)) for i in range(2)]
        one, two = ([statistics.mean(r[k][j] for r in runs) for j in range(2)] for k in range(2))
    finally:
        cluster.stop()
    for what, a, b in (("node creates/s", one[0], two[0]), ("4 KiB uploads/s", one[1], two[1])):
        print(f"{what:16} through nginx: one replica {a:7.0f}, two replicas {b:7.0f} = "
              f"{b / a:.2f}x")
    print(f"({os.cpu_count()} CPU cores here, shared by nginx, PostgreSQL, the replicas and the "
          f"client: a second replica cannot add cores)")
    missed = [label for label, seconds, ratio in pages
              if not record(f"page of {PAGE} at the {label} of {args.children:,}", ratio,
                            LIST_TARGET, at_most=True,
                            note=f"{seconds * 1000:.0f} ms vs a {PAGE:,}-child container")]
    for what, a, b in (("node creates/s", one[0], two[0]), ("4 KiB uploads/s", one[1], two[1])):
        record(f"{what} two replicas vs one", b / a, None,
               note=f"{os.cpu_count()} cores shared by all")
    if missed:
        print(f"MISSED: listing pages at {', '.join(missed)} over {LIST_TARGET}x")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
