"""The fixed top of the arc tree: users' homes in ``home/``, shared projects in
``projects/``. These folders and the root are made at start and never removed."""
from __future__ import annotations

TOP_LEVEL = ("home", "projects")
PROTECTED = frozenset(("",) + TOP_LEVEL)
