"""The ASGI application: one Starlette app serving every service of a deployment."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route

from .config import Settings
from .deployment import Deployment
from .jobs.runner import JobRunner
from .protocol.faults import VOSpaceFault
from .services.ac import ac_routes
from .services.audit import AuditMiddleware, RouteLabels
from .services.errors import handle_fault, handle_http_error, handle_unexpected
from .services.files import FileEndpoints
from .services.health import health_routes
from .services.metrics import metrics_routes
from .services.nodes import NodeEndpoints
from .services.packages import PackageEndpoints
from .services.posix import posix_routes
from .services.snapshots import SnapshotEndpoints
from .services.synctrans import SyncTransfers
from .services.uws import uws_routes
from .services.versions import VersionEndpoints
from .storage.arc.snapshots import Scheduler
from .storage.tree import KeepsVersions, TakesSnapshots
from .services.vosi import resource_caps, vosi_routes
from .sessions.api import skaha_mount
from .sessions.entry import platform_routes as session_platform_routes
from .sessions.hosts import SessionHostRoute
from .sessions.proxy import session_host_routes
from .sessions.service import SessionService
from .web.portal import portal_routes
from .web.storage import storage_routes


def snapshot_scheduler(deployment: Deployment) -> Scheduler | None:
    """The background snapshots of arc homes and projects, if ``snapshot_schedule`` is set."""
    settings = deployment.settings
    stores = [service.tree.snapshots for service in deployment.services.values()
              if isinstance(service.tree, TakesSnapshots)]
    if not settings.snapshot_schedule or not stores:
        return None
    return Scheduler(stores[0], settings.snapshot_schedule, settings.snapshot_keep)


def create_app(settings: Settings, deployment: Deployment | None = None) -> Starlette:
    deployment = deployment or Deployment(settings)
    sessions = SessionService(deployment)
    # First: a request for a session host never reaches a platform route (sessions/hosts.py).
    routes: list[BaseRoute] = [SessionHostRoute(sessions.hosts, session_host_routes()),
                               Route("/reg/resource-caps", resource_caps),
                               Mount("/ac", routes=ac_routes()),
                               Mount("/posix-mapper", routes=posix_routes())]
    routes += health_routes() + metrics_routes()
    for service in deployment.services.values():
        service_routes = vosi_routes(service) + NodeEndpoints(service).routes()
        service_routes += uws_routes(service)
        service_routes += FileEndpoints(service).routes() + SyncTransfers(service).routes()
        service_routes += PackageEndpoints(service).routes()
        if isinstance(service.tree, KeepsVersions):
            service_routes += VersionEndpoints(service).routes()
        else:
            service_routes += SnapshotEndpoints(service).routes()
        routes.append(Mount(f"/{service.name}", routes=service_routes))
    routes.append(skaha_mount())
    routes += session_platform_routes()

    routes += storage_routes() + portal_routes()

    runner = JobRunner(deployment)
    snapshots = snapshot_scheduler(deployment)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        runner.start()
        sessions.runner.start()
        background = [s for s in (snapshots, deployment.copier) if s is not None]
        for service in background:
            service.start()
        yield
        for service in background:
            service.stop()
        sessions.runner.close()
        runner.stop()
        deployment.close()

    observed = Middleware(AuditMiddleware, metrics=deployment.metrics, labels=RouteLabels(routes),
                          transfers=deployment.transfers)
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[observed],
                    exception_handlers={
                        VOSpaceFault: handle_fault,
                        HTTPException: handle_http_error,
                        Exception: handle_unexpected,
                    })
    app.state.deployment = deployment
    app.state.job_runner = runner
    app.state.sessions = sessions
    return app
