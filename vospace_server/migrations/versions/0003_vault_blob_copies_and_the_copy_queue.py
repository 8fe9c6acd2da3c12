"""Vault blob copies (which store holds each blob, with its MD5) and the copy queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blob_copies',
    sa.Column('blob', sa.Text(), nullable=False),
    sa.Column('store', sa.Text(), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=True),
    sa.Column('length', sa.BigInteger(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('checked', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('blob', 'store')
    )
    op.create_table('copy_queue',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('blob', sa.Text(), nullable=False),
    sa.Column('store', sa.Text(), nullable=False),
    sa.Column('op', sa.String(length=8), nullable=False),
    sa.Column('md5', sa.String(length=32), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due', sa.Float(), nullable=False),
    sa.Column('runner', sa.Text(), nullable=True),
    sa.Column('heartbeat', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('copy_queue', schema=None) as batch_op:
        batch_op.create_index('ix_copy_queue_blob_store', ['blob', 'store'], unique=True)
        batch_op.create_index('ix_copy_queue_due', ['due'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('copy_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_copy_queue_due')
        batch_op.drop_index('ix_copy_queue_blob_store')

    op.drop_table('copy_queue')
    op.drop_table('blob_copies')
