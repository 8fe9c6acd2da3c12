"""Developer tool: ``python -m vospace_server.migrations revision "what changed"``.

Writes the next revision into ``versions/`` with the difference between the newest
revision (applied to a scratch SQLite database) and the tables in the code. Review it:
autogenerate misses renames and data changes, and check the PostgreSQL types.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from alembic import command
from sqlalchemy import create_engine

from . import config, upgrade


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vospace_server.migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write a new revision from the code's tables")
    revision.add_argument("message")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/scratch.db")
        upgrade(engine)
        with engine.connect() as conn:
            cfg = config(conn)
            command.revision(cfg, message=args.message, autogenerate=True,
                             rev_id=_next_id(cfg))
        engine.dispose()
    return 0


def _next_id(cfg) -> str:
    """Revisions are numbered 0001, 0002, ... so the folder reads in order."""
    from alembic.script import ScriptDirectory

    return f"{len(list(ScriptDirectory.from_config(cfg).walk_revisions())) + 1:04d}"


if __name__ == "__main__":
    sys.exit(main())
