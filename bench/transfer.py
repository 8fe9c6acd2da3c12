"""Data-path benchmark: every figure is a ratio to a reference measured in the same run.

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--small 10000] [--services vault,arc]
        [--fits-mib 1024] [--copy-pairs 4] [--only-copies] [--only-downloads]

1. Download of a 1 GiB file with curl from the URL transfer negotiation hands out (the data
   port, as vcp and the CADC client use it) vs from nginx (as Debian ships it: no kernel
   TLS) serving the same file from the same disk, both over TLS (the server's deployed mode)
   and both over plain HTTP (both use sendfile then): best of seven rounds that take
   nginx, vault and arc in turn, so the reference and each server see the same minutes of
   a machine whose speed drifts (the median of the rounds' own ratios printed beside it).
   Target: >= 1.0x. Over TLS, the cipher each negotiates is printed, and a second nginx
   that puts AES-128-GCM first, as our server does, takes its turn in the same rounds:
   the ratio to it (no target) shows how much of a lead is the cipher.
   ``--only-downloads`` runs just this.
2. Verified durable upload of 1 GiB (curl PUT to the negotiated URL with its Content-MD5;
   the server hashes, fsyncs and publishes before answering) vs the limit of such a write:
   the slower of (the faster of ``dd conv=fsync`` and ``dd oflag=direct conv=fsync``) into
   the same data directory and ``md5sum`` of the same bytes, each part and the upload
   taken in turn in three rounds, best of each. Target: >= 0.8x. Printed
   beside it: curl's upload into a receiver that only reads and drops the bytes (on a
   blocking socket, decrypting with TLS), the ceiling the client and the transport set,
   and the rate at which the upload's own CPU time (curl's and the server's) would run
   with every core busy: on two shared cores, the limit that work sets.
3. 10,000 files of 4 KiB uploaded then downloaded with 16 concurrent keep-alive HTTPS
   connections: files/s.
4. vault with two copies (``blob_copies``: a second local store on the same disk) vs one
   copy: blocks of three 1 GiB uploads in a row (the copies of the earlier ones are queued
   meanwhile) on two servers that take turns in each configuration, every block starting
   with no copies left to make, six pairs; acknowledged-upload throughput as a ratio (each
   server's best one-copy over its best two-copy block, geometric mean over the servers),
   and what the copier thread read and wrote during the two-copy blocks. Target: >= 0.9x
   (the copies slow acknowledged uploads by at most 10%). ``--only-copies`` runs just this.
5. A 10x10 arcmin sky cutout (``CIRCLE``, as ``vcp 'vos:f.fits(ra,dec,r)'`` asks) of a 1 GiB
   FITS image on vault vs downloading the whole file: time as a ratio to the download's,
   and bytes the server process read for the cutout (``rchar`` of /proc/PID/io) as a
   ratio to the file's size (a download reads it all, from a mapping rchar does not count).

nginx (Debian ``nginx-light``) is installed here when missing; it is a benchmark
reference, not a dependency of the product. Best of three runs per other timed transfer.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cpu import children_cpu, cpu_seconds  # noqa: E402
from bench.summary import record  # noqa: E402
from tests.cluster import run_nginx  # noqa: E402
from tests.harness import VOSPACE, Server, free_port, make_server, wait_for  # noqa: E402
from vospace_server.tls_suites import SUITES  # noqa: E402
from vosclient.client import Client  # noqa: E402

HOMES = {"vault": "alice", "arc": "home/alice"}
DOWNLOAD_TARGET, UPLOAD_TARGET, COPIES_TARGET = 1.0, 0.8, 0.9
NGINX_SERVERS = """
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
    server {{ listen 127.0.0.1:{tls_port} ssl; root {root};
             ssl_certificate {cert}; ssl_certificate_key {key}; }}
    server {{ listen 127.0.0.1:{aes128_port} ssl; root {root};
             ssl_certificate {cert}; ssl_certificate_key {key};
             ssl_protocols TLSv1.2 TLSv1.3; ssl_prefer_server_ciphers on;
             ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;
             ssl_conf_command Ciphersuites {suites}; }}
