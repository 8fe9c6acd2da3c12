"""What the revisions build tables from.

A table is written as groups of related columns (who, what, when), each group one call:
``required(...)`` gives NOT NULL columns and ``optional(...)`` nullable ones, of the types
given, in the order given; ``create_table`` adds the constraints and indexes. The types
shared by several tables are named here once.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's rowid is its 64-bit id
PathText = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")  # byte order, as paths sort

Index = tuple[str, list[str], bool]  # name, columns, unique


def serial(type_: sa.types.TypeEngine = Id) -> sa.Column:
    """The ``id`` primary key the database numbers."""
    return sa.Column("id", type_, autoincrement=True, nullable=False)


def required(**types: sa.types.TypeEngine) -> list[sa.Column]:
    return [sa.Column(name, type_, nullable=False) for name, type_ in types.items()]


def optional(**types: sa.types.TypeEngine) -> list[sa.Column]:
    return [sa.Column(name, type_, nullable=True) for name, type_ in types.items()]


def create_table(name: str, *items: sa.SchemaItem, indexes: tuple[Index, ...] = ()) -> None:
    op.create_table(name, *items)
    for index, columns, unique in indexes:
        op.create_index(index, name, columns, unique=unique)


def drop_tables(*names: str) -> None:
    """Drop ``names`` in that order (dependent tables first); their indexes go with them."""
    for name in names:
        op.drop_table(name)
