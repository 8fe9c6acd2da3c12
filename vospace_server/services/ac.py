"""``/ac``: login, whoami and the groups service, shaped like CADC's ``ac``/GMS endpoints.

- ``POST /ac/login`` (form ``username``, ``password``; ``session=true`` also sets the web
  session cookie) -> a bearer token as text/plain, like CADC's login.
- ``POST /ac/logout`` revokes the presented token and clears the cookie (with the cookie
  alone it needs the page's CSRF token, see auth/csrf.py).
- ``GET /ac/whoami`` -> the caller's name. ``GET /ac/search?group=A&group=B`` -> the caller's
  groups among those, one per line (all of them when no group is given; IVOA GMS).
- ``GET /ac/groups`` (names), ``PUT|GET|DELETE /ac/groups/{name}`` (GET answers JSON),
  ``PUT|DELETE /ac/groups/{name}/{userMembers|groupMembers|userAdmins|groupAdmins}/{id}``,
  ``GET /ac/users/{name}/groups`` (that user's groups; the user or an administrator).
"""
from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..auth.groups import ROLES, check_group_name, group_uri, local_name
from ..auth.identity import Caller
from ..protocol.faults import InvalidArgument, NodeNotFound, NotAuthenticated, PermissionDenied
from .audit import log_event
from .cookies import delete_cookie, read_cookie, set_cookie
from .requests import (CALLER_KEY, SESSION_COOKIE, bearer_token, caller_of, client_address,
                       deployment, read_body, run)

MAX_FORM_BYTES = 8 * 1024


def text_lines(lines: list[str], status: int = 200) -> Response:
    return PlainTextResponse("".join(f"{line}\n" for line in lines), status_code=status)


async def authenticated(request: Request) -> Caller:
    caller = await caller_of(request)
    if caller.is_anonymous:
        raise NotAuthenticated("log in first")
    return caller


async def login(request: Request) -> Response:
    body = await read_body(request, MAX_FORM_BYTES)
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    user, password = form.get("username", ""), form.get("password", "")
    if not user or not password:
        raise InvalidArgument("username and password are required")
    token = await open_session(request, user, password)
    response = PlainTextResponse(token)
    if form.get("session", "").lower() in ("1", "true", "yes"):
        set_session_cookie(request, response, token)
    return response


async def open_session(request: Request, user: str, password: str) -> str:
    """A new login token for ``user`` if the password is right (NotAuthenticated if not);
    the web pages' login form uses it too."""
    dep = deployment(request)
    caller = await run(dep.authenticator.from_password, user, password,
                       client_address(request))
    if caller is None:
        log_event("login-failed", request.scope, user=user)
        raise NotAuthenticated("wrong user name or password")
    token = await run(dep.auth.create_token, user, dep.settings.login_token_hours * 3600.0,
                      "login")
    request.scope[CALLER_KEY] = caller
    return token


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """The browser session: HttpOnly, SameSite=Lax, Secure when served over TLS."""
    set_cookie(request, response, SESSION_COOKIE, token,
               max_age=deployment(request).settings.login_token_hours * 3600)


async def close_session(request: Request, response: Response) -> None:
    """Revoke the presented token (a cookie needs the CSRF token) and clear the cookie."""
    await authenticated(request)
    token = bearer_token(request) or read_cookie(request, SESSION_COOKIE)
    if token:
        await run(deployment(request).auth.revoke_token, token)
    delete_cookie(request, response, SESSION_COOKIE)


async def logout(request: Request) -> Response:
    response = Response(status_code=204)
    await close_session(request, response)
    return response


async def whoami(request: Request) -> Response:
    return PlainTextResponse((await authenticated(request)).name or "")


async def search(request: Request) -> Response:
    caller = await authenticated(request)
    asked = request.query_params.getlist("group")
    if not asked:
        return text_lines(sorted(caller.groups))
    authority = deployment(request).settings.authority
    return text_lines([g for g in asked if group_uri(authority, _name(g, authority))
                       in caller.groups])


def _name(value: str, authority: str) -> str:
    try:
        return local_name(value, authority)
    except InvalidArgument:
        return ""


async def list_groups(request: Request) -> Response:
    await authenticated(request)
    return text_lines(await run(deployment(request).groups.names))


async def group(request: Request) -> Response:
    caller = await authenticated(request)
    store = deployment(request).groups
    name = check_group_name(request.path_params["name"])
    if request.method == "PUT":
        await run(store.create, name, caller.name)
        return Response(status_code=201)
    if request.method == "GET":
        found = await run(store.get, name)
        return JSONResponse({"name": found.name, "owner": found.owner,
                             "uri": group_uri(store.authority, found.name), **found.entries})
    await _require_manager(caller, request, name)
    await run(store.delete, name)
    return Response(status_code=200)


async def group_entry(request: Request) -> Response:
    caller = await authenticated(request)
    dep = deployment(request)
    name = check_group_name(request.path_params["name"])
    role, entry = request.path_params["role"], request.path_params["entry"]
    if role not in ROLES:
        raise NodeNotFound(f"/ac/groups/{name}/{role}")
    await _require_manager(caller, request, name)
    if request.method == "PUT":
        if ROLES[role][1] == "user" and await run(dep.auth.account, entry) is None:
            raise NodeNotFound(f"user {entry}")
        if ROLES[role][1] == "group":
            entry = local_name(entry, dep.settings.authority)
        await run(dep.groups.add, name, role, entry)
        return Response(status_code=200)
    if ROLES[role][1] == "group":
        entry = local_name(entry, dep.settings.authority)
    await run(dep.groups.remove, name, role, entry)
    return Response(status_code=200)


async def _require_manager(caller: Caller, request: Request, name: str) -> None:
    if caller.is_admin or await run(deployment(request).groups.may_manage, caller.name, name):
        return
    raise PermissionDenied(f"{caller.name} may not manage group {name}")


async def user_groups(request: Request) -> Response:
    caller = await authenticated(request)
    user = request.path_params["name"]
    if user != caller.name and not caller.is_admin:
        raise PermissionDenied("only administrators may list another user's groups")
    return text_lines(sorted(await run(deployment(request).groups.memberships, user)))


def ac_routes() -> list[Route]:
    return [
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/whoami", whoami, methods=["GET"]),
        Route("/search", search, methods=["GET"]),
        Route("/groups", list_groups, methods=["GET"]),
        Route("/groups/{name}", group, methods=["GET", "PUT", "DELETE"]),
        Route("/groups/{name}/{role}/{entry}", group_entry, methods=["PUT", "DELETE"]),
        Route("/users/{name}/groups", user_groups, methods=["GET"]),
    ]
