"""Alembic's entry point: migrate on the connection ``vospace_server.migrations`` hands over."""
from __future__ import annotations

from alembic import context

from vospace_server.migrations import table_metadata

context.configure(connection=context.config.attributes["connection"],
                  target_metadata=table_metadata(), compare_type=True,
                  render_as_batch=True)  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
