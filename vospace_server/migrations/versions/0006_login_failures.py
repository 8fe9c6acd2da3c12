"""Login failures: wrong passwords per (user, client address) counted in the database, so
the guessing limit is the deployment's, not each process's (auth/throttle.py).

Create Date: 2026-12-02 18:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa

from vospace_server.migrations.ddl import Id, create_table, drop_tables, required, serial

revision = '0006'
down_revision = '0005'


def upgrade() -> None:
    create_table("login_failures",
                 serial(Id), *required(key=sa.String(64), at=sa.Float()),
                 sa.PrimaryKeyConstraint("id"),
                 indexes=(("ix_login_failures_key_at", ["key", "at"], False),
                          ("ix_login_failures_at", ["at"], False)))


def downgrade() -> None:
    drop_tables("login_failures")
