"""``/posix-mapper/uid`` and ``/posix-mapper/gid``: POSIX ids as ``/etc/passwd`` and
``/etc/group`` lines (CADC posix-mapper style), for session containers that mount arc.

Optional filters: ``?user=NAME`` on ``uid``, ``?group=NAME`` on ``gid`` (the id is then
allocated if it does not exist yet). Any authenticated caller may read them.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..auth import policy
from ..protocol.faults import NodeNotFound
from .requests import caller_of, deployment, run


def _text(lines: list[str]) -> Response:
    return PlainTextResponse("".join(line + "\n" for line in lines))


async def uids(request: Request) -> Response:
    policy.require_authenticated(await caller_of(request), "list POSIX users")
    mapper = deployment(request).posix
    lines = await run(mapper.passwd)
    wanted = request.query_params.get("user")
    if wanted is not None:
        lines = [line for line in lines if line.split(":", 1)[0] == wanted]
        if not lines:
            raise NodeNotFound(f"user {wanted}")
    return _text(lines)


async def gids(request: Request) -> Response:
    policy.require_authenticated(await caller_of(request), "list POSIX groups")
    mapper = deployment(request).posix
    lines = await run(mapper.group)
    wanted = request.query_params.get("group")
    if wanted is not None:
        lines = [line for line in lines if line.split(":", 1)[0] == wanted]
        if not lines:
            raise NodeNotFound(f"group {wanted}")
    return _text(lines)


def posix_routes() -> list[Route]:
    return [Route("/uid", uids, methods=["GET"]), Route("/gid", gids, methods=["GET"])]
