"""UWS 1.1 job endpoints: ``/transfers`` (async move/copy, and the sync transfer records),
``/async-delete`` (recursive delete) and ``/async-setprops`` (recursive property setting).

Each of the three is a job list with the same job resources below it
(``/{id}``, ``/phase``, ``/error``, ``/results``, ``/parameters``, ``/owner``,
``/executionduration``, ``/destruction``, ``/quote``). Parameters are accepted from the
query string or a form body, with case-insensitive names, as UWS says. Setting PHASE=RUN
runs the job inline for up to ``INLINE_BUDGET`` seconds before answering, so a fast job
is COMPLETED by the time the CADC client first polls (it sleeps 2 s before that).
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..auth.identity import Caller
from ..deployment import Service
from ..jobs import actions
from ..jobs.actions import caller_snapshot
from ..jobs.runner import error_of
from ..protocol import uris
from ..protocol.faults import (InvalidArgument, JobNotFound, NotAuthenticated, PermissionDenied,
                               VOSpaceFault)
from ..protocol.transfer import (PULL_FROM, PUSH_TO, Transfer, parse_transfer, render_transfer,
                                 transfer_element)
from ..protocol.uws import (PHASES, JobView, format_time, parse_time, render_job, render_job_list,
                            render_parameters, render_results)
from ..protocol.xml_io import parse_node
from ..storage.jobs import ACTIVE, COMPLETED, ERROR, PENDING, Job, Kind
from .requests import base_url, caller_of, deployment, read_body, run, xml_response
from .synctrans import SyncTransfers

INLINE_BUDGET = 1.5      # seconds a PHASE=RUN request waits for the job before answering
MAX_WAIT = 60.0          # cap on ?WAIT=n
WAIT_POLL = 0.1

# job list path -> the job kinds it holds
LISTS = {
    "transfers": (Kind.TRANSFER.value, Kind.SYNC.value),
    "async-delete": (Kind.DELETE.value,),
    "async-setprops": (Kind.SETPROPS.value,),
}


async def uws_params(request: Request, body: bytes | None = None) -> dict[str, str]:
    """Query and form parameters, names lower-cased (UWS names are case-insensitive)."""
    params = {k.lower(): v for k, v in request.query_params.items()}
    ctype = request.headers.get("content-type", "")
    if body is None and "application/x-www-form-urlencoded" in ctype:
        body = await read_body(request, deployment(request).settings.max_xml_bytes)
    if body and "application/x-www-form-urlencoded" in ctype:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise InvalidArgument("form body is not UTF-8") from None
        params.update({k.lower(): v for k, v in pairs})
    return params


async def _authenticated(request: Request) -> Caller:
    caller = await caller_of(request)
    if caller.is_anonymous:
        raise NotAuthenticated("async jobs need an authenticated caller")
    return caller


class JobEndpoints:
    """The UWS job list ``/{service}/{list_name}`` and its jobs."""

    def __init__(self, service: Service, list_name: str) -> None:
        self.service = service
        self.list_name = list_name
        self.kinds = LISTS[list_name]
        # sync transfer records are reachable by id but not listed (one per vcp)
        self.listed = tuple(k for k in self.kinds if k != Kind.SYNC.value)

    def routes(self) -> list[Route]:
        base = f"/{self.list_name}"
        return [
            Route(base, self.list_or_create, methods=["GET", "POST"]),
            Route(base + "/{job_id}", self.job, methods=["GET", "POST", "DELETE"]),
            Route(base + "/{job_id}/phase", self.phase, methods=["GET", "POST"]),
            Route(base + "/{job_id}/results/{result_id}", self.result, methods=["GET"]),
            Route(base + "/{job_id}/{attribute}", self.attribute, methods=["GET", "POST"]),
        ]

    # -- helpers ------------------------------------------------------------------------
    def _href(self, request: Request, job_id: str = "") -> str:
        url = f"{base_url(request)}/{self.service.name}/{self.list_name}"
        return f"{url}/{job_id}" if job_id else url

    async def _job(self, request: Request) -> Job:
        """The job in the URL, if the caller may see it."""
        caller = await caller_of(request)
        job = await run(deployment(request).jobs.get, request.path_params["job_id"])
        if job is None or job.service != self.service.name or job.kind not in self.kinds:
            raise JobNotFound(f"no job {request.path_params['job_id']}")
        if job.owner is None:
            return job  # an anonymous sync transfer: its unguessable id is the credential
        if caller.is_anonymous:
            raise NotAuthenticated("jobs are visible to their owner only")
        if not caller.is_admin and job.owner != caller.name:
            raise PermissionDenied(f"job {job.id} belongs to someone else")
        return job

    def _results(self, request: Request, job: Job) -> dict[str, str]:
        results = dict(job.results)
        if job.details is not None:
            results.setdefault("transferDetails",
                               f"{self._href(request, job.id)}/results/transferDetails")
        return results

    def _view(self, request: Request, job: Job) -> JobView:
        info = None
        params: dict[str, str] = {}
        if job.kind in (Kind.TRANSFER.value, Kind.SYNC.value) and job.request:
            try:
                transfer = parse_transfer(job.request.encode())
            except InvalidArgument:
                transfer = None
            if transfer is not None:
                info = transfer_element(transfer)
                params = {"target": transfer.target, "direction": transfer.direction}
                if transfer.is_node_transfer:
                    params["keepBytes"] = "true" if transfer.keep_bytes else "false"
        else:
            params = {"target": job.params.get("target", "")}
            params.update({uri: value or "" for uri, value in
                           job.params.get("properties", {}).items()})
        return JobView(id=job.id, href=self._href(request, job.id), phase=job.phase,
                       owner=job.owner, created=job.created, started=job.started,
                       ended=job.ended, duration=job.duration, destruction=job.destruction,
                       parameters=params, results=self._results(request, job),
                       error=job.error_message if job.phase == "ERROR" else None,
                       job_info=info)

    def _see_job(self, request: Request, job_id: str) -> Response:
        return RedirectResponse(self._href(request, job_id), status_code=303)

    # -- the job list -------------------------------------------------------------------
    async def list_or_create(self, request: Request) -> Response:
        if request.method == "GET":
            return await self.list_jobs(request)
        return await self.create(request)

    async def list_jobs(self, request: Request) -> Response:
        caller = await _authenticated(request)
        params = await uws_params(request)
        phases = [p.upper() for k, p in request.query_params.multi_items() if k.lower() == "phase"]
        if any(p not in PHASES for p in phases):
            raise InvalidArgument(f"unknown PHASE filter {phases}")
        try:
            after = parse_time(params["after"]) if params.get("after") else None
            last = int(params["last"]) if params.get("last") else None
        except ValueError:
            raise InvalidArgument("AFTER must be an ISO 8601 instant, LAST an integer") from None
        if last is not None and last < 0:
            raise InvalidArgument("LAST must not be negative")
        owner = None if caller.is_admin else caller.name
        found = await run(deployment(request).jobs.list, self.service.name, owner,
                          self.listed, phases or None, after, last)
        views = [self._view(request, j) for j in found]
        return xml_response(render_job_list(views))

    async def create(self, request: Request) -> Response:
        """POST to the list: a new PENDING job; with PHASE=RUN it is also started."""
        caller = await _authenticated(request)
        limit = deployment(request).settings.max_xml_bytes
        body = await read_body(request, limit)
        params = await uws_params(request, body)
        kind, document, job_params = self._parse_request(body, params)
        jobs = deployment(request).jobs
        job = await run(lambda: jobs.create(kind, self.service.name, caller.name,
                                            caller_snapshot(caller), document, job_params))
        if params.get("phase", "").upper() == "RUN":
            await self._start(request, job.id)
        return self._see_job(request, job.id)

    def _parse_request(self, body: bytes, params: dict[str, str]) -> tuple[str, str, dict]:
        """Validate the job's document now, so a malformed one is a 400, not a failed job."""
        if self.list_name == "async-delete":
            target = params.get("target", "")
            if not target:
                raise InvalidArgument("async-delete needs a target parameter")
            uris.parse_vos_uri(target)
            return Kind.DELETE.value, "", {"target": target}
        if self.list_name == "async-setprops":
            uri, node = parse_node(body)
            uris.parse_vos_uri(uri)
            return Kind.SETPROPS.value, "", {"target": uri, "properties": node.properties}
        transfer = parse_transfer(body)
        uris.parse_vos_uri(transfer.target)
        if not transfer.is_node_transfer and transfer.direction not in (PUSH_TO, PULL_FROM):
            raise InvalidArgument(f"unsupported transfer direction {transfer.direction!r}")
        # stored re-serialized: UTF-8 whatever encoding the client's document declared
        return Kind.TRANSFER.value, render_transfer(transfer).decode(), {}

    async def _start(self, request: Request, job_id: str) -> None:
        jobs = deployment(request).jobs
        job = await run(jobs.get, job_id)
        if job is not None and job.kind == Kind.TRANSFER.value:
            transfer = parse_transfer(job.request.encode())
            if not transfer.is_node_transfer:
                await self._negotiate(request, job, transfer)
                return
        if await run(jobs.queue, job_id):
            await request.app.state.job_runner.run_now(job_id, INLINE_BUDGET)

    async def _negotiate(self, request: Request, job: Job, transfer: Transfer) -> None:
        """An async push/pull: running it is negotiating its endpoints, here and now,
        exactly as /synctrans does; the result is the transferDetails document."""
        jobs = deployment(request).jobs
        runner = request.app.state.job_runner
        if await run(jobs.claim, runner.me, job.id, PENDING) is None:
            return
        try:
            result = await SyncTransfers(self.service).negotiated(
                request, transfer, actions.caller_from(job.caller))
        except VOSpaceFault as fault:
            await run(lambda: jobs.finish(job.id, ERROR, error=error_of(fault)))
            return
        await run(lambda: jobs.finish(job.id, COMPLETED, results={},
                                      details=render_transfer(result).decode()))

    # -- one job --------------------------------------------------------------------------
    async def job(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self._delete(request)
        if request.method == "POST":
            params = await uws_params(request)
            if params.get("action", "").upper() == "DELETE":
                return await self._delete(request)
            raise InvalidArgument("POST to a job takes ACTION=DELETE")
        job = await self._job(request)
        params = {k.lower(): v for k, v in request.query_params.items()}
        if "wait" in params:
            job = await self._wait(request, job, params)
        return xml_response(render_job(self._view(request, job)))

    async def _wait(self, request: Request, job: Job, params: dict[str, str]) -> Job:
        """UWS 1.1 blocking: wait while the job is active (and in PHASE, if given)."""
        try:
            wait = float(params["wait"])
        except ValueError:
            raise InvalidArgument("WAIT must be a number of seconds") from None
        wait = MAX_WAIT if wait < 0 else min(wait, MAX_WAIT)
        only = params.get("phase", "").upper() or None
        deadline = time.monotonic() + wait
        jobs = deployment(request).jobs
        start_phase = job.phase
        while (job.phase in ACTIVE and job.phase == start_phase
               and (only is None or job.phase == only) and time.monotonic() < deadline):
            await asyncio.sleep(WAIT_POLL)
            phase = await run(jobs.phase, job.id)
            if phase is None:
                raise JobNotFound(f"job {job.id} was deleted")
            if phase != job.phase:
                job = await run(jobs.get, job.id) or job
        return job

    async def _delete(self, request: Request) -> Response:
        job = await self._job(request)
        jobs = deployment(request).jobs
        await run(jobs.abort, job.id)
        await run(jobs.delete, job.id)
        return RedirectResponse(self._href(request), status_code=303)

    async def phase(self, request: Request) -> Response:
        job = await self._job(request)
        if request.method == "GET":
            return PlainTextResponse(job.phase)
        params = await uws_params(request)
        wanted = params.get("phase", "").upper()
        if wanted == "RUN":
            await self._start(request, job.id)
        elif wanted == "ABORT":
            await run(deployment(request).jobs.abort, job.id)
        else:
            raise InvalidArgument(f"PHASE must be RUN or ABORT, not {params.get('phase')!r}")
        return self._see_job(request, job.id)

    async def result(self, request: Request) -> Response:
        job = await self._job(request)
        rid = request.path_params["result_id"]
        if rid == "transferDetails" and job.details is not None:
            return xml_response(job.details.encode())
        href = self._results(request, job).get(rid)
        if href is None or href.startswith("final:") or href.startswith("vos:"):
            raise JobNotFound(f"job {job.id} has no result {rid!r} to fetch")
        return RedirectResponse(href, status_code=303)

    async def attribute(self, request: Request) -> Response:
        job = await self._job(request)
        name = request.path_params["attribute"].lower()
        if request.method == "POST":
            return await self._set_attribute(request, job, name)
        if name == "error":
            if job.phase != "ERROR" or not job.error_code:
                raise JobNotFound(f"job {job.id} has no error")
            return PlainTextResponse(job.error_code)
        if name == "results":
            return xml_response(render_results(self._results(request, job)))
        if name == "parameters":
            return xml_response(render_parameters(self._view(request, job).parameters))
        if name == "owner":
            return PlainTextResponse(job.owner or "")
        if name == "executionduration":
            return PlainTextResponse(str(job.duration))
        if name == "destruction":
            return PlainTextResponse(format_time(job.destruction) if job.destruction else "")
        if name == "quote":
            return PlainTextResponse("")
        raise JobNotFound(f"jobs have no {name!r} resource")

    async def _set_attribute(self, request: Request, job: Job, name: str) -> Response:
        params = await uws_params(request)
        jobs = deployment(request).jobs
        if name == "executionduration":
            value = params.get("executionduration", "")
            if not value.isdigit():
                raise InvalidArgument("EXECUTIONDURATION must be a whole number of seconds")
            if not await run(jobs.set_duration, job.id, int(value)):
                raise InvalidArgument("executionDuration can only change while PENDING")
        elif name == "destruction":
            try:
                when = parse_time(params.get("destruction", ""))
            except ValueError:
                raise InvalidArgument("DESTRUCTION must be an ISO 8601 instant") from None
            await run(jobs.set_destruction, job.id, when)
        elif name == "parameters":
            raise InvalidArgument("the parameters of a transfer job are its document")
        else:
            raise InvalidArgument(f"{name} cannot be changed")
        return self._see_job(request, job.id)


def uws_routes(service: Service) -> list[Route]:
    routes: list[Route] = []
    for name in LISTS:
        routes += JobEndpoints(service, name).routes()
    return routes
