"""``/arc/snapshots/{path}``: restoring arc snapshots over HTTP (the web browser's button).

Snapshots are browsed as nodes, ``R/.snapshots/<stamp>/...`` (see storage/arc/snapshots.py);
this endpoint puts one back:

- ``POST /arc/snapshots/R/.snapshots/<stamp>[/rest]``: the snapshot copy of ``rest`` (default:
  everything of ``R``) replaces the live ``R/rest``; answers ``{"restored": "R/rest"}``.

The caller needs read access to the snapshot copy and write access to the live node (or
its parent, when it is gone), the same checks as reading the one and uploading the other.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..auth import policy
from ..auth.identity import Caller
from ..protocol.faults import InvalidArgument
from ..storage.arc import snapshots
from .endpoints import ServiceEndpoints
from .files import authorize_put
from .nodes import node_path
from .requests import caller_now, run


class SnapshotEndpoints(ServiceEndpoints):
    def routes(self) -> list[Route]:
        return [Route("/snapshots/{path:path}", self.restore, methods=["POST"])]

    async def restore(self, request: Request) -> Response:
        path = node_path(request)
        inside = snapshots.split(path)
        stamp, _, rest = (inside[1] if inside else "").partition("/")
        if inside is None or not stamp:
            raise InvalidArgument(f"/{path} is not inside a snapshot (R/.snapshots/STAMP/...)")
        root = inside[0]
        live = f"{root}/{rest}" if rest else root
        tree = self.service.tree

        def check_and_restore() -> str:  # one worker hop
            caller: Caller = caller_now(request)
            policy.require_read(caller, tree.resolve(path))
            authorize_put(caller, tree, live)
            return tree.restore_snapshot(root, stamp, rest)

        return JSONResponse({"restored": await run(check_and_restore)})