"""


def ensure_nginx() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(path):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return path


def curl(*args: str) -> float:
    """Seconds for one curl transfer; fails on any HTTP error."""
    start = time.perf_counter()
    out = subprocess.run(["curl", "-sSfk", "-L", "-o", "/dev/null", "-w", "%{http_code}", *args],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"curl {args[-1]}: {out.stderr or out.stdout}")
    return elapsed


def best(fn, runs: int = 3) -> float:
    return min(fn() for _ in range(runs))


def interleaved(urls: dict[str, str], rounds: int = 7) -> dict[str, list[float]]:
    """Seconds of each of ``rounds`` downloads of each URL, taken in turn (nginx, vault,
    arc; nginx, vault, ...) after one unmeasured read of each (the page cache: vault's
    blob is another file than the one arc and nginx serve, and this VM's DAMON pageout
    takes idle cached pages). This machine's speed drifts by a third within a minute
    (nginx alone read 552 to 1100 MB/s in six runs): measured in turn, the reference and
    the measured server see the same moments, where best-of-3 of one and then of the
    other compared two different minutes."""
    for url in urls.values():
        curl(url)
    times: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            times[name].append(curl(url))
    return times


def start_plain(server: Server) -> tuple[subprocess.Popen, str]:
    """A second, plain-HTTP server process (with its data port) on the same data directory."""
    port = free_port()
    proc = subprocess.Popen([VOSPACE, "--data-dir", server.data_dir, "serve", "--port",
                             str(port), "--data-port", str(free_port()), "--log-level",
                             "warning"], env=server.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/reg/resource-caps", proc=proc)
    return proc, url


def start_nginx(nginx: str, root: str, cert: str, key: str,
                work: str) -> tuple[subprocess.Popen, dict[str, int]]:
    """nginx serving ``root`` on three ports: plain HTTP, HTTPS as Debian ships it (the
    reference), and HTTPS preferring AES-128-GCM as our server does (for comparison)."""
    ports = {"http": free_port(), "https": free_port(), "aes128": free_port()}
    servers = NGINX_SERVERS.format(port=ports["http"], tls_port=ports["https"],
                                   aes128_port=ports["aes128"], root=root, cert=cert,
                                   key=key, suites=SUITES)
    proc = run_nginx(work, servers, f"http://127.0.0.1:{ports['http']}/", workers=1,
                     nginx=nginx)
    return proc, ports


def cipher_of(url: str) -> str:
    """The TLS version and cipher curl gets from ``url``."""
    out = subprocess.run(["curl", "-sSk", "-v", "-o", "/dev/null", url], capture_output=True,
                         text=True).stderr
    return next((line.split("using ", 1)[1] for line in out.splitlines()
                 if "SSL connection using" in line), "?")


def bulk_file(path: str, mib: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def dd(src: str, dest: str, *flags: str) -> float:
    """Seconds to copy ``src`` to ``dest`` durably with dd and ``flags``."""
    elapsed = timed(["dd", f"if={src}", f"of={dest}", "bs=4M", "conv=fsync", *flags])
    os.unlink(dest)
    return elapsed


@dataclass
class UploadRounds:
    """Seconds of each part of the upload comparison in each round (see ``upload_rounds``),
    and the CPU time client and server spent on each upload."""
    fsync: list[float]
    direct: list[float]
    md5: list[float]
    upload: list[float]
    sink: list[float]
    upload_cpu: list[float]

    @staticmethod
    def _limit(fsync: float, direct: float, md5: float) -> tuple[float, str]:
        disk, limit = min(fsync, direct), max(min(fsync, direct), md5)
        return limit, "md5sum" if md5 >= disk else \
            ("dd conv=fsync" if fsync <= direct else "dd oflag=direct")

    def limit(self) -> tuple[float, str]:
        """Seconds of the limit for a hashed durable write (from the best of each part),
        and which part it is."""
        return self._limit(min(self.fsync), min(self.direct), min(self.md5))

    def paired(self) -> float:
        """The median of each round's own ratio (that round's limit over its upload)."""
        return statistics.median(self._limit(f, d, m)[0] / up for f, d, m, up
                                 in zip(self.fsync, self.direct, self.md5, self.upload))


def upload_rounds(src: str, data_dir: str, url: str, md5: str, cert: str | None,
                  server_pid: int, rounds: int = 3) -> UploadRounds:
    """``rounds`` rounds of: the limit's parts (``dd conv=fsync``, ``dd oflag=direct``
    into ``data_dir``, ``md5sum``), the upload (curl PUT of ``src`` with its Content-MD5
    to ``url``) and curl into a sink. In turn, as the downloads: this machine's disk wrote
    233-854 MB/s within minutes, so a limit measured before the uploads compared other
    minutes. The upload's CPU (curl's and the server process's) shows what two shared
    cores allow."""
    dest = os.path.join(data_dir, "dd.out")
    parts = UploadRounds([], [], [], [], [], [])
    for _ in range(rounds):
        parts.fsync.append(dd(src, dest))
        parts.direct.append(dd(src, dest, "oflag=direct"))
        parts.md5.append(timed(["md5sum", src]))
        before = children_cpu() + cpu_seconds(server_pid)
        parts.upload.append(curl("-T", src, "-H", f"Content-MD5: {md5}", url))
        parts.upload_cpu.append(children_cpu() + cpu_seconds(server_pid) - before)
        parts.sink.append(sink_seconds(src, cert))
    return parts


def sink_seconds(src: str, cert: str | None) -> float:
    """Seconds curl takes to PUT ``src`` into a receiver that only reads (and decrypts, with
    ``cert``) and drops the bytes, on a blocking socket as the data port reads them: what
    the client and the transport allow an upload on this machine, before any hashing or
    disk (printed beside the upload limit, as what stops a TLS upload short of it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = None
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, cert.replace("tls-cert", "tls-key"))

    def receive() -> None:
        conn = listener.accept()[0]
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            head, _, body = head.partition(b"\r\n\r\n")
            left = os.path.getsize(src) - len(body)
            if b"100-continue" in head.lower():
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            buffer = memoryview(bytearray(4 << 20))
            while left > 0:
                left -= conn.recv_into(buffer, min(len(buffer), left))
            conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    with listener:
        thread = threading.Thread(target=receive)
        thread.start()
        scheme = "https" if cert else "http"
        try:
            return curl("-T", src, f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/sink")
        finally:
            thread.join()


def negotiated(base: str, token: str, service: str, path: str, push: bool) -> str:
    """The first endpoint transfer negotiation hands out for ``path`` (the data port's
    preauth URL), asked through ``base`` (the HTTPS or the plain-HTTP server)."""
    with Client(url=base, token=token, verify=False) as client:
        url = client.negotiate(f"{'vos' if service == 'vault' else 'arc'}:{path}", push=push)
    if not url:
        raise RuntimeError(f"no endpoint negotiated for {service} {path}")
    return url


async def small_files(server: Server, service: str, count: int, concurrency: int = 16) -> tuple[float, float]:
    """files/s up, files/s down for ``count`` files of 4 KiB in a fresh folder."""
    token = server.tokens["alice"]
    folder = f"{HOMES[service]}/small-{time.time_ns()}"
    # Each worker's vault GET is a 303 from the main port to the data port: a kept-alive
    # connection to each per worker (httpx's limits span origins; with one per worker the
    # two ports took each other's connections and every redirect opened a new TLS one).
    pool = 2 * concurrency
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(base_url=server.url, verify=False, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as c:
        body = (f'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
                f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                f'uri="vos://localhost~{service}/{folder}" xsi:type="vos:ContainerNode"/>')
        r = await c.put(f"/{service}/nodes/{folder}", content=body)
        assert r.status_code == 201, r.text
        payload = os.urandom(4096)
        queue = list(range(count))

        async def worker(action) -> None:
            while queue:
                await action(queue.pop())

        async def put(i: int) -> None:
            r = await c.put(f"/{service}/files/{folder}/f{i}", content=payload)
            assert r.status_code == 201, r.text

        async def get(i: int) -> None:
            r = await c.get(f"/{service}/files/{folder}/f{i}", follow_redirects=True)
            assert r.status_code == 200 and r.content == payload, r.status_code

        rates = []
        for action in (put, get):
            queue[:] = range(count)
            start = time.perf_counter()
            await asyncio.gather(*(worker(action) for _ in range(concurrency)))
            rates.append(count / (time.perf_counter() - start))
        return rates[0], rates[1]


def uploads_in_a_row(server: Server, src: str, runs: int = 3) -> float:
    """Seconds for ``runs`` back-to-back durable uploads of ``src`` to new vault files."""
    auth = ["-H", f"Authorization: Bearer {server.tokens['alice']}"]
    return sum(curl("-T", src, *auth, f"{server.url}/vault/files/alice/row-{n}.bin")
               for n in range(runs))


def copies_queued(server: Server) -> int:
    status = server.vospace("copies", "status").stdout
    return int(status.split("backlog: ", 1)[1].split(" queued", 1)[0])


def copies_caught_up(server: Server, timeout: float = 900) -> float:
    """Seconds until the copy backlog is empty."""
    start = time.perf_counter()
    while copies_queued(server):
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the copies did not catch up")
        time.sleep(0.5)
    return time.perf_counter() - start


def copier_io(server: Server) -> int:
    """Bytes the copier thread (the server's one thread at nice 19) has read and written."""
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        if int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]) == 19:
            io = dict(line.split(": ") for line in (task / "io").read_text().splitlines())
            return int(io["rchar"]) + int(io["wchar"])
    raise RuntimeError("no copier thread found")


