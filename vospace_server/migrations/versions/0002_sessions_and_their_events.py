"""Sessions (skaha's compute sessions) and their lifecycle events.

Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from vospace_server.migrations.ddl import create_table, drop_tables, optional, required, serial

revision = '0002'
down_revision = '0001'


def upgrade() -> None:
    create_table("session_events",
                 serial(sa.Integer()),
                 *required(session=sa.String(16), time=sa.Float(), text=sa.Text()),
                 sa.PrimaryKeyConstraint("id"),
                 indexes=(("ix_session_events_session", ["session", "id"], False),))
    create_table("sessions",
                 *required(id=sa.String(16), owner=sa.String(64), name=sa.String(64),
                           image=sa.Text(), type=sa.String(16), status=sa.String(16)),
                 *required(uid=sa.Integer(), gid=sa.Integer(), groups=sa.Text()),
                 *required(cores_request=sa.Integer(), cores_limit=sa.Integer(),
                           ram_request=sa.Integer(), ram_limit=sa.Integer(),
                           gpus=sa.Integer(), fixed=sa.Boolean()),
                 *required(created=sa.Float(), expiry=sa.Float()), *optional(ended=sa.Float()),
                 *required(command=sa.Text(), env=sa.Text(), runner=sa.String(16)),
                 *optional(runner_id=sa.Text(), workdir=sa.Text(), stop_reason=sa.Text()),
                 *required(discard=sa.Boolean()),
                 *optional(ram_in_use=sa.Float(), cpu_in_use=sa.Float()),
                 sa.PrimaryKeyConstraint("id"),
                 indexes=(("ix_sessions_owner", ["owner", "status"], False),
                          ("ix_sessions_status", ["status"], False)))


def downgrade() -> None:
    drop_tables("sessions", "session_events")
