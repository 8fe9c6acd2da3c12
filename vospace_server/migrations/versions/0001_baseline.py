"""Baseline: the tables as they were before migrations existed.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

A database made before migrations (by ``create_all``) has some or all of these tables and
no ``alembic_version``; this revision creates only the tables it lacks, so such a database
is adopted as it is, rows untouched.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PathText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _create(name: str, *columns: sa.SchemaItem,
            indexes: tuple[tuple[str, list[str], bool], ...] = ()) -> None:
    """Create table ``name`` with its indexes unless a pre-migration database has it."""
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *columns)
    for index, cols, unique in indexes:
        op.create_index(index, name, cols, unique=unique)


def upgrade() -> None:
    _create("nodes",
            sa.Column("id", Id, autoincrement=True, nullable=False),
            sa.Column("path", PathText, nullable=False),
            sa.Column("parent", PathText, nullable=True),
            sa.Column("name", PathText, nullable=False),
            sa.Column("type", sa.String(16), nullable=False),
            sa.Column("owner", sa.Text(), nullable=False),
            sa.Column("length", sa.BigInteger(), nullable=False),
            sa.Column("md5", sa.String(32), nullable=True),
            sa.Column("created", sa.Float(), nullable=False),
            sa.Column("modified", sa.Float(), nullable=False),
            sa.Column("target", sa.Text(), nullable=True),
            sa.Column("props", sa.Text(), nullable=False),
            sa.Column("blob", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("path"),
            indexes=(("ix_nodes_parent_name", ["parent", "name"], True),))
    _create("versions",
            sa.Column("id", Id, autoincrement=True, nullable=False),
            sa.Column("node_id", Id, nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("blob", sa.Text(), nullable=False),
            sa.Column("md5", sa.String(32), nullable=True),
            sa.Column("length", sa.BigInteger(), nullable=False),
            sa.Column("modified", sa.Float(), nullable=False),
            sa.Column("replaced", sa.Float(), nullable=False),
            sa.Column("content_type", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["node_id"], ["nodes.id"]),
            sa.PrimaryKeyConstraint("id"),
            indexes=(("ix_versions_node_number", ["node_id", "number"], True),))
    _create("users",
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("is_admin", sa.Boolean(), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False),
            sa.Column("created", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("name"))
    _create("passwords",
            sa.Column("user", sa.String(64), nullable=False),
            sa.Column("hash", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["user"], ["users.name"]),
            sa.PrimaryKeyConstraint("user"))
    _create("tokens",
            sa.Column("digest", sa.String(64), nullable=False),
            sa.Column("user", sa.String(64), nullable=False),
            sa.Column("created", sa.Float(), nullable=False),
            sa.Column("expires", sa.Float(), nullable=True),
            sa.Column("revoked", sa.Boolean(), nullable=False),
            sa.Column("label", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["user"], ["users.name"]),
            sa.PrimaryKeyConstraint("digest"))
    _create("auth_generation",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("value", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"))
    _create("groups",
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("owner", sa.String(64), nullable=False),
            sa.Column("created", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("name"))
    _create("group_entries",
            sa.Column("group_name", sa.String(128), nullable=False),
            sa.Column("role", sa.String(8), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("entry", sa.String(128), nullable=False),
            sa.ForeignKeyConstraint(["group_name"], ["groups.name"]),
            sa.PrimaryKeyConstraint("group_name", "role", "kind", "entry"))
    _create("posix_users",
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("uid", Id, nullable=False),
            sa.PrimaryKeyConstraint("name"),
            sa.UniqueConstraint("uid"))
    _create("posix_groups",
            sa.Column("uri", sa.String(512), nullable=False),
            sa.Column("gid", Id, nullable=False),
            sa.PrimaryKeyConstraint("uri"),
            sa.UniqueConstraint("gid"))
    _create("uws_jobs",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("service", sa.String(32), nullable=False),
            sa.Column("owner", sa.Text(), nullable=True),
            sa.Column("caller", sa.Text(), nullable=False),
            sa.Column("phase", sa.String(16), nullable=False),
            sa.Column("created", sa.Float(), nullable=False),
            sa.Column("started", sa.Float(), nullable=True),
            sa.Column("ended", sa.Float(), nullable=True),
            sa.Column("duration", sa.Integer(), nullable=False),
            sa.Column("destruction", sa.Float(), nullable=True),
            sa.Column("request", sa.Text(), nullable=False),
            sa.Column("params", sa.Text(), nullable=False),
            sa.Column("results", sa.Text(), nullable=False),
            sa.Column("details", sa.Text(), nullable=True),
            sa.Column("error_code", sa.Text(), nullable=True),
            sa.Column("error_message", sa.Text(), nullable=True),
            sa.Column("runner", sa.Text(), nullable=True),
            sa.Column("heartbeat", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            indexes=(("ix_uws_jobs_phase", ["phase"], False),
                     ("ix_uws_jobs_owner", ["owner", "service", "created"], False)))


def downgrade() -> None:
    for name in ("uws_jobs", "posix_groups", "posix_users", "group_entries", "groups",
                 "auth_generation", "tokens", "passwords", "users", "versions", "nodes"):
        op.drop_table(name)
