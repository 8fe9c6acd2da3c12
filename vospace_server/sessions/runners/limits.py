"""Cores and memory limits of a local sandbox: cgroups v1 or v2, else rlimits.

One cgroup per session (``<root>/<controller>/vospace-sessions/<id>`` on v1,
``<root>/vospace-sessions/<id>`` on v2). The sandbox joins it between fork and exec
(``join``, run in the child: only raw ``os`` calls, which are safe there), so the sandbox
and everything it starts are in it from the first instruction; the session's processes are
then exactly the cgroup's members, which is how they are killed (never by name) and measured.
Without writable cgroups the memory limit becomes ``RLIMIT_AS`` and cores are not limited.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import time
from typing import Protocol

log = logging.getLogger("vospace.sessions")

PARENT = "vospace-sessions"
CFS_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
MAX_PIDS = 4096


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Limits(Protocol):
    """How one session's processes are confined, found, measured and removed."""

    kind: str

    def create(self, session_id: str, cores: int, ram_bytes: int) -> None: ...
    def join(self, session_id: str) -> None: ...
    def pids(self, session_id: str) -> list[int]: ...
    def usage(self, session_id: str) -> tuple[int | None, int | None]: ...
    def oom_killed(self, session_id: str) -> bool: ...
    def remove(self, session_id: str) -> None: ...


class CgroupV1:
    kind = "cgroup v1"

    def __init__(self, root: str) -> None:
        self.root = root

    def _dir(self, controller: str, session_id: str) -> str:
        return os.path.join(self.root, controller, PARENT, session_id)

    @classmethod
    def available(cls, root: str) -> bool:
        return all(os.access(os.path.join(root, c), os.W_OK) for c in V1_CONTROLLERS)

    def create(self, session_id: str, cores: int, ram_bytes: int) -> None:
        for controller in V1_CONTROLLERS:
            os.makedirs(self._dir(controller, session_id), exist_ok=True)
        memory = self._dir("memory", session_id)
        _write(os.path.join(memory, "memory.limit_in_bytes"), str(ram_bytes))
        swap = os.path.join(memory, "memory.memsw.limit_in_bytes")
        if os.path.exists(swap):  # memory + swap == memory: no swapping past the limit
            _write(swap, str(ram_bytes))
        cpu = self._dir("cpu", session_id)
        _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
        _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(cores * CFS_PERIOD_US))
        _write(os.path.join(self._dir("pids", session_id), "pids.max"), str(MAX_PIDS))

    def join(self, session_id: str) -> None:
        pid = str(os.getpid()).encode()
        for controller in V1_CONTROLLERS:
            fd = os.open(os.path.join(self._dir(controller, session_id), "cgroup.procs"),
                         os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self, session_id: str) -> list[int]:
        return _members(os.path.join(self._dir("pids", session_id), "cgroup.procs"))

    def usage(self, session_id: str) -> tuple[int | None, int | None]:
        memory = _read_int(os.path.join(self._dir("memory", session_id), "memory.usage_in_bytes"))
        cpu_ns = _read_int(os.path.join(self._dir("cpuacct", session_id), "cpuacct.usage"))
        return memory, cpu_ns

    def oom_killed(self, session_id: str) -> bool:
        oom_control = os.path.join(self._dir("memory", session_id), "memory.oom_control")
        return int(_key_values(oom_control).get("oom_kill", "0")) > 0

    def remove(self, session_id: str) -> None:
        kill_members(self, session_id)
        for controller in V1_CONTROLLERS:
            _rmdir(self._dir(controller, session_id))


