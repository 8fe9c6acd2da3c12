"""The NodeTree interface: the seam between the VOSpace services and a backend.

Paths are normalized node paths (see ``protocol.uris.normalize_path``): no leading slash,
``""`` for the root. Methods are synchronous and may block; services call them from a
worker thread. Every method that takes a path refuses to look through a LinkNode in the
middle of that path (``LinkFound``): whether a request follows a link is decided above
storage, per request (services/links.py), with the ACL checks on both paths.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

from ..protocol.nodes import Node
from .streams import ReadHandle, Upload

if TYPE_CHECKING:
    from .arc.snapshots import SnapshotStore
    from .vault.versions import Version

Check = Callable[[list[Node]], None]


class NodeTree(Protocol):
    """A hierarchy of nodes with properties. Implementations: VaultTree (SQL), ArcTree (POSIX).

    What only some backends can do is declared by the optional capabilities below
    (``KeepsVersions``, ``KeepsCopies``, ``TakesSnapshots``), which callers test with ``isinstance``.
    """

    # Paths never deleted, moved away or replaced (see rules.refuse_protected).
    protected: frozenset[str]

    def resolve(self, path: str) -> list[Node]:
        """The nodes from the root down to ``path`` inclusive; raises NodeNotFound.

        The ancestors are what the ACL check needs, so they come in the same call.
        """
        ...

    def list_children(self, path: str, start: str | None = None,
                      limit: int | None = None) -> list[Node]:
        """Children of container ``path`` sorted by name, from ``start`` (inclusive) on."""
        ...

    def create(self, node: Node, owner: str, check: Check | None = None) -> Node:
        """Create ``node`` (its path set) owned by ``owner``; returns the stored node.

        ``check`` (e.g. the caller's write permission) is called with the parent's chain as
        the creation reads it, so a request needs no separate lookup of the parent."""
        ...

    def update_properties(self, path: str, changes: dict[str, str | None]) -> Node:
        """Set (str) or delete (None) writable properties; returns the updated node."""
        ...

    def delete(self, path: str) -> None:
        """Delete the node and, for a container, everything below it."""
        ...

    def begin_write(self, path: str, owner: str, content_type: str | None = None,
                    check: Check | None = None) -> Upload:
        """Start new content for DataNode ``path`` (created on commit if missing, owned by
        ``owner``). Nothing is visible until ``Upload.commit``; ``abort`` leaves no trace.

        ``check`` (the caller's write permission, the lock) is called with the chain as the
        write reads it: down to the node when it exists, else down to its parent."""
        ...

    def open_read(self, path: str) -> ReadHandle:
        """The current bytes of DataNode ``path`` with their size, MD5 and mtime."""
        ...

    def move(self, src: str, dest: str, replace: bool = False) -> Node:
        """Move ``src`` to ``dest`` (inside it, if ``dest`` is a container; see placement.py).

        DuplicateNode if the destination exists otherwise; returns the node at its new path.
        With ``replace``, ``dest`` is the final path and an existing node there is replaced
        in the same atomic step, as rename(2) does: a DataNode or LinkNode by a non-container,
        an empty container by a container; anything else is a DuplicateNode."""
        ...

    def copy(self, src: str, dest: str, owner: str,
             check: Callable[[], None] | None = None) -> Node:
        """Copy ``src`` (a whole subtree, bytes included) like ``move``; copies belong to
        ``owner``. ``check`` is called between nodes: whatever it raises (a job's abort)
        stops the copy and leaves nothing of it behind."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class KeepsVersions(Protocol):
    """A backend that keeps the previous contents of DataNodes (vault; see vault/versions.py)."""

    def list_versions(self, path: str) -> list[Version]:
        """The kept versions of DataNode ``path``, oldest first."""
        ...

    def open_version(self, path: str, number: int) -> ReadHandle:
        ...

    def restore_version(self, path: str, number: int, owner: str) -> Node:
        """Version ``number`` becomes the current content (which is kept as a version)."""
        ...

    def delete_version(self, path: str, number: int) -> None:
        ...


@runtime_checkable
class KeepsCopies(Protocol):
    """A backend that can keep bytes in several stores (vault; see vault/copies.py)."""

    def stored_copies(self, path: str) -> str | None:
        """Where DataNode ``path``'s bytes are kept, for administrators (``store=state``
        pairs); None while only one store is configured."""
        ...


@runtime_checkable
class TakesSnapshots(Protocol):
    """A backend with read-only snapshots of homes and projects (arc; see arc/snapshots.py)."""

    snapshots: SnapshotStore
