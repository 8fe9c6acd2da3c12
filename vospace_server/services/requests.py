"""Helpers every endpoint uses: the caller, bounded bodies, XML responses, worker threads."""
from __future__ import annotations

import base64
from urllib.parse import urlsplit
from typing import Callable, TypeVar

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response

from ..auth.csrf import CSRF_COOKIE, CSRF_HEADER
from ..auth.identity import ANONYMOUS, Caller
from ..deployment import Deployment
from ..protocol.faults import NotAuthenticated, PermissionDenied, RequestEntityTooLarge
from .cookies import read_cookie

T = TypeVar("T")
XML_TYPE = "text/xml; charset=UTF-8"
CALLER_KEY = "vospace.caller"  # where caller_of caches the Caller in the ASGI scope
CSRF_CHECKED_KEY = "vospace.csrf-checked"  # set by web forms that checked their csrf field
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def deployment(request: Request) -> Deployment:
    return request.app.state.deployment


SESSION_COOKIE = "vospace_session"


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``, else of ``X-CADC-DelegationToken``."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    delegated = request.headers.get("x-cadc-delegationtoken", "").strip()
    return delegated or None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``Authorization: Basic`` (the CADC client's .netrc path) as (user, password)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise NotAuthenticated("malformed Basic credentials") from None
    if not sep or not user:
        raise NotAuthenticated("malformed Basic credentials")
    return user, password


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


async def caller_of(request: Request) -> Caller:
    """The authenticated caller; presented but invalid credentials are an error, not anonymity.

    Accepted, in this order: Bearer token, X-CADC-DelegationToken, HTTP Basic, the session
    cookie set by ``/ac/login``. Group memberships are resolved now, so they are current.
    A state-changing request authenticated by the cookie needs the CSRF token too.
    """
    cached = request.scope.get(CALLER_KEY)
    if cached is not None:
        return cached
    if bearer_token(request) is None and basic_credentials(request) is None \
            and not read_cookie(request, SESSION_COOKIE):
        request.scope[CALLER_KEY] = ANONYMOUS  # no credentials: no worker-thread hop
        return ANONYMOUS
    return await run(caller_now, request)


def caller_now(request: Request) -> Caller:
    """``caller_of`` for code already on a worker thread (it queries the database), so that
    a request needing the caller and storage work pays for one thread hop, not two."""
    cached = request.scope.get(CALLER_KEY)
    if cached is not None:
        return cached
    authenticator = deployment(request).authenticator
    caller = ANONYMOUS
    token = bearer_token(request)
    basic = basic_credentials(request) if token is None else None
    if token is None and basic is None:
        token = read_cookie(request, SESSION_COOKIE) or None
        if token is not None:
            require_csrf(request, token)
    if token is not None:
        found = authenticator.from_token(token)
        if found is None:
            raise NotAuthenticated("the token is unknown, expired or revoked")
        caller = found
    elif basic is not None:
        found = authenticator.from_password(*basic, client_address(request))
        if found is None:
            raise NotAuthenticated("wrong user name or password")
        caller = found
    request.scope[CALLER_KEY] = caller
    return caller


def require_csrf(request: Request, session: str) -> None:
    """PermissionDenied unless an unsafe request carries this session's CSRF token (in the
    ``X-CSRF-Token`` header, or a form field a web endpoint already checked)."""
    if request.method in SAFE_METHODS or request.scope.get(CSRF_CHECKED_KEY):
        return
    if not deployment(request).csrf.valid(request.headers.get(CSRF_HEADER, ""),
                                          read_cookie(request, CSRF_COOKIE), session):
        raise PermissionDenied("missing or stale CSRF token: reload the page and try again")


def local_path(value: str, default: str) -> str:
    """``value`` if it is a path on this same host (never ``//host``, a scheme or a
    backslash a browser would read as a slash), else ``default``: where to go back to."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


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


def data_base_url(request: Request) -> str:
    """Where pre-authorized URLs send the bytes: ``data_url`` when configured; else with a
    ``data_port``, the public base URL's scheme and host on that port, unless the request
    came through a proxy (``X-Forwarded-For``), which then routes ``/{svc}/preauth/`` to
    the replicas' data ports itself (docker/nginx/vospace.conf.template); else the base URL."""
    settings = deployment(request).settings
    if settings.data_url:
        return settings.data_url.rstrip("/")
    base = base_url(request)
    if not settings.data_port or "x-forwarded-for" in request.headers:
        return base
    parts = urlsplit(base)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}:{settings.data_port}"
