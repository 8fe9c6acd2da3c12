"""A test deployment on this machine: nginx (Debian's nginx-light, TLS ended there) in front
of several `vospace serve` replicas that share one PostgreSQL, one S3 server (moto in
server mode) for vault's bytes and one arc directory, as docker/compose.yaml runs them.

nginx is configured from the very template compose uses (docker/nginx/vospace.conf.template).
Used by tests/test_replicas.py and bench/scale.py.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from .harness import REPO, PostgresCluster, Server, free_port, free_ports, wait_for
from vospace_server.tls import ensure_self_signed

NGINX_TEMPLATE = REPO / "docker" / "nginx" / "vospace.conf.template"
BUCKET = "vault-blobs"
NGINX_MAIN = """
{user}
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    {http}
}}
"""


def run_nginx(work: str, http: str, ready_url: str, workers: int = 2,
              nginx: str | None = None) -> subprocess.Popen:
    """nginx in the foreground with everything in ``work`` and ``http`` inside its http
    block; returns once ``ready_url`` answers."""
    # As root, workers must read 0700 folders (data dirs, certificates) as the server does.
    user = "user root;" if os.geteuid() == 0 else ""
    Path(work, "nginx.conf").write_text(NGINX_MAIN.format(user=user, dir=work, http=http,
                                                          workers=workers))
    nginx = nginx or shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", f"{work}/nginx.conf", "-p", work])
    wait_for(ready_url, proc=proc)
    return proc


def start_moto() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free loopback port: (process, endpoint URL)."""
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(url, proc=proc)
    return proc, url


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _servers(ports: list[int]) -> str:
    return " ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)


class Balancer:
    """nginx balancing ``ports`` (plain HTTP replicas; pre-authorized transfers to their
    ``data_ports``) behind TLS on a free port."""

    def __init__(self, work: str, ports: list[int], data_ports: list[int]) -> None:
        self.work = work
        self.port = free_port()
        cert, key = ensure_self_signed(work, ["127.0.0.1", "*.sessions.localhost"])
        values = {"UPSTREAM_SERVERS": _servers(ports), "DATA_UPSTREAM_SERVERS": _servers(data_ports),
                  "LISTEN": f"127.0.0.1:{self.port} ssl", "TLS_CERT": cert, "TLS_KEY": key}
        # What the nginx image's envsubst does: braced names only ($http_host is nginx's).
        conf = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], NGINX_TEMPLATE.read_text())
        Path(work, "vospace.conf").write_text(conf)
        self.proc = run_nginx(work, f"include {work}/vospace.conf;",
                              f"{self.url}/reg/resource-caps")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.proc)


class Cluster:
    """N replicas (own data dirs, like pods) + PostgreSQL + moto S3 (or, ``s3=False``, one
    shared blob folder) + one arc dir + nginx."""

    def __init__(self, replicas: int = 2, users: tuple[str, ...] = ("alice", "bob"),
                 postgres: PostgresCluster | None = None, s3: bool = True) -> None:
        self.root = tempfile.mkdtemp(prefix="vospace-cluster-")
        self._own_postgres = postgres is None
        self.postgres = postgres or PostgresCluster()
        self.moto: subprocess.Popen | None = None
        self.replicas: list[Server] = []
        self.balancer: Balancer | None = None
        self.via: list[Balancer] = []  # one nginx per replica: "write through this one"
        try:
            self._start(replicas, users, s3)
        except BaseException:
            self.stop()
            raise

    def _start(self, count: int, users: tuple[str, ...], s3: bool) -> None:
        chosen = free_ports(2 * count)  # each replica's main port and data port, all distinct
        ports, data_ports = chosen[:count], chosen[count:]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VOSPACE_")}
        if s3:
            self.moto, self.s3_endpoint = start_moto()
            self.env.update({"VOSPACE_BLOB_URL": f"s3://{BUCKET}/blobs",
                             "VOSPACE_S3_ENDPOINT_URL": self.s3_endpoint,
                             "VOSPACE_S3_ACCESS_KEY": "test", "VOSPACE_S3_SECRET_KEY": "test",
                             "VOSPACE_S3_REGION": "us-east-1"})
        else:  # one blob folder shared by the replicas, as a shared filesystem would be
            self.env["VOSPACE_BLOB_DIR"] = os.path.join(self.root, "blobs")
        self.env.update({
            "VOSPACE_DATABASE_URL": self.postgres.create_database(),
            "VOSPACE_ARC_ROOT": os.path.join(self.root, "arc"),
            "VOSPACE_SNAPSHOT_DIR": os.path.join(self.root, "arc-snapshots"),
            # Shared by every replica, as a file (how container secrets arrive).
            "VOSPACE_PREAUTH_SECRET_FILE": self._secret_file("preauth-secret"),
        })
        self.replicas = [Server(data_dir=tempfile.mkdtemp(prefix="replica-", dir=self.root),
                                port=port, env=dict(self.env), tls=False, data_port=data_port)
                         for port, data_port in zip(ports, data_ports)]
        first = self.replicas[0]
        first.add_user("admin", admin=True)
        for user in users:
            first.add_user(user)
        for replica in self.replicas:
            replica.tokens = first.tokens
        for replica in self.replicas:
            replica.start()
        # No public_url: each answer names the balancer it came through (Host header and
        # X-Forwarded-Proto), so a URL made through one replica can be sent to the other.
        self.balancer = Balancer(self._folder("lb"), ports, data_ports)
        self.via = [Balancer(self._folder(f"lb{i}"), [p], [d])
                    for i, (p, d) in enumerate(zip(ports, data_ports))]

    def _secret_file(self, name: str) -> str:
        path = os.path.join(self.root, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        return path

    def _folder(self, name: str) -> str:
        path = os.path.join(self.root, name)
        os.makedirs(path)
        return path

    @property
    def tokens(self) -> dict[str, str]:
        return self.replicas[0].tokens

    @property
    def url(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    def client(self, user: str | None = "alice", via: int | None = None,
               **kwargs) -> httpx.Client:
        """A client of the balancer (TLS, self-signed), or of replica ``via`` only."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        url = self.url if via is None else self.via[via].url
        return httpx.Client(base_url=url, headers=headers, verify=False, timeout=60, **kwargs)

    def vospace(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """The ``vospace`` command with the replicas' shared settings."""
        return self.replicas[-1].vospace(*args, stdin=stdin)

    def kill(self, index: int) -> None:
        replica = self.replicas[index]
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGKILL)
            replica.proc.wait()

    def stop(self) -> None:
        for balancer in [self.balancer, *self.via]:
            if balancer is not None:
                balancer.stop()
        for replica in self.replicas:
            replica.stop()
        stop(self.moto)
        if self._own_postgres:
            self.postgres.stop()
        shutil.rmtree(self.root, ignore_errors=True)
