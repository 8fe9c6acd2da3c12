"""Real servers for tests and benchmarks: `vospace serve` subprocesses and a PostgreSQL cluster.

Nothing here is a stand-in: the server is the installed console script under uvicorn on
127.0.0.1, with TLS, and PostgreSQL is Debian's, in a throwaway cluster.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
VOSPACE = str(Path(sys.executable).parent / "vospace")
CADC_BIN = REPO / ".cadc-venv" / "bin"
CANFAR_BIN = REPO / ".canfar-venv" / "bin"


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all are held open until every one is chosen, as two
    calls one after the other may be handed the same port."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def wait_for(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        httpx.get(url, verify=False, timeout=2)
        return True
    wait_until(answers, timeout, f"{url} to answer", retry=(httpx.HTTPError,))


@dataclass
class Server:
    """A running `vospace serve` process and the tokens of its test users."""

    data_dir: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    tls: bool = True  # off behind a TLS-ending balancer (tests/cluster.py)
    data_port: int = 0  # the data port for pre-authorized transfers (0: none)
    workers: int = 1    # vospace serve --workers

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def vospace(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([VOSPACE, "--data-dir", self.data_dir, *args], env=self.env,
                              capture_output=True, text=True, timeout=120, input=stdin)

    def add_user(self, name: str, admin: bool = False) -> str:
        args = ["token", "create", name] + (["--admin"] if admin else [])
        result = self.vospace(*args)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        self.tokens[name] = result.stdout.strip()
        return self.tokens[name]

    def add_project(self, *members: str) -> tuple[str, str]:
        """A fresh project (arc and vault) shared with a fresh group of ``members``, made
        by the administrator as an operator would: (project name, group name)."""
        name = f"p{uuid.uuid4().hex[:8]}"
        group = f"g-{name}"
        result = self.vospace("project", "create", name, "--group", group)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        with self.client("admin") as admin:
            for member in members:
                r = admin.put(f"/ac/groups/{group}/userMembers/{member}")
                if r.status_code not in (200, 201):
                    raise RuntimeError(r.text)
        return name, group

    def start(self) -> "Server":
        self.log_path = os.path.join(self.data_dir, "server.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [VOSPACE, "--data-dir", self.data_dir, "serve", *(["--tls"] if self.tls else []),
             "--port", str(self.port), "--log-level", "warning",
             *(["--data-port", str(self.data_port)] if self.data_port else []),
             *(["--workers", str(self.workers)] if self.workers > 1 else [])],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(f"{self.url}/reg/resource-caps", proc=self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, user: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=False, timeout=60, **kwargs)


def make_server(root: str, database_url: str | None = None,
                users: tuple[str, ...] = ("alice", "bob"),
                extra_env: dict[str, str] | None = None, workers: int = 1) -> Server:
    data_dir = tempfile.mkdtemp(prefix="vospace-", dir=root)
    env = dict(os.environ)
    env.pop("VOSPACE_CONFIG", None)
    if database_url:
        env["VOSPACE_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    # With a data port, as `make run` serves: negotiated transfers move their bytes there.
    port, data_port = free_ports(2)
    server = Server(data_dir=data_dir, port=port, env=env, data_port=data_port,
                    workers=workers)
    server.add_user("admin", admin=True)
    for user in users:
        server.add_user(user)
    return server.start()


def requests_total(server: Server, service: str, endpoint: str, method: str = "GET",
                   status: str | None = None) -> float:
    """How many requests the server counted in /metrics for ``endpoint`` ("files", or
    "preauth": a pre-authorized URL, the data port's or the main port's) of ``service``."""
    with server.client("admin") as admin:
        metrics = admin.get("/metrics").text
    labels = [f'service="{service}"', f'endpoint="{endpoint}"', f'method="{method}"']
    labels += [f'status="{status}"'] if status else []
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("vospace_requests_total{") and all(l in line for l in labels))


class PostgresCluster:
    """A throwaway PostgreSQL cluster (Debian's binaries) owned by the postgres user."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = os.path.dirname(bins[-1])
        # Not under pytest's tmp dir: the postgres user cannot traverse root's 0700 folders.
        self.dir = tempfile.mkdtemp(prefix="vospace-pg-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self._as_postgres([f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-A", "trust",
                           "-U", "postgres", "--no-sync"])
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after ``pause``) on the same port and data."""
        self._as_postgres([f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-w", "-l",
                           f"{self.dir}/pg.log", "-o",
                           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                           f"-c fsync=on -c max_connections=200", "start"])

    def pause(self) -> None:
        """Stop the server but keep its data, as an outage the clients must ride out."""
        self._as_postgres([f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-w", "-m", "fast",
                           "stop"])

    @staticmethod
    def _as_postgres(cmd: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + cmd, check=True, capture_output=True, timeout=120)

    def create_database(self) -> str:
        import psycopg

        name = "vs_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._as_postgres([f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate",
                           "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)
