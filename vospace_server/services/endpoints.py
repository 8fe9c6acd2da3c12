"""The shape of a service's endpoint classes: built for one service (vault or arc), they
list their routes, which the app mounts under ``/{service.name}``."""
from __future__ import annotations

from starlette.routing import Route

from ..deployment import Service


class ServiceEndpoints:
    def __init__(self, service: Service) -> None:
        self.service = service

    def routes(self) -> list[Route]:
        raise NotImplementedError
