"""The bubblewrap command line of a local session (a pure function of the session's paths).

Inside: the host's ``/usr``, ``/etc`` and library links read-only; the session's own
``/etc/passwd`` and ``/etc/group``; ``/arc/home`` and ``/arc/projects`` bound read-write from
the arc tree (the kernel then applies arc's owners, modes and ACLs to the user's ids);
``/scratch`` bound from the session's private directory; fresh ``/tmp`` (mode 1777: the user writes there), ``/proc``, ``/dev``;
new pid, ipc and uts namespaces; an interactive session also a network namespace of its
own (only its loopback: its app is reached through its unix socket, i.e. the session proxy,
and nothing it listens on is reachable from the host). bubblewrap runs as root (its ``--uid`` needs a user
namespace), so ``setpriv`` drops to the user's uid, gid and supplementary gids with every
capability gone and ``no_new_privs`` set before the command is exec'd. argv all the way:
no shell ever sees the user's command.

The session's environment (the user's ``env`` included) is given to ``env -i`` only after
the drop: bubblewrap and setpriv run as root with a fixed environment (``ROOT_ENV``), so a
user's ``LD_PRELOAD``, ``LD_LIBRARY_PATH``, ``GCONV_PATH``... reach the user's own
processes and never a root one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..catalogue import HOST_PATH

BWRAP, SETPRIV, ENV = "/usr/bin/bwrap", "/usr/bin/setpriv", "/usr/bin/env"  # Debian's
ROOT_ENV = {"PATH": HOST_PATH}    # all that bubblewrap and setpriv (root) see
APP_DIR = "/run/session"          # in the sandbox: where an interactive app's socket lives
APP_SOCKET = f"{APP_DIR}/app.sock"
APP_PORT = "5000"                 # $PORT of an app that serves TCP (in its own network namespace)
PORT_BRIDGE = "/run/port_bridge.py"  # in the sandbox: runners/port_bridge.py
APP_SOFTWARE = "/run/software"    # in the sandbox: an image's software folder (read-only)
HOST_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class SandboxPaths:
    """Host paths of one session."""

    arc_root: str
    scratch: str
    app_dir: str
    passwd: str
    group: str


def _host_tree() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for path in HOST_LINKS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def sandbox_env(user: str, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of the sandboxed command (nothing of the server's leaks in)."""
    home = f"/arc/home/{user}"
    env = {"PATH": HOST_PATH, "HOME": home, "PWD": home, "USER": user, "LOGNAME": user,
           "LANG": "C.UTF-8", "SHELL": "/bin/bash", "TMPDIR": "/tmp"}
    env.update(extra)
    return env


def app_command(command: list[str], session_id: str,
                user: str) -> tuple[list[str], dict[str, str]]:
    """An interactive image's command (the catalogue's, never a user's) as run in the
    sandbox, and the variables it needs: ``{id}`` and ``{user}`` are the session's,
    ``{socket}`` the app's unix socket; a command without ``{socket}`` serves HTTP on
    ``$PORT`` and runs behind port_bridge.py, which makes that socket once the app answers."""
    filled = [arg.replace("{id}", session_id).replace("{user}", user) for arg in command]
    if any("{socket}" in arg for arg in filled):
        return [arg.replace("{socket}", APP_SOCKET) for arg in filled], {}
    return (["python3", PORT_BRIDGE, APP_SOCKET, APP_PORT, "--", *filled],
            {"PORT": APP_PORT})


def bwrap_argv(paths: SandboxPaths, user: str, hostname: str, uid: int, gid: int,
               groups: list[int], env: dict[str, str], command: list[str],
               interactive: bool = False, software: str = "") -> list[str]:
    """Run with ``ROOT_ENV``; ``command[0]`` must not contain ``=`` (``env`` would take it
    for a variable: launch.py refuses such a ``cmd``)."""
    private = ["--unshare-net", "--ro-bind", os.path.join(os.path.dirname(__file__),
                                                          "port_bridge.py"), PORT_BRIDGE]
    drop = [SETPRIV, f"--reuid={uid}", f"--regid={gid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
            ENV, "-i", *(f"{key}={value}" for key, value in env.items())]
    return [
        BWRAP, "--die-with-parent", "--new-session",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", hostname,
        *_host_tree(),
        "--ro-bind", "/etc", "/etc",
        "--ro-bind", paths.passwd, "/etc/passwd",
        "--ro-bind", paths.group, "/etc/group",
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run",
        "--dir", "/var", "--tmpfs", "/var/tmp",
        "--dir", "/arc",
        "--bind", os.path.join(paths.arc_root, "home"), "/arc/home",
        "--bind", os.path.join(paths.arc_root, "projects"), "/arc/projects",
        "--bind", paths.scratch, "/scratch",
        "--bind", paths.app_dir, APP_DIR,
        *(private if interactive else []),
        *(["--ro-bind", software, APP_SOFTWARE] if software else []),
        "--chdir", f"/arc/home/{user}",
        "--", *drop, *command,
    ]
