"""``/science-portal``: the sessions page. The page is a shell: its script lists, launches,
renews and deletes the caller's sessions through the skaha API at ``/skaha/v1`` (with the
page's CSRF token), so the session service decides everything, as for any other client."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..protocol.faults import VOSpaceFault
from ..services.requests import caller_of
from .render import page, refusal


async def portal_page(request: Request) -> Response:
    try:
        caller = await caller_of(request)
    except VOSpaceFault as fault:
        return refusal(request, fault)
    return page(request, "portal.html", {"caller": caller, "next": "/science-portal"})


def portal_routes() -> list[Route]:
    return [Route("/science-portal", portal_page, methods=["GET"])]
