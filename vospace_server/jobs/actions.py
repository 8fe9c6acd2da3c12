"""What async jobs do: move/copy a node, recursive delete, recursive property setting.

Each action checks access with the one ACL policy for the job owner (a snapshot of the
caller taken when the job was created) and calls the service's NodeTree. Recursive actions
count per-node successes and failures (the CADC client prints them) and call
``progress.check()`` between nodes so an ABORT stops them part-way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..auth import policy
from ..auth.identity import Caller
from ..protocol import properties as props
from ..protocol import uris
from ..protocol.faults import NodeNotFound, PermissionDenied, VOSpaceFault
from ..protocol.nodes import Node
from ..protocol.transfer import Transfer
from ..storage.placement import final_destination
from ..storage.rules import refuse_locked, refuse_protected
from ..storage.tree import NodeTree

PAGE = 1000
CHECK_EVERY = 0.25  # seconds between abort checks


class Aborted(Exception):
    """Raised by ``Progress.check`` when the job was aborted meanwhile."""


@dataclass
class Progress:
    """Success/error counters of a recursive job and the abort check between nodes.

    The abort flag lives in the database, so it is read at most every ``CHECK_EVERY``
    seconds rather than once per node.
    """

    is_aborted: Callable[[], bool]
    successes: int = 0
    errors: int = 0
    _next_check: float = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        if self.is_aborted():
            raise Aborted()

    def results(self) -> dict[str, str]:
        """``errorcount`` only when there were errors: the CADC client reads the count as
        the string after ``final:`` and treats any non-empty string, even "0", as failure."""
        found = {"successcount": f"final:{self.successes}"}
        if self.errors:
            found["errorcount"] = f"final:{self.errors}"
        return found


def caller_from(snapshot: dict) -> Caller:
    return Caller(name=snapshot.get("name"), is_admin=bool(snapshot.get("is_admin")),
                  groups=frozenset(snapshot.get("groups") or ()))


def caller_snapshot(caller: Caller) -> dict:
    return {"name": caller.name, "is_admin": caller.is_admin, "groups": sorted(caller.groups)}


def _all_children(tree: NodeTree, path: str) -> list[Node]:
    children: list[Node] = []
    start = None
    while True:
        page = tree.list_children(path, start, PAGE + (1 if start else 0))
        if start is not None:
            page = page[1:]  # the start child is inclusive and already listed
        children.extend(page)
        if len(page) < PAGE:
            return children
        start = page[-1].name


def node_transfer(tree: NodeTree, service: str, caller: Caller, transfer: Transfer,
                  authorities: frozenset[str], progress: Progress) -> str:
    """Move (keepBytes false) or copy the target to the direction URI; returns the new path.

    moveNode semantics: an existing container as destination receives the source inside
    it; any other existing destination is a DuplicateNode.
    """
    src = uris.path_in_service(transfer.target, service, authorities)
    dest = uris.path_in_service(transfer.direction, service, authorities)
    if transfer.is_move:
        refuse_protected(tree, src, "moved")
    src_chain = tree.resolve(src)
    policy.require_read(caller, src_chain)
    if transfer.is_move:
        policy.require_write(caller, src_chain[:-1])
        refuse_locked(src_chain[-1])
    final = final_destination(tree.resolve, src, dest, transfer.replaces)
    container_chain = tree.resolve(uris.parent_of(final))
    policy.require_write(caller, container_chain)
    refuse_locked(container_chain[-1])
    if transfer.replaces:
        try:
            refuse_locked(tree.resolve(final)[-1])
        except NodeNotFound:
            pass
    if transfer.is_move:
        tree.move(src, final, replace=transfer.replaces)
    else:
        tree.copy(src, final, caller.name or "", progress.check)
    return final


@dataclass
class _Pending:
    """A container of a recursive delete whose children are still being looked at."""

    node: Node
    parent_ok: bool            # the caller may write its parent
    parent: "_Pending | None"
    whole: bool = True         # every child subtree is deletable as a whole
    ready: list[tuple[str, int]] = field(default_factory=list)  # deletable children, sizes


def recursive_delete(tree: NodeTree, caller: Caller, path: str, progress: Progress) -> None:
    """Delete ``path`` and everything below it that the caller may delete.

    A node may be deleted when the caller may write its parent and it is not locked; a
    container only along with everything in it. The walk first decides, bottom up, which
    subtrees are deletable as a whole, so each is removed with one ``tree.delete`` (one
    SQL statement on vault) rather than node by node; where something must stay, its
    deletable siblings go one subtree at a time and the nodes kept count as errors.
    """
    refuse_protected(tree, path)
    chain = tree.resolve(path)
    policy.require_write(caller, chain[:-1])
    root = _Pending(Node("", chain[-1].type), True, None)  # collects the target's verdict
    stack: list[tuple[Node, _Pending, bool | _Pending]] = [(chain[-1], root, False)]
    while stack:
        node, parent, state = stack.pop()
        progress.check()
        parent_ok = parent is root or policy.may_write_node(caller, parent.node)
        if node.is_container and state is False:
            pending = _Pending(node, parent_ok, parent)
            stack.append((node, parent, pending))
            if policy.may_read_node(caller, node):
                stack.extend((child, pending, False) for child in _all_children(tree, node.path))
            elif tree.list_children(node.path, None, 1):
                pending.whole = False  # cannot see inside, so cannot empty it
                progress.errors += 1
            continue
        own_ok = parent_ok and not node.flag(props.ISLOCKED)
        if isinstance(state, _Pending):
            if own_ok and state.whole:
                parent.ready.append((node.path, 1 + sum(n for _, n in state.ready)))
                continue
            _delete_each(tree, state.ready, progress)
        elif own_ok:
            parent.ready.append((node.path, 1))
            continue
        progress.errors += 1
        parent.whole = False
    _delete_each(tree, root.ready, progress)


def _delete_each(tree: NodeTree, subtrees: list[tuple[str, int]], progress: Progress) -> None:
    """Delete whole subtrees, counting every node in them as a success."""
    for path, count in subtrees:
        try:
            tree.delete(path)
            progress.successes += count
        except NodeNotFound:
            pass  # removed meanwhile by someone else
        except VOSpaceFault:
            progress.errors += count


def recursive_set_properties(tree: NodeTree, caller: Caller, path: str,
                             changes: dict[str, str | None], progress: Progress) -> None:
    """Apply ``changes`` to ``path`` and every node below it that the caller may change.

    LinkNodes are neither followed nor changed (arc cannot store their properties).
    """
    changes = {u: v for u, v in changes.items() if u not in props.READ_ONLY}
    chain = tree.resolve(path)
    policy.require_read(caller, chain[:-1])
    stack = [chain[-1]]
    while stack:
        node = stack.pop()
        progress.check()
        if node.is_link:
            continue
        try:
            if not policy.may_write_node(caller, node):
                raise PermissionDenied(f"/{node.path}")
            policy.require_property_rights(caller, node, changes)
            tree.update_properties(node.path, changes)
            progress.successes += 1
        except NodeNotFound:
            continue
        except VOSpaceFault:
            progress.errors += 1
        if node.is_container and policy.may_read_node(caller, node):
            stack.extend(reversed(_all_children(tree, node.path)))
