"""``vospace serve --workers N``: N server processes sharing the main and data ports.

One Python process runs one thread of Python at a time, so one ``vospace serve`` keeps
about one core busy however many requests wait (README "Workers"). This supervisor binds
the listening sockets, one on each port per worker (``SO_REUSEPORT``), then starts N
ordinary ``vospace serve`` processes that accept from them (the kernel spreads new
connections over them). They share the database and the data directory exactly as
replicas behind a proxy do, so nothing else changes: UWS jobs, copies, snapshots and
local sessions are already claimed through the database. The supervisor serves nothing
itself: it forwards SIGTERM/SIGINT (each worker then finishes its requests within
``shutdown_timeout``), starts a worker again when one dies, and gives up (exit 1) when a
worker dies within ``CRASH_WINDOW`` seconds of its start, which is a broken configuration
rather than bad luck.

Prometheus counters and histograms are kept per process in files under a private
directory (prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), so
``/metrics`` from any worker reports the sum of all of them (metrics.py). Beside it, a
``WorkerBoard`` file (yielding.py) holds every worker's transfers in flight, so each
worker's blob copier gives way to the transfers of all of them, as they share the disk.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from prometheus_client import multiprocess

from .config import Settings
from .listeners import DATA_BACKLOG, MAIN_BACKLOG, listen
from .yielding import WorkerBoard

log = logging.getLogger("vospace.workers")
CRASH_WINDOW = 10.0  # seconds: a worker that dies sooner is not started again


def inherited(fds: str) -> tuple[socket.socket, socket.socket | None]:
    """The listening sockets a worker got from its supervisor (``--listen-fds MAIN[,DATA]``)."""
    numbers = [int(fd) for fd in fds.split(",")]
    main = socket.socket(fileno=numbers[0])
    return main, socket.socket(fileno=numbers[1]) if len(numbers) > 1 else None


def board_of(argument: str) -> WorkerBoard:
    """A worker's view of the transfers board (``--worker-board PATH:SLOT``)."""
    path, slot = argument.rsplit(":", 1)
    return WorkerBoard(path, int(slot))


def end_with_supervisor(supervisor: int) -> None:
    """In a worker: stop (SIGTERM to itself) when its supervisor (pid ``supervisor``) is
    gone, so a supervisor killed outright leaves no workers holding the ports. The pid is
    handed over rather than read here: a supervisor killed while this worker was still
    starting has already made it a child of another process."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


class Supervisor:
    def __init__(self, settings: Settings, serve_args: list[str]) -> None:
        self.settings = settings
        self.serve_args = serve_args  # ``vospace ... serve`` arguments of every worker
        # Per worker slot, its own socket on each port: one shared accept queue wakes the
        # most recently idle worker first, which took nearly every connection in a test;
        # SO_REUSEPORT sockets get the connections spread by the kernel. A slot keeps its
        # sockets across restarts, so connections queued meanwhile wait for the new worker.
        ports = [(settings.port, MAIN_BACKLOG)]
        ports += [(settings.data_port, DATA_BACKLOG)] if settings.data_port else []
        self.sockets = [[listen(settings.host, port, backlog, shared=True)
                         for port, backlog in ports] for _ in range(settings.workers)]
        self.shared_dir = self.metrics_dir = self.board = ""
        self.workers: dict[int, tuple[subprocess.Popen, float]] = {}  # slot -> (process, start)
        self.stopping = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.shared_dir = tempfile.mkdtemp(prefix=f"vospace-workers-{os.getpid()}-")
        self.metrics_dir = os.path.join(self.shared_dir, "metrics")
        os.mkdir(self.metrics_dir)
        self.board = os.path.join(self.shared_dir, "transfers")
        WorkerBoard.create(self.board, self.settings.workers)
        try:
            for slot in range(self.settings.workers):
                self._start(slot)
            return self._supervise()
        finally:
            self._stop_all()
            for sockets in self.sockets:
                for sock in sockets:
                    sock.close()
            shutil.rmtree(self.shared_dir, ignore_errors=True)

    def _start(self, slot: int) -> None:
        fds = [sock.fileno() for sock in self.sockets[slot]]
        argv = [sys.executable, "-m", "vospace_server.cli", *self.serve_args,
                "--workers", "1", "--listen-fds", ",".join(map(str, fds)),
                "--supervisor", str(os.getpid()), "--worker-board", f"{self.board}:{slot}"]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        # A process group of its own: a terminal's Ctrl-C reaches the supervisor only,
        # which stops the workers in order.
        proc = subprocess.Popen(argv, pass_fds=fds, env=env, process_group=0)
        self.workers[slot] = (proc, time.monotonic())

    def _supervise(self) -> int:
        while not self.stopping.wait(0.2):
            for slot, (proc, started) in list(self.workers.items()):
                if proc.poll() is None:
                    continue
                multiprocess.mark_process_dead(proc.pid, self.metrics_dir)
                WorkerBoard.clear(self.board, slot)
                if time.monotonic() - started < CRASH_WINDOW:
                    log.error("worker %d (pid %d) ended with status %s within %.0f s of its "
                              "start; stopping", slot, proc.pid, proc.returncode, CRASH_WINDOW)
                    return 1
                log.warning("worker %d (pid %d) ended with status %s; starting another",
                            slot, proc.pid, proc.returncode)
                self._start(slot)
        return 0

    def _stop_all(self) -> None:
        """SIGTERM to every worker; those still running after the shutdown timeout (and a
        few seconds to exit) are killed."""
        procs = [proc for proc, _ in self.workers.values() if proc.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + 5
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