class CgroupV2:
    kind = "cgroup v2"

    def __init__(self, root: str) -> None:
        self.root = root

    def _dir(self, session_id: str) -> str:
        return os.path.join(self.root, PARENT, session_id)

    @classmethod
    def available(cls, root: str) -> bool:
        return os.path.exists(os.path.join(root, "cgroup.controllers")) and os.access(root, os.W_OK)

    def create(self, session_id: str, cores: int, ram_bytes: int) -> None:
        parent = os.path.join(self.root, PARENT)
        os.makedirs(parent, exist_ok=True)
        for level in (self.root, parent):
            _write(os.path.join(level, "cgroup.subtree_control"), "+memory +cpu +pids")
        path = self._dir(session_id)
        os.makedirs(path, exist_ok=True)
        _write(os.path.join(path, "memory.max"), str(ram_bytes))
        if os.path.exists(os.path.join(path, "memory.swap.max")):
            _write(os.path.join(path, "memory.swap.max"), "0")
        _write(os.path.join(path, "cpu.max"), f"{cores * CFS_PERIOD_US} {CFS_PERIOD_US}")
        _write(os.path.join(path, "pids.max"), str(MAX_PIDS))

    def join(self, session_id: str) -> None:
        fd = os.open(os.path.join(self._dir(session_id), "cgroup.procs"), os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def pids(self, session_id: str) -> list[int]:
        return _members(os.path.join(self._dir(session_id), "cgroup.procs"))

    def usage(self, session_id: str) -> tuple[int | None, int | None]:
        memory = _read_int(os.path.join(self._dir(session_id), "memory.current"))
        cpu_us = _key_values(os.path.join(self._dir(session_id), "cpu.stat")).get("usage_usec")
        return memory, None if cpu_us is None else int(cpu_us) * 1000

    def oom_killed(self, session_id: str) -> bool:
        events = os.path.join(self._dir(session_id), "memory.events")
        return int(_key_values(events).get("oom_kill", "0")) > 0

    def remove(self, session_id: str) -> None:
        kill_members(self, session_id)
        _rmdir(self._dir(session_id))


class Rlimits:
    """No writable cgroups: memory as RLIMIT_AS of the sandbox; the sandbox's pid
    namespace (bubblewrap ``--die-with-parent``) is then what ends its processes."""

    kind = "rlimits"

    def __init__(self) -> None:
        self._ram: dict[str, int] = {}

    def create(self, session_id: str, cores: int, ram_bytes: int) -> None:
        self._ram[session_id] = ram_bytes

    def join(self, session_id: str) -> None:
        ram = self._ram[session_id]
        resource.setrlimit(resource.RLIMIT_AS, (ram, ram))

    def pids(self, session_id: str) -> list[int]:
        return []

    def usage(self, session_id: str) -> tuple[int | None, int | None]:
        return None, None

    def oom_killed(self, session_id: str) -> bool:
        return False

    def remove(self, session_id: str) -> None:
        self._ram.pop(session_id, None)


def _key_values(path: str) -> dict[str, str]:
    """A cgroup ``key value`` per line file (memory.events, cpu.stat, memory.oom_control)."""
    try:
        with open(path) as fh:
            return dict(line.split()[:2] for line in fh if len(line.split()) >= 2)
    except OSError:
        return {}


def _members(procs_file: str) -> list[int]:
    try:
        with open(procs_file) as fh:
            return [int(line) for line in fh if line.strip()]
    except OSError:
        return []


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def kill_members(limits: Limits, session_id: str, timeout: float = 10.0) -> None:
    """SIGKILL every process of the session's cgroup until none is left."""
    deadline = time.monotonic() + timeout
    while (pids := limits.pids(session_id)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def make_limits(cgroup_root: str) -> Limits:
    """cgroups v2 if the root is a unified hierarchy, v1 if its controllers are writable,
    else rlimits (``session_cgroup_root = ""`` forces rlimits). The cgroup kinds are tried
    for real (a probe group is made and removed): inside a container a v2 hierarchy often
    refuses to delegate controllers, and sessions must then still run."""
    for kind in (CgroupV2, CgroupV1):
        if cgroup_root and kind.available(cgroup_root):
            limits = kind(cgroup_root)
            probe = f"probe-{os.getpid()}"
            try:
                limits.create(probe, 1, 64 * 2**20)
                limits.remove(probe)
                return limits
            except OSError as exc:
                log.warning("%s at %s cannot be used (%s); trying the next", limits.kind,
                            cgroup_root, exc)
    log.warning("sessions: no usable cgroups; memory limits by RLIMIT_AS, cores unlimited")
    return Rlimits()
