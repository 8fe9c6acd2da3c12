"""``/posix-mapper/uid`` and ``/posix-mapper/gid``: POSIX ids as ``/etc/passwd`` and
``/etc/group`` lines (CADC posix-mapper style), for session containers that mount arc.

Optional filters: ``?user=NAME`` on ``uid``, ``?group=NAME`` on ``gid``. Listing allocates
the ids of users and groups that had none yet. Any authenticated caller may read them.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..auth import policy
from ..auth.posix import PosixMapper
from ..protocol.faults import NodeNotFound
from .requests import caller_of, deployment, run


async def _listing(request: Request, what: str, lines_of, filter_param: str) -> Response:
    """The ``lines_of(mapper)`` listing, or only the line named ``?<filter_param>=``."""
    policy.require_authenticated(await caller_of(request), f"list POSIX {what}")
    lines = await run(lines_of, deployment(request).posix)
    wanted = request.query_params.get(filter_param)
    if wanted is not None:
        lines = [line for line in lines if line.split(":", 1)[0] == wanted]
        if not lines:
            raise NodeNotFound(f"{filter_param} {wanted}")
    return PlainTextResponse("".join(line + "\n" for line in lines))


async def uids(request: Request) -> Response:
    return await _listing(request, "users", PosixMapper.passwd, "user")


async def gids(request: Request) -> Response:
    return await _listing(request, "groups", PosixMapper.group, "group")


def posix_routes() -> list[Route]:
    return [Route("/uid", uids, methods=["GET"]), Route("/gid", gids, methods=["GET"])]
