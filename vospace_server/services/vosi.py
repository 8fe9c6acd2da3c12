"""VOSI ``/capabilities`` and ``/availability`` per service, and ``/reg/resource-caps``."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..deployment import Service
from ..protocol.vosi import (VOSPACE_CAPABILITIES, render_availability, render_capabilities,
                             render_resource_caps)
from .requests import base_url, deployment, xml_response

# Resource IDs the CADC client derives for short URIs against a local deployment
# (``vos:x`` -> ivo://opencadc.org/vault, ``arc:x`` -> ivo://opencadc.org/arc).
CADC_LOCAL_AUTHORITY = "opencadc.org"


def vosi_routes(service: Service) -> list[Route]:
    async def capabilities(request: Request) -> Response:
        url = f"{base_url(request)}/{service.name}"
        return xml_response(render_capabilities(url, VOSPACE_CAPABILITIES))

    async def availability(request: Request) -> Response:
        return xml_response(render_availability(True, f"the {service.name} service is accepting requests"))

    return [Route("/capabilities", capabilities), Route("/availability", availability)]


async def resource_caps(request: Request) -> Response:
    base = base_url(request)
    entries: dict[str, str] = {}
    for authority in (deployment(request).settings.authority, CADC_LOCAL_AUTHORITY):
        for name in (*deployment(request).services, "skaha"):
            entries[f"ivo://{authority}/{name}"] = f"{base}/{name}/capabilities"
    return PlainTextResponse(render_resource_caps(entries))
