"""Vault blob copies (which store holds each blob, with its MD5) and the copy queue.

Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from vospace_server.migrations.ddl import create_table, drop_tables, optional, required, serial

revision = '0003'
down_revision = '0002'


def upgrade() -> None:
    create_table("blob_copies",
                 *required(blob=sa.Text(), store=sa.Text()),
                 *optional(md5=sa.String(32), length=sa.BigInteger()),
                 *required(state=sa.String(16), checked=sa.Float()),
                 sa.PrimaryKeyConstraint("blob", "store"))
    create_table("copy_queue",
                 serial(), *required(blob=sa.Text(), store=sa.Text(), op=sa.String(8)),
                 *optional(md5=sa.String(32)), *required(attempts=sa.Integer(), due=sa.Float()),
                 *optional(runner=sa.Text(), heartbeat=sa.Float(), error=sa.Text()),
                 *required(created=sa.Float()),
                 sa.PrimaryKeyConstraint("id"),
                 indexes=(("ix_copy_queue_blob_store", ["blob", "store"], True),
                          ("ix_copy_queue_due", ["due"], False)))


def downgrade() -> None:
    drop_tables("copy_queue", "blob_copies")
