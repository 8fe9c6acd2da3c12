"""Session tickets: single-use, short-lived tickets that take a browser from the platform's
origin to a session's own host (sessions/tickets.py).

Create Date: 2026-12-02 01:45:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa

from vospace_server.migrations.ddl import create_table, drop_tables, required

revision = '0005'
down_revision = '0004'


def upgrade() -> None:
    create_table("session_tickets",
                 *required(digest=sa.String(64), session=sa.String(16), user=sa.String(64),
                           credential=sa.String(64), expires=sa.Float()),
                 sa.PrimaryKeyConstraint("digest"),
                 indexes=(("ix_session_tickets_expires", ["expires"], False),))


def downgrade() -> None:
    drop_tables("session_tickets")
