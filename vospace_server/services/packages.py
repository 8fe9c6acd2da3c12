"""``/{svc}/pkg/{job id}``: many nodes as one TAR or ZIP, streamed (CADC's package download).

A package is asked for with a package transfer (see protocol/package.py) POSTed to
``/{svc}/synctrans`` (or from the web browser's batch download): the request becomes a
job of kind ``package`` and the answer is 303 to ``/{svc}/pkg/{id}``. A GET of that URL by
the job's owner streams the archive: each target must be readable by the caller (checked
before the first byte, so a refusal is a clean 403), and below a target every node is
checked again on the way; what the caller may not read is left out, as are links (their
targets may lie outside the package). Member names are node names joined below each
target's own name, so they never hold ``..`` or a leading ``/`` (node names cannot).
"""
from __future__ import annotations

from typing import Iterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..auth import policy
from ..auth.identity import Caller
from ..deployment import Service
from ..protocol import uris
from ..protocol.faults import NodeNotFound, PermissionDenied
from ..protocol.nodes import Node
from ..protocol.package import PackageRequest, check_targets, parse_package, render_package
from ..storage.jobs import COMPLETED, Kind
from ..storage.tree import NodeTree
from .archive import WRITERS, Entry
from .endpoints import ServiceEndpoints
from .requests import base_url, caller_of, deployment, run

PAGE = 1000  # children listed per query while walking a container


def target_path(request: Request, service: Service, target: str) -> str:
    """The node path of a ``vos://`` target of this service (InvalidURI otherwise)."""
    return uris.path_in_service(target, service.name,
                                deployment(request).settings.accepted_authorities)


async def start_package(request: Request, service: Service, package: PackageRequest,
                        caller: Caller) -> Response:
    """Record the package job; 303 to where its archive is served."""
    for target in package.targets:  # bad URIs are refused now, not mid-download
        target_path(request, service, target)
    job = await run(deployment(request).jobs.create, Kind.PACKAGE, service.name, caller.name,
                    {}, render_package(package).decode(), {"format": package.format}, COMPLETED)
    return RedirectResponse(f"{base_url(request)}/{service.name}/pkg/{job.id}", status_code=303)


class PackageEndpoints(ServiceEndpoints):
    def routes(self) -> list[Route]:
        return [Route("/pkg/{job_id}", self.download, methods=["GET"])]

    async def download(self, request: Request) -> Response:
        caller = await caller_of(request)
        job = await run(deployment(request).jobs.get, request.path_params["job_id"])
        if job is None or job.kind != Kind.PACKAGE.value or job.service != self.service.name:
            raise NodeNotFound(f"package {request.path_params['job_id']}")
        if job.owner is not None and job.owner != caller.name and not caller.is_admin:
            policy.require_authenticated(caller, "download another user's package")
            raise PermissionDenied(f"{caller.name} may not download another user's package")
        package = parse_package(job.request.encode())
        assert package is not None  # written by start_package
        paths = [target_path(request, self.service, t) for t in check_targets(list(package.targets))]
        tree = self.service.tree
        tops = await run(readable_targets, tree, caller, paths)
        name = (f"{self.service.name}-download-"
                f"{tops[0].name if len(tops) == 1 and tops[0].name else job.id}.{package.format}")
        stream = WRITERS[package.format](package_entries(tree, caller, tops, self.service.name),
                                         tree.open_read)
        return StreamingResponse(stream, media_type=package.media_type, headers={
            "Content-Disposition": f"attachment; filename=\"{quote(name)}\"; "
                                   f"filename*=UTF-8''{quote(name)}"})


def readable_targets(tree: NodeTree, caller: Caller, paths: list[str]) -> list[Node]:
    """The target nodes, each readable by ``caller`` (else the whole request fails)."""
    tops = []
    for path in paths:
        chain = tree.resolve(path)
        policy.require_read(caller, chain)
        tops.append(chain[-1])
    return tops


def package_entries(tree: NodeTree, caller: Caller, tops: list[Node],
                    root_name: str) -> Iterator[Entry]:
    """The members below each target, named from the target's own name (``root_name``
    for a service root); a name used twice gets `` (2)``, `` (3)``..."""
    used: set[str] = set()
    for top in tops:
        name = top.name or root_name
        unique, n = name, 1
        while unique in used:
            n += 1
            unique = f"{name} ({n})"
        used.add(unique)
        yield from _walk(tree, caller, top, unique)


def _walk(tree: NodeTree, caller: Caller, top: Node, name: str) -> Iterator[Entry]:
    """Depth first, one page of children per level in memory; unreadable nodes and links
    are left out (the top was checked with its ancestors)."""
    pending: list[Iterator[tuple[Node, str]]] = [iter([(top, name)])]
    while pending:
        item = next(pending[-1], None)
        if item is None:
            pending.pop()
            continue
        node, member = item
        if node.is_link or not policy.may_read_node(caller, node):
            continue
        if node.is_container:
            yield Entry(member + "/")
            pending.append(_members(tree, node.path, member))
        else:
            yield Entry(member, node.path)


def _members(tree: NodeTree, path: str, member: str) -> Iterator[tuple[Node, str]]:
    for child in _children(tree, path):
        yield child, f"{member}/{child.name}"


def _children(tree: NodeTree, path: str) -> Iterator[Node]:
    start: str | None = None
    while True:
        page = tree.list_children(path, start, PAGE + (start is not None))
        if start is not None:
            page = page[1:]  # ``start`` is inclusive: the last child of the page before
        yield from page
        if len(page) < PAGE:
            return
        start = page[-1].name
