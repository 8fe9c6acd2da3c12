"""Schema migrations: the newest revision is exactly the tables in the code, and a database
made by an older schema (the baseline, with and without Alembic's stamp) is upgraded by a
real server start with every row kept and usable.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import threading
import time

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.engine import Engine

import vospace_server
from vospace_server import migrations
from vospace_server.storage.vault.schema import make_engine

from .harness import Server, free_port

BASELINE = "0001"
TOKEN = "vst_migration-test-token"
BLOB_KEY = "ab" + "0" * 30
CONTENT = b"bytes written before the upgrade\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> tuple[str, str]:
    """(data dir, database URL) of an empty database of each kind."""
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    if request.param == "sqlite":
        return data_dir, f"sqlite:///{data_dir}/vospace.db"
    return data_dir, request.getfixturevalue("postgres").create_database()


def _upgrade_to(engine: Engine, revision: str) -> None:
    with engine.connect() as conn:
        command.upgrade(migrations.config(conn), revision)
        conn.commit()


def test_head_matches_the_tables_in_the_code(database):
    """Fails for a Table added or changed without a revision (see README, "Schema migrations")."""
    engine = make_engine(database[1])
    migrations.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, migrations.table_metadata())
    engine.dispose()
    assert differences == []


def _tables(metadata: list[MetaData]) -> set[str]:
    return {name for m in metadata for name in m.tables}


def test_every_table_in_the_code_is_in_table_metadata():
    """A module's MetaData that is not listed there would escape the comparison above."""
    found: set[str] = set()
    for info in pkgutil.walk_packages(vospace_server.__path__, "vospace_server."):
        if not info.name.startswith("vospace_server.migrations"):  # env.py runs only in Alembic
            module = importlib.import_module(info.name)
            found |= _tables([v for v in vars(module).values() if isinstance(v, MetaData)])
    listed = _tables(migrations.table_metadata())
    assert found and found <= listed, f"not in table_metadata(): {found - listed}"


def _fill_baseline(engine: Engine, data_dir: str) -> None:
    """Rows as the baseline schema's code wrote them: users, a token, a group, vault nodes
    with a blob and a kept version, POSIX ids and a finished job."""
    now = time.time()
    node = dict(type="DataNode", owner="alice", created=now, modified=now, target=None)
    rows = {
        "users": [dict(name="admin", is_admin=True, disabled=False, created=now),
                  dict(name="alice", is_admin=False, disabled=False, created=now)],
        "tokens": [dict(digest=hashlib.sha256(TOKEN.encode()).hexdigest(), user="alice",
                        created=now, expires=None, revoked=False, label="old")],
        "auth_generation": [dict(id=1, value=7)],
        "groups": [dict(name="survey", owner="admin", created=now)],
        "group_entries": [dict(group_name="survey", role="member", kind="user", entry="alice")],
        "nodes": [
            dict(id=1, path="", parent=None, name="", type="ContainerNode", owner="admin",
                 length=0, md5=None, created=now, modified=now, target=None,
                 props=json.dumps({"ivo://ivoa.net/vospace/core#ispublic": "true"}), blob=None),
            dict(id=2, path="alice", parent="", name="alice", type="ContainerNode",
                 owner="alice", length=len(CONTENT), md5=None, created=now, modified=now,
                 target=None, props="{}", blob=None),
            dict(node, id=3, path="alice/old.txt", parent="alice", name="old.txt",
                 length=len(CONTENT), md5=hashlib.md5(CONTENT).hexdigest(), blob=BLOB_KEY,
                 props=json.dumps({"ivo://ivoa.net/vospace/core#groupread":
                                   "ivo://localhost/gms?survey"}))],
        "versions": [dict(id=1, node_id=3, number=1, blob="cd" + "1" * 30, md5=None, length=0,
                          modified=now - 60, replaced=now, content_type=None)],
        "posix_users": [dict(name="alice", uid=10000)],
        "posix_groups": [dict(uri="ivo://localhost/gms?survey", gid=20000)],
        "uws_jobs": [dict(id="oldjob", kind="delete", service="vault", owner="alice",
                          caller="{}", phase="COMPLETED", created=now, started=now, ended=now,
                          duration=0, destruction=now + 86400, request="", params="{}",
                          results="{}", details=None, error_code=None, error_message=None,
                          runner=None, heartbeat=None)],
    }
    baseline = MetaData()
    baseline.reflect(engine)
    with engine.begin() as conn:
        for name, values in rows.items():
            conn.execute(baseline.tables[name].insert(), values)
    for key, content in ((BLOB_KEY, CONTENT), ("cd" + "1" * 30, b"")):
        os.makedirs(f"{data_dir}/blobs/{key[:2]}", exist_ok=True)
        with open(f"{data_dir}/blobs/{key[:2]}/{key}", "wb") as fh:
            fh.write(content)


