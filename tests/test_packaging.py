"""The base install is the client: installed alone into a fresh virtualenv (pip install of
the repository, no extras) it brings no server or FUSE dependency, its tools and fsspec
filesystems work against a real server, and the server's and the mount's commands say in
one line which extra they need.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from .harness import REPO

# Distributions only the [server] or [fuse] extras may bring (pip's normalized names).
NOT_IN_THE_CLIENT = {"starlette", "uvicorn", "sqlalchemy", "boto3", "botocore", "psycopg",
                     "psycopg-binary", "cryptography", "argon2-cffi", "joserfc",
                     "prometheus-client", "mfusepy", "jinja2", "kubernetes", "alembic",
                     "astropy", "python-multipart", "authlib"}


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory):
    """A virtualenv with ``pip install <a copy of the repository>`` and nothing else."""
    root = tmp_path_factory.mktemp("client-install")
    source = root / "source"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                            "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], check=True,
                   capture_output=True, timeout=600)
    return venv / "bin"


def run(bin_dir, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120, env=env)


def test_no_server_or_fuse_dependency_is_installed(client_venv):
    listed = run(client_venv, "pip", "list", "--format=freeze")
    installed = {line.split("==")[0].lower().replace("_", "-")
                 for line in listed.stdout.splitlines()}
    assert "vospace-platform" in installed and "httpx" in installed and "fsspec" in installed
    assert not installed & NOT_IN_THE_CLIENT, installed & NOT_IN_THE_CLIENT


def test_client_modules_import_no_server_module(client_venv):
    probe = ("import sys, vosclient, vosclient.fs, vosclient.cli.cp, vosclient.cli.ls, "
             "vosclient.cli.simple, vosclient.cli.sync, arcfs.logic, arcfs.cli\n"
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('vospace_server'))))")
    result = run(client_venv, "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert loaded and all(m == "vospace_server" or m.startswith("vospace_server.protocol")
                          for m in loaded), loaded


def test_vls_help_and_an_fsspec_read_against_a_server(client_venv, sqlite_server, tmp_path):
    result = run(client_venv, "vls", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: vls"), result.stderr
    name = f"pkg-{uuid.uuid4().hex[:8]}.txt"
    data = os.urandom(3000).hex()
    with sqlite_server.client("alice") as c:
        assert c.put(f"/vault/files/alice/{name}", content=data.encode()).status_code == 201
    env = dict(os.environ, HOME=str(tmp_path), VOSPACE_URL=sqlite_server.url,
               VOSPACE_TOKEN=sqlite_server.tokens["alice"], VOSPACE_INSECURE="1")
    read = run(client_venv, "python", "-c",
               f"import fsspec\nwith fsspec.open('vos://alice/{name}', 'rt') as fh:\n"
               f"    print(fh.read(), end='')", env=env)
    assert read.returncode == 0, read.stderr
    assert read.stdout == data
    listed = run(client_venv, "vls", "vos:alice", env=env)
    assert listed.returncode == 0 and name in listed.stdout.split(), listed.stderr


def test_server_and_mount_commands_name_their_extra(client_venv, tmp_path):
    serve = run(client_venv, "vospace", "--data-dir", str(tmp_path / "data"), "serve")
    assert serve.returncode == 1
    assert serve.stderr.strip().count("\n") == 0 and "[server]" in serve.stderr, serve.stderr
    (tmp_path / "mnt").mkdir()
    mount = run(client_venv, "arcfs", "mount", "https://127.0.0.1:9", str(tmp_path / "mnt"))
    assert mount.returncode == 1
    assert mount.stderr.strip().count("\n") == 0 and "[fuse]" in mount.stderr, mount.stderr