def settle(server: Server, pause: float = 2.0) -> None:
    """The same start for every block: no copy left to make, dirty pages written out, and
    a short pause, so no block pays for the writes of the one before it."""
    if "VOSPACE_BLOB_COPIES" in server.env:
        copies_caught_up(server)
    os.sync()
    time.sleep(pause)


def restart(server: Server, copies_dir: str | None) -> None:
    """Restart ``server`` with ``blob_copies`` (a local second store) or without."""
    server.stop()
    server.env.pop("VOSPACE_BLOB_COPIES", None)
    if copies_dir:
        server.env["VOSPACE_BLOB_COPIES"] = f"file://{copies_dir}#second"
    server.start()


def two_copies_met(root: str, src: str, size: int, pairs: int = 6) -> bool:
    """Acknowledged-upload throughput with two copies as a ratio to one copy: on target?

    Blocks of three uploads in a row (the copies of the first two are queued while the next
    ones upload), one block with one copy and one with two per pair. The two configurations
    take turns on two servers (restarted with or without ``blob_copies`` before each pair):
    A/A runs of two alike servers here showed one of them up to 30% faster throughout, and
    the second block of a pair ~8% slower, so each pair swaps the servers' configurations
    and every other pair the order of the blocks. Each block starts with no copies left to
    make. The figure: for each server, its best one-copy block over its best two-copy
    block (load from the rest of the machine only ever slows a block, so the best is the
    least disturbed), and the geometric mean of the two servers' ratios (which cancels
    whatever makes one server faster). The median of the pairs' ratios is shown beside it.
    During the two-copy blocks the copier thread's own I/O is measured: what it moved
    then is what the copies could have taken from the uploads."""
    servers = [make_server(root, users=("alice",)) for _ in range(2)]
    times: dict[tuple[int, str], list[float]] = {}
    ratios, queued, behind, copied = [], [], [], []
    try:
        for pair in range(pairs):
            config = ("one", "two") if pair % 2 == 0 else ("two", "one")  # server 0, 1
            for n, server in enumerate(servers):
                restart(server, os.path.join(root, f"copies-{n}") if config[n] == "two" else None)
            for n in (0, 1) if pair // 2 % 2 == 0 else (1, 0):
                settle(servers[n])
                before = copier_io(servers[n]) if config[n] == "two" else 0
                times.setdefault((n, config[n]), []).append(uploads_in_a_row(servers[n], src))
                if config[n] == "two":
                    copied.append(copier_io(servers[n]) - before)
                    queued.append(copies_queued(servers[n]))
                    behind.append(copies_caught_up(servers[n]))
            ratios.append(times[(config.index("one"), "one")][-1]
                          / times[(config.index("two"), "two")][-1])
    finally:
        for server in servers:
            server.stop()
    per_server = [min(times[(n, "one")]) / min(times[(n, "two")]) for n in (0, 1)]
    ratio = statistics.geometric_mean(per_server)
    for kind, label in (("one", "one copy: "), ("two", "two copies:")):
        best = min(min(times[(n, kind)]) for n in (0, 1))
        print(f"vault 3 uploads, {label} best {3 * size / best / 1e6:7.1f} MB/s")
    print(f"vault 3 uploads, two copies vs one: {ratio:.2f}x (best vs best on each server "
          f"{per_server[0]:.2f}x, {per_server[1]:.2f}x; the {pairs} pairs "
          f"{' '.join(f'{r:.2f}' for r in ratios)}, median {statistics.median(ratios):.2f}x) "
          f"target >= {COPIES_TARGET}: {'OK' if ratio >= COPIES_TARGET else 'MISSED'}")
    print(f"  the copier moved {' '.join(f'{c / 1e6:.0f}' for c in copied)} MB during the "
          f"two-copy blocks (of {6 * size / 1e6:.0f} MB read and written to copy all three): "
          f"it gives way to uploads; copies still queued at the last ack: "
          f"{' '.join(map(str, queued))} of 3, "
          f"all made {statistics.median(behind):.1f} s after it (median)")
    return record(f"vault 3 x {size >> 20} MiB uploads, two copies vs one", ratio,
                  COPIES_TARGET, note=f"best vs best on each server {per_server[0]:.2f}x, "
                  f"{per_server[1]:.2f}x; copier I/O during the uploads "
                  f"{max(copied) / 1e6:.0f} MB")


