"""``/metrics``: the Prometheus text format, for administrators or a scraper holding the
configured ``metrics_token`` (a bearer token that is no user's, so a scraper needs no
account). The scrape-time gauges query the database, so rendering runs on a worker thread."""
from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth.policy import require_admin
from .requests import bearer_token, caller_of, deployment, run


def _scrape_token_matches(request: Request) -> bool:
    configured = deployment(request).settings.metrics_token
    presented = bearer_token(request)
    return bool(configured and presented
                and hmac.compare_digest(configured.encode(), presented.encode()))


async def metrics(request: Request) -> Response:
    if not _scrape_token_matches(request):
        require_admin(await caller_of(request), "read the metrics")
    body = await run(generate_latest, deployment(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"])]
