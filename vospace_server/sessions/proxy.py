"""The session proxy: ``/session/<type>/<id>/...`` on the session's own host
(``<id>.<session_domain>``, sessions/hosts.py), the only way to an interactive session's app
(HTTP and websockets, streamed both ways).

Who gets through: the owner, administrators and, when the owner shared the session with a
group (``POST /skaha/v1/session/<id>?action=share&group=<name>``), that group's members
(``policy.may_use_session``, asked on every request); anyone else 403, websockets included.
Credentials: a bearer token (API clients), or the session host's pass cookie (browsers,
sessions/tickets.py); a browser without a pass is sent to the platform for a ticket first.
A path for another session than the host's is 404. A pass-authenticated request from a page
of another origin (its ``Origin`` header; other session hosts are the same *site*, so
SameSite does not keep them out) is refused.

What the app gets: the request without credentials (``Authorization``,
``X-CADC-DelegationToken``, the pass and any platform cookie), and the path as the app
expects it: notebooks (JupyterLab with ``base_url`` = the prefix) get the whole path, other
apps the path below the prefix plus ``X-Forwarded-Prefix``. What the browser gets back: the
app's response, with ``Set-Cookie`` confined to the session's prefix (never a cookie of ours)
and a root-relative redirect moved under the prefix for apps that do not know it.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator
from urllib.parse import urlsplit

import httpcore
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ..auth import policy
from ..auth.csrf import CSRF_COOKIE
from ..auth.identity import Caller
from ..protocol.faults import VOSpaceFault
from ..services.cookies import cookie_name, our_cookie
from ..services.requests import (SESSION_COOKIE, basic_credentials, bearer_token, caller_now,
                                 deployment, run)
from .entry import METHODS, ticket_routes, to_platform
from .errors import Forbidden, NotFound, SkahaError
from .hosts import HOST_SESSION_KEY
from .model import RUNNING, URL_PATHS, Session
from .tickets import PASS_COOKIE
from .upstream import app_pool, open_app_socket

log = logging.getLogger("vospace.sessions")

TYPES_BY_PATH = {path: kind for kind, path in URL_PATHS.items()}
KEEPS_PREFIX = ("notebook",)  # apps told their base URL; the others are served from "/"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host"}
PLATFORM_HEADERS = {"authorization", "x-cadc-delegationtoken", "cookie"}
OUR_COOKIES = {SESSION_COOKIE, CSRF_COOKIE, PASS_COOKIE}
WS_HEADERS_SET_BY_CLIENT = {"sec-websocket-key", "sec-websocket-version",
                            "sec-websocket-extensions", "sec-websocket-protocol", "origin"}


class Target:
    """An admitted request's session, its app's endpoint and the path prefix."""

    def __init__(self, session: Session, endpoint: str, prefix: str) -> None:
        self.session, self.endpoint, self.prefix = session, endpoint, prefix

    def app_path(self, path: str) -> str:
        if self.session.type in KEEPS_PREFIX:
            return path
        return path[len(self.prefix):] or "/"


class NoCredential(Exception):
    """Neither a token nor a valid pass: a browser is sent for a ticket (entry.py)."""


def _admit(conn: HTTPConnection) -> Target:
    """Authenticate, check the session and the caller's right to use it (worker thread)."""
    kind = TYPES_BY_PATH.get(conn.path_params["kind"])
    session_id = conn.path_params["session_id"]
    if session_id != conn.scope[HOST_SESSION_KEY]:
        raise NotFound(f"session {session_id} is not served on this host")
    caller = _caller(conn, session_id)
    service = conn.app.state.sessions
    session = service.store.get(session_id)
    if session is None or kind is None or session.type != kind:
        raise NotFound(f"session {session_id} not found")
    if not policy.may_use_session(caller, session.owner, session.shared_group):
        raise Forbidden(f"{caller.name or 'an anonymous caller'} may not use session "
                        f"{session_id}")
    endpoint = service.runner.app_endpoint(session)
    if session.status != RUNNING or endpoint is None:
        raise SessionUnavailable(f"session {session_id} is {session.status}, its app is not "
                                 f"answering yet")
    return Target(session, endpoint, f"/session/{URL_PATHS[kind]}/{session_id}")