FITS_ARCSEC = 1.0  # pixel size of the benchmark image
CUTOUT_ARCMIN = 10.0


def fits_image(path: str, mib: int) -> tuple[float, float]:
    """A square float32 image of about ``mib`` MiB with a TAN WCS (1 arcsec pixels), written
    in chunks (random pixels); returns its centre (ra, dec)."""
    from astropy.wcs import WCS

    side = int(((mib << 20) // 4) ** 0.5)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [side / 2, side / 2]
    wcs.wcs.cdelt = [-FITS_ARCSEC / 3600, FITS_ARCSEC / 3600]
    cards = ["SIMPLE  =                    T", "BITPIX  =                  -32",
             "NAXIS   =                    2", f"NAXIS1  = {side:20d}", f"NAXIS2  = {side:20d}"]
    text = "".join(c.ljust(80) for c in cards) + wcs.to_header().tostring(endcard=False, padding=False) \
        + "END".ljust(80)
    with open(path, "wb") as fh:
        fh.write(text.encode().ljust(-(-len(text) // 2880) * 2880, b" "))
        left = side * side * 4
        while left:
            chunk = min(left, 16 << 20)
            fh.write(os.urandom(chunk))
            left -= chunk
        fh.write(b"\0" * (-fh.tell() % 2880))
    return 150.0, 2.0


def bytes_read(pid: int) -> int:
    """``rchar`` of the server process: every byte it read (files, pipes, sockets)."""
    with open(f"/proc/{pid}/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


def fits_cutout(server: Server, work: str, mib: int) -> None:
    """Item 4: the cutout vs the whole download, in time and in bytes read."""
    src = os.path.join(work, "big.fits")
    ra, dec = fits_image(src, mib)
    auth = ["-H", f"Authorization: Bearer {server.tokens['alice']}"]
    url = f"{server.url}/vault/files/alice/big.fits"
    curl("-T", src, *auth, url)
    os.unlink(src)
    radius = CUTOUT_ARCMIN / 2 / 60
    cutout = f"{url}?CIRCLE={ra}%20{dec}%20{radius}"
    pid = server.proc.pid
    curl(*auth, cutout)  # once before measuring: the server imports astropy on first use
    down_s = best(lambda: curl(*auth, url))
    before = bytes_read(pid)
    cut_s = best(lambda: curl(*auth, cutout))
    cut_b = (bytes_read(pid) - before) / 3
    # A download reads the whole file, from a mapping of it (rchar counts no such read).
    down_b = mib << 20
    print(f"vault {CUTOUT_ARCMIN:.0f}x{CUTOUT_ARCMIN:.0f} arcmin cutout of a {mib} MiB FITS "
          f"image: {cut_s:.3f} s, {cut_b / 1e6:.2f} MB read; whole download {down_s:.3f} s, "
          f"{down_b / 1e6:.1f} MB read; time = {cut_s / down_s:.4f}x, bytes read = "
          f"{cut_b / down_b:.5f}x the download's")


def copies_only(size_mib: int, pairs: int) -> int:
    root = tempfile.mkdtemp(prefix="vospace-bench-copies-")
    try:
        src = os.path.join(root, "big.bin")
        bulk_file(src, size_mib)
        return 0 if two_copies_met(root, src, size_mib << 20, pairs) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--services", default="vault,arc")
    parser.add_argument("--fits-mib", type=int, default=1024,
                        help="size of the FITS image for the cutout benchmark (0: skip it)")
    parser.add_argument("--copy-pairs", type=int, default=6,
                        help="pairs of blocks in the two-copies comparison (at least 2: "
                        "each of the two servers runs both configurations)")
    parser.add_argument("--only-downloads", action="store_true",
                        help="run only the download comparison")
    parser.add_argument("--only-copies", action="store_true",
                        help="run only the two-copies comparison")
    args = parser.parse_args()
    if args.copy_pairs < 2:
        parser.error("--copy-pairs must be at least 2: each of the two servers runs one "
                     "copy and two copies in turn, a pair each")
    if args.only_copies:
        return copies_only(args.size_mib, args.copy_pairs)
    if args.only_downloads:
        args.small = args.fits_mib = 0
    services = args.services.split(",")
    nginx = ensure_nginx()
    root = tempfile.mkdtemp(prefix="vospace-bench-transfer-")
    server = make_server(root, users=("alice",))
    plain_proc = nginx_proc = None
    misses = []
    try:
        plain_proc, plain_url = start_plain(server)
        src = os.path.join(root, "big.bin")
        bulk_file(src, args.size_mib)
        size = args.size_mib << 20

        # Upload: the limit of a hashed durable write, measured in the same rounds, is
        # the reference.
        token = server.tokens["alice"]
        md5 = subprocess.run(["md5sum", src], check=True, capture_output=True,
                             text=True).stdout.split()[0]
        bases = {"https": server.url, "http": plain_url}
        cert = os.path.join(server.data_dir, "tls-cert.pem")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        for service in services:
            path = f"{HOMES[service]}/big.bin"
            if args.only_downloads:  # the file to download, and no upload measured
                curl("-T", src, negotiated(server.url, token, service, path, push=True))
                continue
            for scheme, base in bases.items():
                url = negotiated(base, token, service, path, push=True)
                parts = upload_rounds(src, server.data_dir, url, md5,
                                      cert if scheme == "https" else None,
                                      server.proc.pid if scheme == "https" else plain_proc.pid)
                limit, by = parts.limit()
                print("upload limit parts (MB/s in each round): " + "; ".join(
                    f"{k} " + " ".join(f"{size / v / 1e6:.0f}" for v in values) for k, values in
                    (("dd conv=fsync", parts.fsync), ("dd oflag=direct", parts.direct),
                     ("md5sum", parts.md5), ("upload", parts.upload))))
                how = f"limit {size / limit / 1e6:.0f} MB/s = {by}"
                up, sink = min(parts.upload), min(parts.sink)
                ratio, paired = limit / up, parts.paired()
                # Receiving (TLS) and hashing take CPU both; with no core to spare they
                # run one after the other: the rate of that is what a busy machine allows.
                serial = size / (sink + min(parts.md5)) / 1e6
                # All the CPU the upload took (curl's and the server's), spread over every
                # core with none idle: no schedule of that work is faster.
                cores = size / (min(parts.upload_cpu) / os.cpu_count()) / 1e6
                print(f"{service:5} verified durable upload ({scheme:5}): "
                      f"{size / up / 1e6:8.1f} MB/s = {ratio:.2f}x the limit ({how}; "
                      f"target >= {UPLOAD_TARGET}; median of the rounds' own ratios "
                      f"{paired:.2f}x); curl into a receiver that drops the "
                      f"bytes: {size / sink / 1e6:.0f} MB/s; receiving then hashing, not "
                      f"overlapped: {serial:.0f} MB/s = {size / up / 1e6 / serial:.2f}x; "
                      f"client+server CPU {min(parts.upload_cpu):.2f} s = {cores:.0f} MB/s on "
                      f"{os.cpu_count()} cores with none idle")
                if not record(f"{service} {args.size_mib} MiB verified upload ({scheme}) vs limit",
                              ratio, UPLOAD_TARGET, note=f"{how}; median of rounds "
                              f"{paired:.2f}x; curl {scheme} into a sink "
                              f"{size / sink / 1e6:.0f} MB/s; sink then md5 {serial:.0f} MB/s; "
                              f"CPU-bound {cores:.0f} MB/s; load {os.getloadavg()[0]:.1f}"):
                    misses.append(f"{service} {scheme} upload")

        if "vault" in services and not args.only_downloads \
                and not two_copies_met(root, src, size, args.copy_pairs):
            misses.append("vault upload with two copies")

        # Download: nginx serves the very file arc stores, from the same disk.
        nginx_proc, nginx_ports = start_nginx(
            nginx, os.path.join(server.data_dir, "arc", "home", "alice"),
            os.path.join(server.data_dir, "tls-cert.pem"),
            os.path.join(server.data_dir, "tls-key.pem"), root)
        for scheme in ("https", "http"):
            urls = {"nginx": f"{scheme}://127.0.0.1:{nginx_ports[scheme]}/big.bin"}
            if scheme == "https":
                urls["nginx-aes128"] = f"https://127.0.0.1:{nginx_ports['aes128']}/big.bin"
            urls.update((service, negotiated(bases[scheme], token, service,
                                             f"{HOMES[service]}/big.bin", push=False))
                         for service in services)
            if scheme == "https":
                print("TLS: " + "; ".join(f"{name} {cipher_of(url)}" for name, url in urls.items()))
            times = interleaved(urls)
            ref = min(times["nginx"])
            print(f"nginx {scheme:5} download: {size / ref / 1e6:8.1f} MB/s")
            # For comparison only: how much of the lead is the cipher (nginx given the
            # same order of suites as ours), how much the rest.
            same_cipher = ""
            if "nginx-aes128" in times:
                ref128 = min(times["nginx-aes128"])
                print(f"nginx set to AES-128-GCM first: {size / ref128 / 1e6:8.1f} MB/s")
            for service in services:
                down = min(times[service])
                ratio = ref / down
                paired = statistics.median(n / s for n, s in zip(times["nginx"], times[service]))
                if "nginx-aes128" in times:
                    same_cipher = f"; {ref128 / down:.2f}x nginx set to AES-128-GCM first"
                print(f"{service:5} download ({scheme:5}): {size / down / 1e6:8.1f} MB/s  "
                      f"= {ratio:.2f}x nginx (target >= {DOWNLOAD_TARGET}); median of the "
                      f"{len(times[service])} rounds' own ratios {paired:.2f}x{same_cipher}")
                if not record(f"{service} {args.size_mib} MiB download ({scheme}) vs nginx", ratio,
                              DOWNLOAD_TARGET, note=f"nginx {size / ref / 1e6:.0f} MB/s; median "
                              f"of rounds {paired:.2f}x{same_cipher}; "
                              f"load {os.getloadavg()[0]:.1f}"):
                    misses.append(f"{service} {scheme} download")

        for service in services if args.small else ():
            up, down = asyncio.run(small_files(server, service, args.small))
            print(f"{service:5} {args.small} x 4 KiB: upload {up:7.0f} files/s, "
                  f"download {down:7.0f} files/s")
        if args.fits_mib and "vault" in services:
            os.unlink(src)  # room for the FITS image
            fits_cutout(server, root, args.fits_mib)
    finally:
        for proc in (nginx_proc, plain_proc):
            if proc is not None:
                proc.terminate()
                proc.wait()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    if misses:
        print("targets missed: " + ", ".join(misses))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
