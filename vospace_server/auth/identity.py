"""Who is calling: the Caller value every ACL decision is made about."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    """An authenticated user, or the anonymous caller (``name is None``)."""

    name: str | None
    is_admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_anonymous(self) -> bool:
        return self.name is None


ANONYMOUS = Caller(name=None)