def _snapshot(engine: Engine, names: list[str]) -> dict[str, list[tuple]]:
    """Every row of the baseline's tables, in the baseline's columns."""
    baseline = MetaData()
    baseline.reflect(engine, only=names)
    with engine.connect() as conn:
        return {name: sorted(tuple(row) for row in conn.execute(
            select(*[c for c in baseline.tables[name].columns])))
            for name in names}


@pytest.mark.parametrize("stamped", [True, False], ids=["baseline", "before-migrations"])
def test_a_server_start_upgrades_an_old_database_and_keeps_everything(database, stamped, tmp_path):
    data_dir, url = database
    engine = make_engine(url)
    _upgrade_to(engine, BASELINE)
    names = [n for n in inspect(engine).get_table_names() if n != "alembic_version"]
    _fill_baseline(engine, data_dir)
    if not stamped:  # as main's create_all made it, before migrations existed
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
    before = _snapshot(engine, names)

    env = dict(os.environ, VOSPACE_DATABASE_URL=url)
    env.pop("VOSPACE_CONFIG", None)
    server = Server(data_dir=data_dir, port=free_port(), env=env)
    try:
        server.start()
        server.tokens["alice"] = TOKEN
        with server.client("alice") as http:
            assert http.get("/ac/whoami").text.strip() == "alice"
            listing = http.get("/vault/nodes/alice", params={"detail": "max"})
            assert listing.status_code == 200 and "old.txt" in listing.text
            assert http.get("/vault/files/alice/old.txt", follow_redirects=True).content \
                == CONTENT
            assert "survey" in http.get("/ac/search").text
            versions = http.get("/vault/versions/alice/old.txt").json()["versions"]
            assert [v["version"] for v in versions] == [1]
            assert http.get("/vault/async-delete/oldjob/phase").text.strip() == "COMPLETED"
    finally:
        server.stop()
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    after = _snapshot(engine, names)
    engine.dispose()
    # The server adds rows of its own (the admin's home, POSIX ids) and bumps the counter.
    generation = before.pop("auth_generation")[0][1]
    assert after.pop("auth_generation")[0][1] >= generation
    lost = {name: set(rows) - set(after[name]) for name, rows in before.items()}
    assert not any(lost.values()), lost


def test_replicas_starting_at_once_migrate_once(database):
    """Several processes upgrading one empty database at the same moment: one migrates,
    the others wait on the lock and find the work done; no error, one revision row."""
    url = database[1]
    engines = [make_engine(url) for _ in range(4)]
    results: list[tuple[str | None, str] | Exception] = []

    def run(engine: Engine) -> None:
        try:
            results.append(migrations.upgrade(engine))
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with engines[0].connect() as conn:
        stamps = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    for engine in engines:
        engine.dispose()
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r[0] is None for r in results) == [False, False, False, True]
    assert stamps == [(migrations.head(),)]


def test_migrate_command_and_a_server_that_may_not_migrate(tmp_path):
    """`vospace migrate --check` says 1 on an old schema; a server with
    migrate_on_start=false refuses it with one line; `vospace migrate` upgrades."""
    import subprocess

    from .harness import VOSPACE

    data_dir = str(tmp_path / "d")
    os.makedirs(data_dir)
    engine = make_engine(f"sqlite:///{data_dir}/vospace.db")
    _upgrade_to(engine, "base")  # an empty database: not even the baseline
    env = dict(os.environ, VOSPACE_MIGRATE_ON_START="false")

    def vospace(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([VOSPACE, "--data-dir", data_dir, *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert vospace("migrate", "--check").returncode == 1
    refused = vospace("user", "list")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"ERROR:: the database schema is at revision none, this server needs "
        f"{migrations.head()} (run: vospace migrate)"]
    done = vospace("migrate")
    assert done.returncode == 0 and done.stdout.startswith(f"schema at revision {migrations.head()}")
    assert vospace("migrate", "--check").returncode == 0
    listed = vospace("user", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("admin")
    engine.dispose()


def test_an_older_server_never_touches_a_newer_schema(tmp_path):
    """A database upgraded by a newer version (rolling update): an older `vospace` refuses
    it in one line instead of failing on tables it does not know, and changes nothing."""
    import subprocess

    from .harness import VOSPACE

    data_dir = str(tmp_path / "d")
    os.makedirs(data_dir)
    engine = make_engine(f"sqlite:///{data_dir}/vospace.db")
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    for args in (("migrate",), ("user", "list")):
        result = subprocess.run([VOSPACE, "--data-dir", data_dir, *args], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [
            f"ERROR:: the database schema is at revision ffff, newer than this server knows "
            f"({migrations.head()}): run the newer server version"]
    with engine.connect() as conn:
        assert migrations.current(conn) == "ffff"
    engine.dispose()
