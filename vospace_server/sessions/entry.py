"""The way into a session host, in HTTP (the tickets themselves: tickets.py).

On the platform's origin:
- ``GET /session-ticket/<id>?next=<path>``: a caller logged in (the web cookie, or a bearer
  token of ours) who may use the session is redirected to the session host's
  ``/ticket?ticket=...&next=<path>``; an anonymous one to the login page first. A browser
  another site sent to someone else's session is asked first (a page whose form POSTs
  back here).
- ``/session/<type>/<id>/...``, where apps used to be served: redirected to the same path on
  the session's host, never proxied here.

On a session host: ``GET /ticket`` swaps the ticket for the pass cookie and redirects to
``next``; ``to_platform`` is where the proxy sends a browser that has no pass yet, and
where ``GET /`` sends anyone who typed the bare host name.
"""
from __future__ import annotations

import time
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import policy
from ..auth.store import TOKEN_PREFIX, token_digest
from ..protocol.faults import VOSpaceFault
from ..services.cookies import read_cookie, set_cookie
from ..services.requests import (SESSION_COOKIE, base_url, bearer_token, caller_of, deployment,
                                 local_path, run)
from ..web.render import check_form_csrf, page, refusal
from .hosts import HOST_SESSION_KEY, SESSION_ID
from .model import URL_PATHS, Session
from .service import SessionService
from .tickets import PASS_COOKIE, TICKET_PATH, Pass

# Neither the ticket nor the page before it may travel on: not cached, not in a Referer.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def service_of(request: Request) -> SessionService:
    return request.app.state.sessions


def app_path(session: Session) -> str:
    return f"/session/{URL_PATHS[session.type]}/{session.id}/"


