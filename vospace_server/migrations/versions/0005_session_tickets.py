"""Session tickets: single-use, short-lived tickets that take a browser from the platform's
origin to a session's own host (sessions/tickets.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:45:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'session_tickets',
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('session', sa.String(length=16), nullable=False),
        sa.Column('user', sa.String(length=64), nullable=False),
        sa.Column('credential', sa.String(length=64), nullable=False),
        sa.Column('expires', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('digest'),
    )
    with op.batch_alter_table('session_tickets', schema=None) as batch_op:
        batch_op.create_index('ix_session_tickets_expires', ['expires'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('session_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_session_tickets_expires')
    op.drop_table('session_tickets')
