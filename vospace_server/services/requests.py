"""Helpers every endpoint uses: the caller, bounded bodies, XML responses, worker threads."""
from __future__ import annotations

from typing import Callable, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..auth.identity import ANONYMOUS, Caller
from ..deployment import Deployment
from ..protocol.faults import NotAuthenticated, RequestEntityTooLarge

T = TypeVar("T")
XML_TYPE = "text/xml; charset=UTF-8"


def deployment(request: Request) -> Deployment:
    return request.app.state.deployment


def bearer_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    delegated = request.headers.get("x-cadc-delegationtoken", "").strip()
    return delegated or None


async def caller_of(request: Request) -> Caller:
    """The authenticated caller; a presented but invalid token is an error, not anonymity."""
    cached = request.scope.get("vospace.caller")
    if cached is not None:
        return cached
    token = bearer_token(request)
    caller = ANONYMOUS
    if token is not None:
        found = await run(deployment(request).auth.authenticate, token)
        if found is None:
            raise NotAuthenticated("the token is unknown, expired or revoked")
        caller = found
    request.scope["vospace.caller"] = caller
    return caller


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refusing (413) anything longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestEntityTooLarge(f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def run(fn: Callable[..., T], *args: object) -> T:
    """Run blocking storage work on a worker thread."""
    return await to_thread.run_sync(fn, *args)


def xml_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML_TYPE)


def base_url(request: Request) -> str:
    """The externally visible base URL: configured, or from the request's Host header."""
    configured = deployment(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"
