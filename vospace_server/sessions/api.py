"""The skaha HTTP API: ``/skaha/v1/...`` (and ``/skaha/v0/...``, the older prefix) plus VOSI.

Thin: parameters in, ``SessionService`` call on a worker thread, JSON or text/plain out.
skaha's errors are a bare message in text/plain with the status (``SkahaError``).
"""
from __future__ import annotations

from typing import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from ..auth import policy
from ..protocol.vosi import Capability, render_availability, render_capabilities
from ..services.requests import base_url, caller_of, read_body, run, xml_response
from .errors import BadRequest, SkahaError
from .launch import parse_launch
from .model import public_json, session_json
from .service import SessionService

VERSIONS = ("v1", "v0")
MAX_FORM_BYTES = 1024 * 1024
PLATFORM = "http://www.opencadc.org/std/platform"
SKAHA_CAPABILITIES = (
    Capability("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities", secured=False),
    Capability("ivo://ivoa.net/std/VOSI#availability", "/availability", secured=False),
    Capability("vos://cadc.nrc.ca~vospace/CADC/std/Proc#sessions-1.0", "/v0", use="base"),
    Capability(f"{PLATFORM}#session-1", "/v1/session", use="base"),
    Capability(f"{PLATFORM}#context-1", "/v1/context", use="base"),
    Capability(f"{PLATFORM}#image-1", "/v1/image", use="base"),
    Capability(f"{PLATFORM}#repository-1", "/v1/repository", use="base"),
)

Handler = Callable[[Request], Awaitable[Response]]


def service_of(request: Request) -> SessionService:
    return request.app.state.sessions


def skaha_errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except SkahaError as error:
            return PlainTextResponse(error.message + "\n", status_code=error.status)
    return wrapped


async def _params(request: Request) -> dict[str, list[str]]:
    """Query and URL-encoded form parameters, each name with all its values (``env``
    repeats), as skaha reads them; other bodies are refused rather than ignored."""
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        raise BadRequest("send parameters in the query or as application/x-www-form-urlencoded")
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = await read_body(request, MAX_FORM_BYTES)
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form is not valid UTF-8 URL-encoded text") from None
        for key, value in pairs:
            params.setdefault(key, []).append(value)
    return params


def _text(body: str | bytes) -> Response:
    return Response(body, media_type="text/plain; charset=utf-8")


async def list_sessions(request: Request) -> Response:
    service, caller = service_of(request), await caller_of(request)
    view = request.query_params.get("view")
    if view == "stats":
        return JSONResponse(await run(service.stats, caller))
    if view not in (None, "", "all", "interactive"):
        raise BadRequest(f"unknown view: {view}")
    sessions = await run(service.list, caller, request.query_params.get("type") or None,
                         request.query_params.get("status") or None, view == "all")
    if view == "interactive":
        sessions = [s for s in sessions if s.interactive]
    if view == "all":
        return JSONResponse([public_json(s) for s in sessions])
    base, hosts = base_url(request), service.hosts
    return JSONResponse([session_json(s, hosts.origin(base, s.id)) for s in sessions])


async def launch(request: Request) -> Response:
    service, caller = service_of(request), await caller_of(request)
    launch_request = parse_launch(await _params(request))
    hostname = request.url.hostname or "localhost"
    session = await run(service.launch, caller, launch_request, hostname)
    return _text(session.id + "\n")


async def get_session(request: Request) -> Response:
    service, caller = service_of(request), await caller_of(request)
    session_id = request.path_params["session_id"]
    view = request.query_params.get("view")
    if view == "logs":
        return _text(await run(service.logs, caller, session_id))
    if view == "events":
        return _text(await run(service.events, caller, session_id))
    if view not in (None, ""):
        raise BadRequest(f"unknown view: {view}")
    session = await run(service.get, caller, session_id)
    return JSONResponse(session_json(session, service.hosts.origin(base_url(request), session_id)))


async def change_session(request: Request) -> Response:
    service, caller = service_of(request), await caller_of(request)
    session_id = request.path_params["session_id"]
    params = await _params(request)
    action = (params.get("action") or [""])[-1]
    if action.lower() == "renew":
        await run(service.renew, caller, session_id)
        return _text("")
    if action.lower() in ("share", "unshare"):
        group = (params.get("group") or [""])[-1] if action.lower() == "share" else None
        if action.lower() == "share" and not group:
            raise BadRequest("Missing parameter 'group'")
        await run(service.share, caller, session_id, group)
        return _text("")
    await run(service.get, caller, session_id)  # a missing session is 404 before all else
    if action:
        raise BadRequest("unrecognized action")
    raise BadRequest("Cannot modify an existing session")


async def delete_session(request: Request) -> Response:
    service, caller = service_of(request), await caller_of(request)
    await run(service.delete, caller, request.path_params["session_id"])
    return _text("")


async def images(request: Request) -> Response:
    service = service_of(request)
    policy.require_authenticated(await caller_of(request), "list images")
    kind = request.query_params.get("type") or None
    return JSONResponse([image.json() for image in service.offered_images(kind)])


async def context(request: Request) -> Response:
    service = service_of(request)
    policy.require_authenticated(await caller_of(request), "see the resource context")
    return JSONResponse(service.context.json())


async def repositories(request: Request) -> Response:
    service = service_of(request)
    policy.require_authenticated(await caller_of(request), "list repositories")
    return JSONResponse(list(service.catalogue.repositories))


async def capabilities(request: Request) -> Response:
    return xml_response(render_capabilities(f"{base_url(request)}/skaha", SKAHA_CAPABILITIES))


async def availability(request: Request) -> Response:
    return xml_response(render_availability(True, "the skaha session service is accepting "
                                                  "requests"))


def api_routes() -> list[Route]:
    return [
        Route("/session", skaha_errors(list_sessions), methods=["GET"]),
        Route("/session", skaha_errors(launch), methods=["POST"]),
        Route("/session/{session_id}", skaha_errors(get_session), methods=["GET"]),
        Route("/session/{session_id}", skaha_errors(change_session), methods=["POST"]),
        Route("/session/{session_id}", skaha_errors(delete_session), methods=["DELETE"]),
        Route("/image", skaha_errors(images), methods=["GET"]),
        Route("/context", skaha_errors(context), methods=["GET"]),
        Route("/repository", skaha_errors(repositories), methods=["GET"]),
    ]


def skaha_mount() -> Mount:
    routes: list[Route | Mount] = [Route("/capabilities", capabilities),
                                   Route("/availability", availability)]
    routes += [Mount(f"/{version}", routes=api_routes()) for version in VERSIONS]
    return Mount("/skaha", routes=routes)
