"""Runs CADC's real ``canfar`` client (CLI and Python API, from ``.canfar-venv``) against a server.

The client is configured the way a user does it: ``CANFAR_URL`` (the session service, with its
``/skaha/v1`` prefix), ``CANFAR_TOKEN`` (a bearer token) and ``SSL_CERT_FILE`` for the server's
self-signed certificate (canfar's HTTP stack reads ``SSL_CERT_FILE``, not ``REQUESTS_CA_BUNDLE``).
Each client gets its own HOME, because ``canfar config set`` writes ``~/.canfar/config.yaml``.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from dataclasses import dataclass

from .harness import CADC_BIN, CANFAR_BIN, Server


@dataclass
class Canfar:
    """The ``canfar`` client of one user of ``server``, with a private HOME."""

    server: Server
    home: str
    user: str = "alice"

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "CANFAR_URL": f"{self.server.url}/skaha/v1",
               "CANFAR_TOKEN": self.server.tokens[self.user],
               "SSL_CERT_FILE": os.path.join(self.server.data_dir, "tls-cert.pem")}
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        """``canfar ARGS`` as a subprocess; the result keeps stdout, stderr and the exit code."""
        return subprocess.run([str(CANFAR_BIN / "canfar"), *args], env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        result = self.run(*args, **env)
        assert result.returncode == 0, f"canfar {args}: rc={result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def api(self, body: str, timeout: float = 180) -> object:
        """Run ``body`` in the client's own Python (``canfar.sessions`` importable); its
        ``result`` variable comes back through JSON."""
        script = "import json\n" + textwrap.dedent(body) + "\nprint(json.dumps(result))\n"
        proc = subprocess.run([str(CANFAR_BIN / "python"), "-c", script], env=self.env(),
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def vcp(self, *args: str) -> subprocess.CompletedProcess:
        """CADC's ``vcp`` as the same user, finding the server through the registry lookup."""
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
               "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{self.server.port}"}
        return subprocess.run([str(CADC_BIN / "vcp"), "-k", "--token", self.server.tokens[self.user],
                               *args], env=env, capture_output=True, text=True, timeout=120)

    def use_storage(self) -> None:
        """Point canfar's ``arc`` and ``vault`` storage identifiers at this server, as a user
        does once with ``canfar config set`` (``canfar data`` reads only the config file)."""
        for name in ("arc", "vault"):
            self.ok("config", "set", f"servers.canfar.storage.{name}.url", f"{self.server.url}/{name}")
