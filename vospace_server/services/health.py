"""``/healthz`` (the process answers) and ``/readyz`` (its database and stores answer).

Probes for load balancers and Kubernetes: no credentials, no node data, only whether this
process should get traffic. ``/readyz`` runs its checks on a worker thread with a time
limit, so a store that hangs makes the answer "not ready" instead of a hung probe.
"""
from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .requests import deployment, run

READY_TIMEOUT = 5.0  # seconds; below the usual probe timeout


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    with anyio.move_on_after(READY_TIMEOUT):
        problems = await run(deployment(request).readiness)
        status = 503 if problems else 200
        return JSONResponse({"ready": not problems, "problems": problems}, status_code=status)
    return JSONResponse({"ready": False, "problems": {"checks": "no answer in time"}},
                        status_code=503)


def health_routes() -> list[Route]:
    return [Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"])]