def path_and_query(request: Request) -> str:
    """Where the browser is on this host (``next`` for the redirects that bring it back)."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def to_platform(request: Request, session_id: str) -> Response:
    """Send a browser without a pass from the session host to the platform for a ticket
    that brings it back here (from the bare host: to the session's app, which the
    platform knows)."""
    hosts = service_of(request).hosts
    platform = hosts.platform(request.url.scheme, request.url.port)
    back = "" if request.url.path == "/" else f"?{urlencode({'next': path_and_query(request)})}"
    return RedirectResponse(f"{platform}/session-ticket/{session_id}{back}", 303,
                            headers=PRIVATE)


async def host_root(request: Request) -> Response:
    """The bare session host, as someone types it: on to the session's app, by way of the
    platform's ticket (which checks who may use the session and knows its app's path)."""
    session_id = request.scope[HOST_SESSION_KEY]
    if not session_id:
        return PlainTextResponse("no session is served at this host name\n", 404)
    return to_platform(request, session_id)


# Navigations another site started (a link in a mail, on another page, on a session app's
# page), by ``Sec-Fetch-Site``: a typed address says "none", our own pages "same-origin".
FOREIGN_NAVIGATIONS = frozenset({"cross-site", "same-site"})


def asks_first(request: Request, caller_name: str, session: Session, by_cookie: bool) -> bool:
    """Whether a browser must confirm before it gets a ticket: another site sent it to a
    session its user does not own. Else a link could seat a member of the group, logged in
    as themselves, in a session of its sender's choosing, where the owner sees what they
    do. (Bearer-token callers are programs: no site can make them follow a link.)"""
    return request.method != "POST" and by_cookie and caller_name != session.owner \
        and request.headers.get("sec-fetch-site") in FOREIGN_NAVIGATIONS


async def issue_ticket(request: Request) -> Response:
    """GET (and HEAD): the ticket, or first the question whether to open someone else's
    session when another site sent the browser here; POST: the answer (the page's form,
    CSRF-checked)."""
    next_path = request.query_params.get("next", "")
    if request.method == "POST":
        try:
            form = await check_form_csrf(request)
        except VOSpaceFault as fault:
            return refusal(request, fault)
        next_path = (form.get("next") or [""])[0]
    service, session_id = service_of(request), request.path_params["session_id"]
    try:
        caller = await caller_of(request)
    except VOSpaceFault as fault:
        return PlainTextResponse(fault.detail + "\n", fault.status)
    if caller.is_anonymous:
        return RedirectResponse(f"/storage/login?next={quote(path_and_query(request))}", 303)
    bearer = bearer_token(request)
    by_cookie = bearer is None
    token = read_cookie(request, SESSION_COOKIE) if bearer is None else bearer
    if not token.startswith(TOKEN_PREFIX):
        return PlainTextResponse("log in on this site's login page to open a session\n", 403)
    session = await run(service.store.get, session_id)
    if session is None or not session.interactive:
        return PlainTextResponse(f"session {session_id} not found\n", 404)
    if not policy.may_use_session(caller, session.owner, session.shared_group):
        return PlainTextResponse(f"{caller.name} may not use session {session_id}\n", 403)
    if asks_first(request, caller.name, session, by_cookie):
        asking = page(request, "join.html", {"caller": caller, "session": session,
                                             "next": next_path})
        asking.headers.update(PRIVATE)
        return asking
    ticket = await run(service.tickets.issue, session_id, caller.name, token_digest(token))
    target = local_path(next_path, app_path(session))
    origin = service.hosts.origin(base_url(request), session_id)
    return RedirectResponse(f"{origin}{TICKET_PATH}?{urlencode({'ticket': ticket, 'next': target})}",
                            303, headers=PRIVATE)


def _redeem(request: Request, ticket: str, session_id: str) -> Pass | None:
    """The pass a ticket buys (worker thread): it lives as long as its login token, at most
    the login lifetime from now."""
    dep, service = deployment(request), service_of(request)
    granted = service.tickets.redeem(ticket, session_id)
    account = dep.auth.account_by_digest(granted.credential) if granted else None
    if granted is None or account is None or account.name != granted.user:
        return None
    expires = time.time() + dep.settings.login_token_hours * 3600
    if account.expires is not None:
        expires = min(expires, account.expires)
    return Pass(granted.session, granted.user, granted.credential, expires)


async def redeem_ticket(request: Request) -> Response:
    session_id = request.scope[HOST_SESSION_KEY]
    granted = await run(_redeem, request, request.query_params.get("ticket", ""), session_id)
    if granted is None:
        return PlainTextResponse("this ticket is used, expired or not for this session: open "
                                 "the session again from the science portal\n", 403,
                                 headers=PRIVATE)
    target = local_path(request.query_params.get("next", ""), "/")
    response = RedirectResponse(target, 303, headers=PRIVATE)
    set_cookie(request, response, PASS_COOKIE, service_of(request).tickets.sign(granted),
               max_age=int(granted.expires - time.time()))
    return response


async def to_session_host(request: Request) -> Response:
    """An app's old address on the platform: the same path on its session host."""
    session_id = request.path_params["session_id"]
    if not SESSION_ID.match(session_id):
        return PlainTextResponse(f"session {session_id} not found\n", 404)
    origin = service_of(request).hosts.origin(base_url(request), session_id)
    return RedirectResponse(f"{origin}{path_and_query(request)}", 307)


METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def platform_routes() -> list[BaseRoute]:
    """The platform's session routes: tickets, and the old app paths redirected."""
    path = "/session/{kind}/{session_id}"
    return [Route("/session-ticket/{session_id}", issue_ticket, methods=["GET", "POST"]),
            Route(path, to_session_host, methods=METHODS),
            Route(path + "/{rest:path}", to_session_host, methods=METHODS)]


def ticket_routes() -> list[BaseRoute]:
    """The session host's own entry: the ticket swap, and the bare host."""
    return [Route(TICKET_PATH, redeem_ticket, methods=["GET"]),
            Route("/", host_root, methods=["GET", "HEAD"])]
