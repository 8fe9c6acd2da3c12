"""Running the vosclient tools (and the CADC ones) as subprocesses against a test server."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ServiceUnderTest
from .harness import CADC_BIN

OUR_BIN = Path(sys.executable).parent


@dataclass
class Tools:
    """Our tools and the CADC ones, configured alike: ``-k --token`` and
    ``LOCAL_VOSPACE_WEBSERVICE`` (both clients read it), with a private HOME."""

    svc: ServiceUnderTest
    home: str
    base: str

    def remote(self, path: str = "") -> str:
        full = f"{self.base}/{path}" if path else self.base
        return f"{'vos' if self.svc.name == 'vault' else 'arc'}:{full}"

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", ""), "HOME": self.home,
                "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{self.svc.server.port}"}

    def _run(self, exe: Path, args: tuple[str, ...], user: str | None, stdin: str | None,
             env: dict[str, str] | None) -> subprocess.CompletedProcess:
        auth = ["--token", self.svc.server.tokens[user]] if user else []
        return subprocess.run([str(exe), "-k", *auth, *args], env=env or self.env(),
                              input=stdin, capture_output=True, text=True, timeout=120)

    def ours(self, command: str, *args: str, user: str | None = "alice",
             stdin: str | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess:
        return self._run(OUR_BIN / command, args, user, stdin, env)

    def cadc(self, command: str, *args: str, user: str | None = "alice"
             ) -> subprocess.CompletedProcess:
        return self._run(CADC_BIN / command, args, user, None, None)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """An expected failure: exactly one ``ERROR::`` line on stderr and no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ERROR:: "), result.stderr
    return lines[0]


def make_tools(server, service: str, tmp_path) -> Tools:
    """Tools for ``service`` of ``server`` with a fresh base container and private HOME."""
    svc = ServiceUnderTest(server, service, service)
    home = tmp_path / "home"
    home.mkdir()
    tools = Tools(svc, str(home), svc.unique())
    ok(tools.ours("vmkdir", tools.remote()))
    return tools


@pytest.fixture(params=["vault", "arc"])
def tools(request, sqlite_server, tmp_path) -> Tools:
    return make_tools(sqlite_server, request.param, tmp_path)


@pytest.fixture
def vault_tools(sqlite_server, tmp_path) -> Tools:
    """For checks of the client alone, where the service makes no difference."""
    return make_tools(sqlite_server, "vault", tmp_path)