class SessionUnavailable(SkahaError):
    status = 503


def _caller(conn: HTTPConnection, session_id: str) -> Caller:
    """The caller of a token (Bearer, X-CADC-DelegationToken, Basic), else of a valid pass
    for this session (from this host's own pages only), else NoCredential."""
    request = Request(dict(conn.scope, type="http", method="GET"))  # caller_now reads a Request
    try:
        if bearer_token(request) is not None or basic_credentials(request) is not None:
            return caller_now(request)
    except VOSpaceFault as fault:
        raise Forbidden(fault.detail) from None
    dep = deployment(request)
    for value in _pass_values(conn):
        granted = conn.app.state.sessions.tickets.verify(value, session_id)
        account = dep.auth.account_by_digest(granted.credential) if granted else None
        if granted is not None and account is not None and account.name == granted.user:
            _check_origin(conn)
            return dep.authenticator.caller(account)
    raise NoCredential()


def _pass_values(conn: HTTPConnection) -> list[str]:
    """Every pass cookie the browser sent: a page of another session host may have set one
    for the whole session domain, which must not hide this host's own."""
    values = []
    for part in conn.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == cookie_name(conn, PASS_COOKIE) and value:
            values.append(value)
    return values


def _check_origin(conn: HTTPConnection) -> None:
    """A pass opens requests and websockets from this session host's own pages only."""
    origin = conn.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != conn.headers.get("host"):
        raise Forbidden(f"requests from {origin} may not use this session")


def _forwarded_headers(conn: HTTPConnection, target: Target) -> list[tuple[str, str]]:
    """The request headers for the app: no hop-by-hop, none of the platform's credentials."""
    headers = [(k, v) for k, v in conn.headers.items()
               if k not in HOP_BY_HOP and k not in PLATFORM_HEADERS]
    cookies = "; ".join(f"{k}={v}" for k, v in conn.cookies.items()
                        if not our_cookie(k, OUR_COOKIES))
    if cookies:
        headers.append(("cookie", cookies))
    headers += [("host", conn.headers.get("host", "localhost")),
                ("x-forwarded-prefix", target.prefix),
                ("x-forwarded-proto", conn.url.scheme.replace("ws", "http")),
                ("x-forwarded-for", conn.client.host if conn.client else "")]
    return headers


def _confined_cookie(value: str, prefix: str) -> str | None:
    """An app's Set-Cookie limited to its session's path; None for a platform cookie."""
    name = value.split("=", 1)[0].strip()
    if our_cookie(name, OUR_COOKIES):
        return None
    kept = [part for part in value.split(";")
            if part.strip().split("=", 1)[0].strip().lower() not in ("path", "domain")]
    return "; ".join(p.strip() for p in kept) + f"; Path={prefix}/"


def _response_headers(raw: list[tuple[bytes, bytes]], target: Target) -> list[tuple[bytes, bytes]]:
    headers = []
    for key, value in raw:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        if name in HOP_BY_HOP:
            continue
        if name == "set-cookie":
            confined = _confined_cookie(text, target.prefix)
            if confined is None:
                continue
            text = confined
        elif (name == "location" and target.session.type not in KEEPS_PREFIX
              and text.startswith("/") and not text.startswith("//")):
            text = target.prefix + text
        headers.append((name.encode("latin-1"), text.encode("latin-1")))
    return headers


class ProxiedResponse(Response):
    """The app's response, streamed to the browser as it arrives."""

    def __init__(self, upstream: httpcore.Response, pool: httpcore.AsyncConnectionPool,
                 target: Target) -> None:
        self.upstream, self.pool, self.target = upstream, pool, target
        self.status_code = upstream.status
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": _response_headers(self.upstream.headers, self.target)})
            async for chunk in self.upstream.aiter_stream():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (httpcore.NetworkError, httpcore.RemoteProtocolError, OSError) as exc:
            log.warning("session %s: its app failed mid-response: %s",
                        self.target.session.id, exc)  # the browser sees a cut response
        finally:
            await self.upstream.aclose()
            await self.pool.aclose()


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _bad_gateway(target: Target, exc: Exception) -> Response:
    return PlainTextResponse(f"session {target.session.id}: its app is not answering "
                             f"({type(exc).__name__}: {exc or 'connection closed'})\n", 502)


