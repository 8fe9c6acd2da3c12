"""``canfar data`` (CADC canfar 1.5.2's storage commands) over our arc and vault services.

The user points canfar's ``arc`` and ``vault`` storage identifiers at the deployment with
``canfar config set``; the bytes then go through our VOSpace capabilities, sync transfers and
files endpoints. What canfar wrote is checked through our own HTTP API.
"""
from __future__ import annotations

import uuid

import pytest

from .canfar_helpers import Canfar

# canfar's storage identifier -> (our service, alice's home in it)
HOMES = {"arc": ("arc", "home/alice"), "vault": ("vault", "alice")}


@pytest.fixture
def canfar(sqlite_server, tmp_path) -> Canfar:
    client = Canfar(sqlite_server, str(tmp_path))
    client.use_storage()
    return client


@pytest.mark.parametrize("identifier", sorted(HOMES))
def test_copy_list_read_and_remove(canfar, tmp_path, identifier):
    service, home = HOMES[identifier]
    folder = f"{home}/canfar-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "table.csv"
    local.write_bytes(b"ra,dec\n10.5,-3.25\n" * 1000)

    canfar.ok("data", "mkdir", f"{identifier}:/{folder}")
    copied = canfar.ok("data", "cp", f"local:{local}", f"{identifier}:/{folder}/table.csv")
    assert "verified 18000 bytes" in copied.stderr + copied.stdout
    with canfar.server.client("alice") as http:
        stored = http.get(f"/{service}/files/{folder}/table.csv", follow_redirects=True)
        assert stored.status_code == 200 and stored.content == local.read_bytes()

    assert canfar.ok("data", "ls", f"{identifier}:/{folder}").stdout.split() == ["table.csv"]
    assert canfar.ok("data", "cat", f"{identifier}:/{folder}/table.csv").stdout.encode() == local.read_bytes()
    back = tmp_path / "back.csv"
    canfar.ok("data", "cp", f"{identifier}:/{folder}/table.csv", f"local:{back}")
    assert back.read_bytes() == local.read_bytes()

    canfar.ok("data", "rm", f"{identifier}:/{folder}/table.csv")
    canfar.ok("data", "rmdir", f"{identifier}:/{folder}")
    with canfar.server.client("alice") as http:
        assert http.get(f"/{service}/nodes/{folder}").status_code == 404


@pytest.mark.parametrize("identifier", sorted(HOMES))
def test_another_users_home_is_refused(sqlite_server, tmp_path, identifier):
    bob = Canfar(sqlite_server, str(tmp_path), user="bob")
    bob.use_storage()
    _, home = HOMES[identifier]
    local = tmp_path / "x.txt"
    local.write_text("not yours\n")
    name = f"{home}/intruder-{uuid.uuid4().hex[:8]}.txt"
    refused = bob.run("data", "cp", f"local:{local}", f"{identifier}:/{name}")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    service = HOMES[identifier][0]
    with sqlite_server.client("alice") as http:
        assert http.get(f"/{service}/nodes/{name}").status_code == 404
