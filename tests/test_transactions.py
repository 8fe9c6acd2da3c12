"""Multi-statement writes of the auth and group stores are all-or-nothing, on SQLite (whose
driver runs in autocommit, so only an explicit BEGIN makes a transaction) and PostgreSQL.

The failure half-way is a real one: a trigger in the database refuses the second statement
of the write, as a full disk, a constraint or a lost connection would.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from vospace_server.auth.groups import GroupStore
from vospace_server.auth.store import AuthStore
from vospace_server.migrations import ensure_schema
from vospace_server.storage.vault.schema import make_engine

FAIL = {
    "sqlite": ["CREATE TRIGGER injected BEFORE {event} ON {table} "
               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
    "postgresql": ["CREATE FUNCTION injected() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
                   "CREATE TRIGGER injected BEFORE {event} ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION injected()"],
}
HEAL = {
    "sqlite": ["DROP TRIGGER injected"],
    "postgresql": ["DROP TRIGGER injected ON {table}", "DROP FUNCTION injected()"],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.db"
    else:
        url = request.getfixturevalue("postgres").create_database()
    engine = make_engine(url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def run_all(engine, statements: list[str], **names: str) -> None:
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement.format(**names)))
        conn.commit()


class failing:
    """The database refuses ``event`` on ``table`` while the block runs."""

    def __init__(self, engine, event: str, table: str) -> None:
        self.engine, self.names = engine, {"event": event, "table": table}

    def __enter__(self) -> None:
        run_all(self.engine, FAIL[self.engine.dialect.name], **self.names)

    def __exit__(self, *exc) -> None:
        run_all(self.engine, HEAL[self.engine.dialect.name], **self.names)


def test_a_password_change_failing_half_way_keeps_the_old_password(engine):
    store = AuthStore(engine)
    store.ensure_user("alice")
    store.set_password("alice", "old secret")
    with failing(engine, "INSERT", "passwords"):  # after the DELETE of the old hash
        with pytest.raises(Exception, match="injected failure"):
            store.set_password("alice", "new secret")
    assert store.check_password("alice", "old secret") is not None
    assert store.check_password("alice", "new secret") is None
    store.set_password("alice", "new secret")  # and the store still works afterwards
    assert store.check_password("alice", "new secret") is not None


def test_a_group_delete_failing_half_way_keeps_every_entry(engine):
    auth = AuthStore(engine)
    groups = GroupStore(engine, "localhost")
    groups.create("inner", "alice")
    groups.create("outer", "alice")
    groups.add("outer", "userMembers", "bob")
    groups.add("outer", "groupMembers", "inner")
    groups.add("inner", "userMembers", "carol")
    generation = auth.generation()
    with failing(engine, "DELETE", "groups"):  # after the DELETE of its entries
        with pytest.raises(Exception, match="injected failure"):
            groups.delete("inner")
    assert groups.get("outer").entries["groupMembers"] == ["inner"]
    assert groups.get("inner").entries["userMembers"] == ["carol"]
    assert "ivo://localhost/gms?outer" in groups.memberships("carol")
    assert auth.generation() == generation  # no change announced either
    groups.delete("inner")
    assert groups.get("outer").entries["groupMembers"] == []
