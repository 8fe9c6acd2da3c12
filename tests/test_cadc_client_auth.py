"""The real CADC client with credentials: --token for owner work, another user's token
refused with CADC's fault (403 PermissionDenied), and the .netrc (HTTP Basic) path."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from .harness import CADC_BIN, VOSPACE, Server

PASSWORD = "netrc_password_1"  # .netrc values cannot hold spaces


def cadc(server: Server, home: str, command: str, *args: str,
         token: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
           "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{server.port}"}
    auth = ["--token", token] if token else []
    return subprocess.run([str(CADC_BIN / command), "-k", *auth, *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def home(tmp_path) -> str:
    return str(tmp_path)


@pytest.mark.parametrize("scheme,home_of", [("vos", "{}"), ("arc", "home/{}")])
def test_owner_works_and_other_token_is_refused(sqlite_server, home, tmp_path, scheme,
                                                home_of) -> None:
    server = sqlite_server
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    folder = f"{home_of.format('alice')}/cadc-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "up.txt"
    local.write_text("owner data")

    def ok(*args: str, token: str = alice) -> str:
        result = cadc(server, home, *args, token=token)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ok("vmkdir", f"{scheme}:{folder}")
    ok("vcp", str(local), f"{scheme}:{folder}/f.txt")
    assert "f.txt" in ok("vls", "-l", f"{scheme}:{folder}")
    ok("vcp", f"{scheme}:{folder}/f.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "owner data"

    for args in (("vls", f"{scheme}:{folder}"), ("vmkdir", f"{scheme}:{folder}/bobdir"),
                 ("vcp", str(local), f"{scheme}:{folder}/bob.txt"),
                 ("vrm", f"{scheme}:{folder}/f.txt")):
        refused = cadc(server, home, *args, token=bob)
        assert refused.returncode != 0, args
        assert "permission denied" in refused.stderr.lower() or \
            "PermissionDenied" in refused.stderr, (args, refused.stderr)
    ok("vrm", f"{scheme}:{folder}/f.txt")
    ok("vrmdir", f"{scheme}:{folder}")


def test_netrc_basic_auth(sqlite_server, home) -> None:
    """With no token or certificate the client sends the .netrc user and password (BasicAA)."""
    server = sqlite_server
    user = f"netrc{uuid.uuid4().hex[:6]}"
    created = subprocess.run([VOSPACE, "--data-dir", server.data_dir, "user", "create", user,
                              "--password-stdin"], input=PASSWORD + "\n", env=server.env,
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    netrc = os.path.join(home, ".netrc")
    with open(netrc, "w") as fh:  # the client looks up its service host, port included
        fh.write(f"machine 127.0.0.1:{server.port} login {user} password {PASSWORD}\n")
    os.chmod(netrc, 0o600)
    made = cadc(server, home, "vmkdir", f"vos:{user}/via-netrc")
    assert made.returncode == 0, made.stderr
    with server.client("admin") as c:
        r = c.get(f"/vault/nodes/{user}/via-netrc")
    assert r.status_code == 200 and f'#creator" readOnly="true">{user}<' in r.text
    with open(netrc, "w") as fh:
        fh.write(f"machine 127.0.0.1:{server.port} login {user} password wrong{PASSWORD}\n")
    refused = cadc(server, home, "vmkdir", f"vos:{user}/wrong-password")
    assert refused.returncode != 0 and "NotAuthenticated" in refused.stderr