async def proxy_http(request: Request) -> Response:
    try:
        target = await run(_admit, request)
    except NoCredential:
        if request.method in ("GET", "HEAD"):
            return to_platform(request, request.scope[HOST_SESSION_KEY])
        return PlainTextResponse("log in first\n", status_code=401)
    except SkahaError as error:
        return PlainTextResponse(error.message + "\n", status_code=error.status)
    pool = app_pool(target.endpoint, target.session)
    path = target.app_path(request.url.path)
    query = request.url.query
    url = httpcore.URL(scheme=b"http", host=b"app", port=None,
                       target=(path + (f"?{query}" if query else "")).encode())
    headers = _forwarded_headers(request, target)
    has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
    if has_body and "content-length" not in request.headers:
        headers.append(("transfer-encoding", "chunked"))
    upstream_request = httpcore.Request(request.method, url, headers=headers,
                                        content=_body(request) if has_body else None)
    try:
        upstream = await pool.handle_async_request(upstream_request)
    except (httpcore.NetworkError, httpcore.RemoteProtocolError, httpcore.TimeoutException,
            OSError) as exc:
        await pool.aclose()
        return _bad_gateway(target, exc)
    return ProxiedResponse(upstream, pool, target)


async def proxy_websocket(websocket: WebSocket) -> None:
    try:
        target = await run(_admit, websocket)
    except NoCredential:
        await _deny(websocket, 401, "log in first")
        return
    except SkahaError as error:
        await _deny(websocket, error.status, error.message)
        return
    query = websocket.url.query
    uri = (f"ws://{websocket.headers.get('host', 'app')}{target.app_path(websocket.url.path)}"
           + (f"?{query}" if query else ""))
    headers = [(k, v) for k, v in _forwarded_headers(websocket, target)
               if k not in WS_HEADERS_SET_BY_CLIENT and k != "host"]
    try:
        sock = await open_app_socket(target.endpoint, target.session)
        upstream = await connect(uri, sock=sock, origin=websocket.headers.get("origin"),
                                 subprotocols=websocket.scope.get("subprotocols") or None,
                                 additional_headers=headers, max_size=None, compression=None,
                                 user_agent_header=None, open_timeout=30)
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        await _deny(websocket, 502, f"session {target.session.id}: its app refused the "
                                    f"websocket ({type(exc).__name__}: {exc})")
        return
    async with upstream:
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _relay(websocket, upstream)


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a websocket with an HTTP status (403 where the server cannot say more)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(message + "\n", status))
    else:
        await websocket.close()


async def _relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    async def to_app() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await upstream.send(data if data is not None else message.get("text", ""))

    async def to_browser() -> None:
        async for data in upstream:
            if isinstance(data, bytes):
                await websocket.send_bytes(data)
            else:
                await websocket.send_text(data)

    tasks = [asyncio.ensure_future(to_app()), asyncio.ensure_future(to_browser())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(
                    result, (ConnectionClosed, WebSocketDisconnect, asyncio.CancelledError)):
                log.warning("session websocket relay: %s", result)
        try:
            await websocket.close()
        except RuntimeError:
            pass  # the browser is already gone


async def to_slash(request: Request) -> Response:
    return RedirectResponse(request.url.path + "/", status_code=307)


def session_host_routes() -> list[BaseRoute]:
    """Everything a session host serves (hosts.SessionHostRoute): its entry (the ticket
    swap, the bare host), the app."""
    path = "/session/{kind}/{session_id}"
    return [*ticket_routes(), Route(path, to_slash, methods=METHODS),
            Route(path + "/{rest:path}", proxy_http, methods=METHODS),
            WebSocketRoute(path + "/{rest:path}", proxy_websocket)]
