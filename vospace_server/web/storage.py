"""``/storage``: the storage browser's pages (listing, login) and its form posts (logout,
batch download). Routes as CADC's storage-ui: ``/storage/list/<path>`` for vault, and
``/storage/<service>/list/<path>`` for each service."""
from __future__ import annotations

import os
import shlex
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..auth.identity import Caller
from ..deployment import Service
from ..protocol import uris
from ..protocol.faults import InvalidArgument, NodeNotFound, VOSpaceFault
from ..protocol.package import PackageRequest, archive_format, check_targets
from ..services.ac import close_session, open_session, set_session_cookie
from ..services.files import preauth_url
from ..services.links import resolver
from ..services.nodes import node_path
from ..services.packages import package_entries, readable_targets, start_package
from ..services.requests import caller_of, deployment, local_path, run
from . import listing
from .render import HERE, check_form_csrf, page, refusal, utc_date

LIST_FORMATS = ("urls", "script")


def _service(request: Request) -> Service:
    name = request.path_params.get("service", "vault")
    found = deployment(request).services.get(name)
    if found is None:
        raise NodeNotFound(f"/storage/{name}: no such service")
    return found


def _safe_next(value: str) -> str:
    return local_path(value, "/storage/list")


async def list_page(request: Request) -> Response:
    try:
        service = _service(request)
        path = node_path(request)
        params = request.query_params
        sort = params.get("sort", "name")
        order = params.get("order", "asc")
        if sort not in listing.SORTS or order not in ("asc", "desc"):
            raise InvalidArgument("sort must be name, size or date; order asc or desc")
        caller = await caller_of(request)
        found = await run(listing.load, resolver(request, service), service, caller, path,
                          sort, order, params.get("q", "").strip(),
                          params.get("start") or None)
    except VOSpaceFault as fault:
        return refusal(request, fault)
    if not found.node.is_container:
        return RedirectResponse(listing.data_url(service.name, found.node), status_code=303)
    return page(request, "list.html", {
        "listing": found, "caller": caller, "services": sorted(deployment(request).services),
        "authority": service.authority})


async def login_page(request: Request) -> Response:
    return page(request, "login.html", {"next": _safe_next(request.query_params.get("next", "")),
                                        "error": None, "username": ""})


async def login(request: Request) -> Response:
    try:
        form = await check_form_csrf(request)
        user, password = (form.get("username") or [""])[0], (form.get("password") or [""])[0]
        target = _safe_next((form.get("next") or [""])[0])
        if not user or not password:
            raise InvalidArgument("user name and password are required")
        token = await open_session(request, user, password)
    except VOSpaceFault as fault:
        return page(request, "login.html", {"next": "/storage/list", "error": fault.body(),
                                            "username": ""}, fault.status)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/storage/list", status_code=303)
    try:
        await check_form_csrf(request)
        await close_session(request, response)
    except VOSpaceFault as fault:
        return refusal(request, fault)
    return response


async def download(request: Request) -> Response:
    """Batch download of the selected nodes: ``format`` zip or tar (a package, 303 to
    ``/<service>/pkg/<id>``), or ``urls`` / ``script``: pre-authorized URLs of every
    readable file, as a list or as a shell script of curl commands."""
    try:
        service = _service(request)
        form = await check_form_csrf(request)
        paths = [uris.normalize_path(p) for p in form.get("path", [])]
        check_targets(paths)
        kind = (form.get("format") or ["zip"])[0]
        caller = await caller_of(request)
        if kind not in LIST_FORMATS:
            package = PackageRequest(tuple(f"{service.base_uri}/{quote(p)}" for p in paths),
                                     archive_format(kind))
            return await start_package(request, service, package, caller)
        links = await run(_signed_links, request, service, caller, paths)
    except VOSpaceFault as fault:
        return refusal(request, fault)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    if kind == "urls":
        body = "".join(f"{url}\n" for _, url in links)
        name, media = f"{service.name}-urls-{stamp}.txt", "text/uri-list"
    else:
        body = _script(links, deployment(request).settings.preauth_lifetime)
        name, media = f"{service.name}-download-{stamp}.sh", "text/x-shellscript"
    return PlainTextResponse(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


def _signed_links(request: Request, service: Service, caller: Caller, paths: list[str]
                  ) -> list[tuple[str, str]]:
    """(member name, pre-authorized GET URL) of every file a package would hold."""
    tops = readable_targets(service.tree, caller, paths)
    return [(entry.name, preauth_url(request, service, entry.path or "", "get", caller.name or "",
                                     data_port=False))
            for entry in package_entries(service.tree, caller, tops, service.name)
            if not entry.is_dir]


def _script(links: list[tuple[str, str]], lifetime: int) -> str:
    lines = ["#!/bin/sh",
             f"# {len(links)} files; these links work until {utc_date(time.time() + lifetime)} UTC",
             "set -e"]
    lines += [f"curl -fsS --create-dirs -o {shlex.quote(name)} {shlex.quote(url)}"
              for name, url in links]
    return "\n".join(lines) + "\n"


def storage_routes() -> list[BaseRoute]:
    lists = [Route("/list", list_page), Route("/list/{path:path}", list_page),
             Route("/{service}/list", list_page), Route("/{service}/list/{path:path}", list_page)]
    return [Mount("/storage", routes=[
        Mount("/static", app=StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
        Route("/", lambda request: RedirectResponse("/storage/list", status_code=303)),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/{service}/download", download, methods=["POST"]),
        *lists])]
