"""The listing page of a container: rows, one page at a time, sorted and searched.

Name order pages in storage (``start`` = the first name of the page), so the first page of
a 100,000-entry container costs one indexed query of ``PAGE`` + 1 rows. Sorting by size or
date, and searching, need the whole container (as getNode's ``sort`` does) and cut the
page out of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from ..auth import policy
from ..auth.identity import Caller
from ..deployment import Service
from ..protocol import properties as props
from ..protocol.listing import Ordering, window
from ..protocol.nodes import Node
from ..services.links import LinkResolver
from ..services.nodes import read_listing
from ..storage import quota
from ..storage.arc import snapshots
from ..storage.tree import TakesSnapshots

PAGE = 200
SORTS = {"name": None, "size": props.LENGTH, "date": props.DATE}


@dataclass
class Row:
    node: Node
    href: str
    readable: bool
    writable: bool

    @property
    def kind(self) -> str:
        return {"ContainerNode": "folder", "DataNode": "file", "LinkNode": "link"}[self.node.type.value]

    def groups(self, uri: str) -> list[str]:
        return [g.partition("?")[2] or g for g in self.node.group_uris(uri)]


@dataclass
class Listing:
    service: Service
    chain: list[Node]
    rows: list[Row]
    next_start: str | None
    sort: str
    order: str
    query: str
    writable: bool

    @property
    def node(self) -> Node:
        return self.chain[-1]

    @property
    def path(self) -> str:
        return self.node.path

    def crumbs(self) -> list[tuple[str, str]]:
        parts = self.path.split("/") if self.path else []
        found = [(self.service.name, list_url(self.service.name, ""))]
        for i in range(len(parts)):
            found.append((parts[i], list_url(self.service.name, "/".join(parts[: i + 1]))))
        return found

    def quota(self) -> dict | None:
        """Used and left under the nearest quota root on the way down, if any."""
        roots = [n for n in self.chain if n.is_container and quota.quota_of(n) is not None]
        if not roots:
            return None
        root = roots[-1]
        total, used = quota.quota_of(root) or 0, quota.usage_of(root)
        return {"root": root.path, "quota": total, "used": used, "left": max(total - used, 0),
                "percent": min(100, round(100 * used / total)) if total else 100}

    def snapshot_root(self) -> bool:
        """A home or project: its ``.snapshots`` can be browsed (arc)."""
        return isinstance(self.service.tree, TakesSnapshots) and snapshots.is_root(self.path)

    def snapshots_url(self) -> str:
        return list_url(self.service.name, f"{self.path}/{snapshots.ENTRY}")

    def in_snapshots(self) -> bool:
        """Below a ``.snapshots`` entry: read-only, each row can be restored."""
        return isinstance(self.service.tree, TakesSnapshots) and \
            snapshots.split(self.path) is not None

    def page_url(self, **changes: str) -> str:
        params = {"sort": self.sort, "order": self.order, "q": self.query, **changes}
        kept = {k: v for k, v in params.items() if v and not (k == "sort" and v == "name")
                and not (k == "order" and v == "asc")}
        return list_url(self.service.name, self.path) + (f"?{urlencode(kept)}" if kept else "")

    def sort_url(self, column: str) -> str:
        flip = "desc" if self.sort == column and self.order == "asc" else "asc"
        return self.page_url(sort=column, order=flip, start="")


def list_url(service: str, path: str) -> str:
    return f"/storage/{service}/list/{quote(path)}" if path else f"/storage/{service}/list"


def data_url(service: str, node: Node) -> str:
    if node.is_container:
        return list_url(service, node.path)
    if node.is_link:
        return node.target or "#"
    return f"/{service}/files/{quote(node.path)}"


def load(links: LinkResolver, service: Service, caller: Caller, path: str, sort: str,
         order: str, query: str, start: str | None) -> Listing:
    """(On a worker thread.) The page of ``path`` for ``caller``; faults propagate."""
    ordering = Ordering(SORTS[sort], order == "desc")
    if ordering.by_name_ascending and not query:
        chain = read_listing(links, caller, path, ordering, start, PAGE + 1)
        children = chain[-1].children or []
    else:
        chain = read_listing(links, caller, path, ordering, None, None)
        every = chain[-1].children or []
        if query:
            every = [c for c in every if query.lower() in c.name.lower()]
        children = window(every, ordering, start, PAGE + 1)
    following = children[PAGE].name if len(children) > PAGE else None
    rows = []
    for child in children[:PAGE]:
        readable, writable = policy.readable_writable(caller, chain + [child])
        rows.append(Row(child, data_url(service.name, child), readable, writable))
    _, writable = policy.readable_writable(caller, chain)
    writable = writable and not (isinstance(service.tree, TakesSnapshots)
                                 and snapshots.split(path) is not None)
    return Listing(service, chain, rows, following, sort, order, query, writable)
