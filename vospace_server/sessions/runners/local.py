"""The local runner: each session a bubblewrap sandbox on this host (see sandbox.py).

Each server process has one supervisor thread. It spawns the sandboxes (bubblewrap's
``--die-with-parent`` follows the thread that forked it, so that must be a thread that
lives as long as the process), reaps them, and ends them when their row asks for it: a
``stop_reason`` set by a DELETE in any process, or the expiry passing. Ending a session,
however it ends (exit, delete, expiry, server shutdown), kills every process of its cgroup
and removes its ``/scratch``. A process that finds a session whose supervising process is
gone (a crash, ``kill -9``) cleans it up the same way and marks it Failed, so a restart
neither loses a session's row nor leaves its sandbox or scratch behind.

Files of a session, in ``<session_dir>/<id>/`` (mode 0700, never inside a sandbox):
``scratch/`` (bound at /scratch), ``app/`` (bound at /run/session: an interactive app's
socket), ``passwd``, ``group``, ``output.log`` (stdout+stderr, ``view=logs``).

The seam for interactive sessions: the image's command gets ``{socket}`` = the app's unix
socket, or it serves on ``$PORT`` behind port_bridge.py (sandbox.app_command); the session
stays Pending until something accepts connections on the socket, and ``app_endpoint`` gives
the proxy its host path.
"""
from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import struct
import subprocess
import time
from concurrent.futures import Future

from ...background import BackgroundLoop
from ...config import Settings
from ...storage.jobs import runner_dead, runner_identity
from ..catalogue import Image
from ..errors import BadRequest
from ..model import FAILED, HEADLESS, PENDING, RUNNING, SUCCEEDED, TERMINATING, Session
from ..store import SessionStore
from . import LaunchSpec
from .limits import make_limits
from .sandbox import (BWRAP, ENV, ROOT_ENV, SETPRIV, SandboxPaths, app_command, bwrap_argv,
                      sandbox_env)

log = logging.getLogger("vospace.sessions")

TICK = 0.2             # supervisor loop period, s
USAGE_EVERY = 5.0      # s between resource-usage samples written to the rows
SWEEP_EVERY = 10.0     # s between orphan/expired-row sweeps
STOP_WAIT = 15.0       # s a DELETE waits for the session to be gone
SPAWN_GRACE = 60.0     # a row with no supervisor after this long was never started
LOG_TAIL = 16 * 2**20  # view=logs answers at most the last 16 MiB
SYSTEM_ID_MAX = 999    # host accounts copied into the session's passwd/group


def _system_lines(path: str, max_id: int = SYSTEM_ID_MAX) -> list[str]:
    """The host's system accounts (root, daemon, nobody...) so their files show names."""
    lines = []
    with open(path) as fh:
        for line in fh:
            parts = line.rstrip("\n").split(":")
            if len(parts) > 2 and parts[2].isdigit() and (int(parts[2]) <= max_id
                                                          or int(parts[2]) == 65534):
                lines.append(":".join(parts))
    return lines


def _write_lines(path: str, lines: list[str]) -> None:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "w") as fh:
        fh.write("".join(line + "\n" for line in lines))


