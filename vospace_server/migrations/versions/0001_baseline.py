"""Baseline: the tables as they were before migrations existed.

Create Date: 2026-12-01

A database made before migrations (by ``create_all``) has some or all of these tables and
no ``alembic_version``; this revision creates only the tables it lacks, so such a database
is adopted as it is, rows untouched.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vospace_server.migrations.ddl import (Id, Index, PathText, create_table, drop_tables,
                                           optional, required, serial)

revision = "0001"
down_revision = None


def _create(name: str, *items: sa.SchemaItem, indexes: tuple[Index, ...] = ()) -> None:
    """Create table ``name`` with its indexes unless a pre-migration database has it."""
    if not sa.inspect(op.get_bind()).has_table(name):
        create_table(name, *items, indexes=indexes)


def upgrade() -> None:
    _create("nodes",
            serial(), *required(path=PathText), *optional(parent=PathText),
            *required(name=PathText, type=sa.String(16), owner=sa.Text(),
                      length=sa.BigInteger()), *optional(md5=sa.String(32)),
            *required(created=sa.Float(), modified=sa.Float()), *optional(target=sa.Text()),
            *required(props=sa.Text()), *optional(blob=sa.Text()),
            sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("path"),
            indexes=(("ix_nodes_parent_name", ["parent", "name"], True),))
    _create("versions",
            serial(), *required(node_id=Id, number=sa.Integer(), blob=sa.Text()),
            *optional(md5=sa.String(32)),
            *required(length=sa.BigInteger(), modified=sa.Float(), replaced=sa.Float()),
            *optional(content_type=sa.Text()),
            sa.ForeignKeyConstraint(["node_id"], ["nodes.id"]), sa.PrimaryKeyConstraint("id"),
            indexes=(("ix_versions_node_number", ["node_id", "number"], True),))
    _create("users",
            *required(name=sa.String(64), is_admin=sa.Boolean(), disabled=sa.Boolean(),
                      created=sa.Float()),
            sa.PrimaryKeyConstraint("name"))
    _create("passwords",
            *required(user=sa.String(64), hash=sa.Text()),
            sa.ForeignKeyConstraint(["user"], ["users.name"]), sa.PrimaryKeyConstraint("user"))
    _create("tokens",
            *required(digest=sa.String(64), user=sa.String(64), created=sa.Float()),
            *optional(expires=sa.Float()), *required(revoked=sa.Boolean()),
            *optional(label=sa.Text()),
            sa.ForeignKeyConstraint(["user"], ["users.name"]), sa.PrimaryKeyConstraint("digest"))
    _create("auth_generation",
            *required(id=sa.Integer(), value=sa.Integer()), sa.PrimaryKeyConstraint("id"))
    _create("groups",
            *required(name=sa.String(128), owner=sa.String(64), created=sa.Float()),
            sa.PrimaryKeyConstraint("name"))
    _create("group_entries",
            *required(group_name=sa.String(128), role=sa.String(8), kind=sa.String(8),
                      entry=sa.String(128)),
            sa.ForeignKeyConstraint(["group_name"], ["groups.name"]),
            sa.PrimaryKeyConstraint("group_name", "role", "kind", "entry"))
    _create("posix_users",
            *required(name=sa.String(64), uid=Id),
            sa.PrimaryKeyConstraint("name"), sa.UniqueConstraint("uid"))
    _create("posix_groups",
            *required(uri=sa.String(512), gid=Id),
            sa.PrimaryKeyConstraint("uri"), sa.UniqueConstraint("gid"))
    _create("uws_jobs",
            *required(id=sa.String(40), kind=sa.String(16), service=sa.String(32)),
            *optional(owner=sa.Text()),
            *required(caller=sa.Text(), phase=sa.String(16), created=sa.Float()),
            *optional(started=sa.Float(), ended=sa.Float()),
            *required(duration=sa.Integer()), *optional(destruction=sa.Float()),
            *required(request=sa.Text(), params=sa.Text(), results=sa.Text()),
            *optional(details=sa.Text(), error_code=sa.Text(), error_message=sa.Text()),
            *optional(runner=sa.Text(), heartbeat=sa.Float()),
            sa.PrimaryKeyConstraint("id"),
            indexes=(("ix_uws_jobs_phase", ["phase"], False),
                     ("ix_uws_jobs_owner", ["owner", "service", "created"], False)))


def downgrade() -> None:
    drop_tables("uws_jobs", "posix_groups", "posix_users", "group_entries", "groups",
                "auth_generation", "tokens", "passwords", "users", "versions", "nodes")