class LocalRunner(BackgroundLoop):
    name = "local"
    thread_name = "session-supervisor"

    def __init__(self, store: SessionStore, settings: Settings) -> None:
        super().__init__()
        self.store = store
        self.base = settings.session_dir
        self.arc_root = settings.arc_root
        self.finished_ttl = settings.session_finished_ttl
        self.log_max = settings.session_log_max_mb * 2**20
        self.limits = make_limits(settings.session_cgroup_root)
        self.me = runner_identity()
        self.procs: dict[str, subprocess.Popen] = {}
        self._launches: queue.Queue[tuple[LaunchSpec, Future]] = queue.Queue()
        self._cpu: dict[str, tuple[float, int]] = {}
        os.makedirs(self.base, mode=0o700, exist_ok=True)
        os.chmod(self.base, 0o700)

    # -- the Runner interface -------------------------------------------------------------
    def check(self, image: Image, session_type: str) -> None:
        missing = [os.path.basename(p) for p in (BWRAP, SETPRIV, ENV)
                   if not os.access(p, os.X_OK)]
        missing += image.missing_software()
        if missing:
            raise BadRequest(f"image {image.id} cannot run on this server: "
                             f"{', '.join(missing)} not installed")

    def launch(self, spec: LaunchSpec) -> None:
        done: Future = Future()
        self._launches.put((spec, done))
        done.result(timeout=120)

    def end(self, session: Session, reason: str, forget: bool) -> None:
        marked = self.store.update(session.id, event=f"Terminating: {reason}",
                                   status=TERMINATING, stop_reason=reason, discard=forget)
        if not marked:  # already finished
            if forget:
                self._forget(session)
            return
        if session.runner_id is not None and runner_dead(session.runner_id, self.me):
            self._end_orphan(self.store.get(session.id) or session)
            return
        deadline = time.monotonic() + STOP_WAIT  # the supervising process ends it
        while time.monotonic() < deadline:
            current = self.store.get(session.id)
            if current is None or not current.active:
                return
            time.sleep(0.05)

    def renew(self, session: Session, expiry: float) -> None:
        """Nothing to tell: the supervisor reads the expiry from the row."""

    def logs(self, session: Session) -> bytes:
        if not session.workdir:
            return b""
        try:
            with open(os.path.join(session.workdir, "output.log"), "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - LOG_TAIL))
                return fh.read()
        except FileNotFoundError:
            return b""

    def events(self, session: Session) -> list[str]:
        return []

    def app_endpoint(self, session: Session) -> str | None:
        """``unix:<path>``; connect with ``connect_unix`` (the path may be too long for a
        socket address, and the listener must be checked to be the session's user)."""
        if session.status != RUNNING or not session.interactive:
            return None
        return "unix:" + os.path.join(self._workdir(session), "app", "app.sock")

    def start(self) -> None:
        self.sweep()
        super().start()

    def close(self) -> None:
        """Stop supervising; every session this process runs ends (Failed), scratch removed."""
        self.stop()
        for session_id in list(self.procs):
            session = self.store.get(session_id)
            if session is not None:
                self._end(session, FAILED, "Failed: the server stopped")

    # -- supervisor thread ----------------------------------------------------------------
    def _loop(self) -> None:
        last_usage = last_sweep = time.monotonic()
        while not self._stop.is_set():
            try:
                spec, done = self._launches.get(timeout=TICK)
            except queue.Empty:
                spec = None
            try:
                if spec is not None:
                    self._spawn_reporting(spec, done)
                    continue
                self._tick()
                if time.monotonic() - last_usage > USAGE_EVERY:
                    self._measure()
                    last_usage = time.monotonic()
                if time.monotonic() - last_sweep > SWEEP_EVERY:
                    self.sweep()
                    last_sweep = time.monotonic()
            except Exception:  # keep supervising through a database hiccup
                log.exception("session supervisor")

    def _spawn_reporting(self, spec: LaunchSpec, done: Future) -> None:
        try:
            self._spawn(spec)
        except Exception as exc:  # the sandbox could not start: the session fails, visibly
            log.exception("session %s could not start", spec.session.id)
            self._end(self.store.get(spec.session.id) or spec.session, FAILED,
                      f"Failed: the sandbox could not start: {exc}")
        finally:
            done.set_result(None)

    def _spawn(self, spec: LaunchSpec) -> None:
        session = spec.session
        workdir = self._workdir(session)
        os.mkdir(workdir, 0o700)
        session.workdir, session.runner_id = workdir, self.me
        paths = SandboxPaths(self.arc_root, os.path.join(workdir, "scratch"),
                             os.path.join(workdir, "app"), os.path.join(workdir, "passwd"),
                             os.path.join(workdir, "group"))
        for private in (paths.scratch, paths.app_dir):
            os.mkdir(private, 0o700)
            os.chown(private, session.uid, session.gid)
        _write_lines(paths.passwd, _system_lines("/etc/passwd") + spec.passwd)
        _write_lines(paths.group, _system_lines("/etc/group") + spec.group)
        self.limits.create(session.id, session.cores_limit, session.ram_limit * 2**30)
        command, env = spec.command, dict(spec.env)  # a headless command: data, never rewritten
        if session.interactive:
            command, app_env = app_command(command, session.id, session.owner)
            env.update(app_env)
        argv = bwrap_argv(paths, session.owner, session.name.lower(), session.uid,
                          session.gid, session.groups, sandbox_env(session.owner, env),
                          command, session.interactive, spec.image.software)
        log_fd = os.open(os.path.join(workdir, "output.log"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd,
                                    stderr=subprocess.STDOUT, close_fds=True,
                                    env=ROOT_ENV,
                                    start_new_session=True,
                                    preexec_fn=lambda: self.limits.join(session.id))
        finally:
            os.close(log_fd)
        self.procs[session.id] = proc
        limits = f"{session.cores_limit} cores, {session.ram_limit}G ({self.limits.kind})"
        # One write: if this process dies before it, bubblewrap dies with it and the sweep
        # of the next start finds the row without a supervisor (SPAWN_GRACE).
        started = dict(workdir=workdir, runner_id=self.me)
        if session.type == HEADLESS:
            self.store.update(session.id, event=f"Started: sandbox pid {proc.pid}, {limits}",
                              status=RUNNING, **started)
        else:
            self.store.update(session.id, event=f"Started: sandbox pid {proc.pid}, {limits}; "
                                                f"waiting for the app to answer", **started)

    def _tick(self) -> None:
        for session_id, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            session = self.store.get(session_id)
            if session is None:
                self.procs.pop(session_id)
                continue
            if self.limits.oom_killed(session_id):
                self._end(session, FAILED, f"Failed: OOMKilled: the session used more than "
                                           f"its {session.ram_limit}G memory limit")
            elif session.stop_reason:
                self._end(session, FAILED, f"Failed: {session.stop_reason}")
            elif code == 0:
                self._end(session, SUCCEEDED, "Succeeded: exited with code 0")
            else:
                self._end(session, FAILED, f"Failed: exited with code {code}")
        now = time.time()
        for session in self.store.active(self.me):
            if session.id not in self.procs:
                continue
            if session.stop_reason:
                self._end(session, FAILED, f"Failed: {session.stop_reason}")
            elif session.expired(now):
                self._end(session, FAILED, "Failed: DeadlineExceeded: the session reached "
                                           "its expiry time")
            elif session.status == PENDING and self._app_answers(session):
                self.store.update(session.id, event="Running: the app answers", status=RUNNING)

    def _app_answers(self, session: Session) -> bool:
        try:
            path = os.path.join(self._workdir(session), "app", "app.sock")
            connect_unix(path, 0.2, session.uid).close()
        except OSError:
            return False
        return True

    def _measure(self) -> None:
        now = time.monotonic()
        for session_id in list(self.procs):
            _bound_log(os.path.join(self.base, session_id, "output.log"), self.log_max)
            ram, cpu_ns = self.limits.usage(session_id)
            cores = None
            if cpu_ns is not None:
                before = self._cpu.get(session_id)
                if before is not None and now > before[0]:
                    cores = max(0.0, (cpu_ns - before[1]) / 1e9 / (now - before[0]))
                self._cpu[session_id] = (now, cpu_ns)
            self.store.update(session_id, ram_in_use=ram, cpu_in_use=cores)

    def sweep(self) -> None:
        """End sessions whose supervising process is gone; drop long-finished rows."""
        now = time.time()
        for session in self.store.active():
            if session.runner != self.name or session.id in self.procs:
                continue
            never_started = session.runner_id is None and now - session.created > SPAWN_GRACE
            if never_started or (session.runner_id is not None
                                 and runner_dead(session.runner_id, self.me)):
                self._end_orphan(session)
        for session in self.store.finished_before(now - self.finished_ttl):
            if session.runner == self.name:
                self._forget(session)

    # -- ending ---------------------------------------------------------------------------
    def _end_orphan(self, session: Session) -> None:
        log.warning("session %s: its server process %s is gone; ending it",
                    session.id, session.runner_id)
        self._end(session, FAILED, "Failed: the server process running this session stopped")

    def _end(self, session: Session, status: str, event: str) -> None:
        """Kill everything of the session, remove its scratch, record how it ended."""
        proc = self.procs.pop(session.id, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.limits.remove(session.id)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("session %s: sandbox pid %s did not exit", session.id, proc.pid)
        self._cpu.pop(session.id, None)
        for private in ("scratch", "app"):
            shutil.rmtree(os.path.join(self._workdir(session), private), onerror=_log_rm_error)
        if session.discard:
            self._forget(session)
        else:
            self.store.update(session.id, event=event, status=status, ended=time.time(),
                              ram_in_use=None, cpu_in_use=None)

    def _forget(self, session: Session) -> None:
        self.store.delete(session.id)
        shutil.rmtree(self._workdir(session), onerror=_log_rm_error)

    def _workdir(self, session: Session) -> str:
        """Where the session's files are (also before its row says so)."""
        return session.workdir or os.path.join(self.base, session.id)


def connect_unix(path: str, timeout: float, uid: int) -> socket.socket:
    """A connection to the session app's unix socket at ``path``, listened on by ``uid``.

    The folder is the user's: the name may be a symlink to any socket root can reach (a
    daemon's, another user's app), so the listener's credentials (SO_PEERCRED, fixed when
    it listened) must be the session user's, or the connection is refused (PermissionError).
    Socket addresses stop at 108 bytes: the folder is reached as ``/proc/self/fd/N``."""
    folder = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(timeout)
        sock.connect(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != uid:
            raise PermissionError(f"{path} is not a socket of uid {uid}")
    except BaseException:
        sock.close()
        raise
    finally:
        os.close(folder)
    return sock


def _bound_log(path: str, limit: int) -> None:
    """A session writing without end must not fill the disk: past ``limit`` bytes its
    output file is emptied (the sandbox appends, so it goes on at the new end) and says so.
    Checked every USAGE_EVERY seconds."""
    try:
        if os.path.getsize(path) <= limit:
            return
        with open(path, "r+b") as fh:
            fh.truncate(0)
            fh.write(f"[output cut: more than {limit // 2**20} MiB]\n".encode())
    except FileNotFoundError:
        pass


def _log_rm_error(function, path, exc_info) -> None:
    if not isinstance(exc_info[1], FileNotFoundError):
        log.error("could not remove %s: %s", path, exc_info[1])
