"""Who did what: request ids, the ``X-VO-Authenticated`` header, the access log, the audit
trail of writes, and the request metrics.

One ASGI middleware around every service, so no endpoint can forget any of them: the
caller is whatever ``caller_of`` cached in the request scope; a request that never
authenticated (anonymous, or refused before that) carries no header.

- Request id: ``X-Request-ID`` from the client when it is a sane token (at most 128 of
  ``A-Za-z0-9._:-``), else a new one; returned in the response and put in every log line.
- Access log: one JSON object per request on the ``vospace.access`` logger (time, request
  id, user, method, path, status, bytes sent and received, duration in seconds).
- Audit trail: one JSON line per write (and per refusal, see errors.py) on ``vospace.audit``.
- Metrics: requests by service/endpoint/method/status, latency, bytes, transfers in flight.

Pre-authorized URLs carry their credential in the path; logs show it as ``***``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth.identity import Caller
from ..metrics import Metrics
from ..yielding import TransfersInFlight
from .requests import CALLER_KEY

audit_log = logging.getLogger("vospace.audit")
access_log = logging.getLogger("vospace.access")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUEST_ID_KEY = "vospace.request_id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREAUTH = re.compile(r"^(/[^/]+/preauth/)[^/]+")
DATA_ENDPOINTS = frozenset({"files", "preauth", "pkg"})


def caller_name(scope: Scope) -> str | None:
    caller: Caller | None = scope.get(CALLER_KEY)
    return None if caller is None else caller.name


def logged_path(scope: Scope) -> str:
    """The request path without the credential of a pre-authorized URL."""
    return _PREAUTH.sub(r"\1***", scope.get("path", ""))


def log_event(event: str, scope: Scope, **fields: object) -> None:
    """One JSON object per line, so the audit trail can be filtered with standard tools."""
    record = {"event": event, "caller": caller_name(scope), "method": scope.get("method"),
              "path": logged_path(scope), "request_id": scope.get(REQUEST_ID_KEY), **fields}
    audit_log.info(json.dumps(record, sort_keys=True))


def configure_access_log(enabled: bool) -> None:
    """Access lines go to stderr as bare JSON (not through the root logger's format)."""
    access_log.propagate = False
    access_log.handlers.clear()
    if enabled:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
    else:
        access_log.setLevel(logging.CRITICAL + 1)


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _SANE_ID.match(text):
                return text
    return secrets.token_hex(16)


class RouteLabels:
    """Bounded metric labels: ``service`` is the first path segment and ``endpoint`` the
    second, as far as they name real routes (anything else counts as ``other``)."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.known: dict[str, set[str]] = {}
        for route in routes:
            top, _, rest = getattr(route, "path", "").strip("/").partition("/")
            below = self.known.setdefault(top, set())
            children = route.routes if isinstance(route, Mount) else []
            below.update(self._first(c) for c in children)
            below.add(self._first(rest))

    @staticmethod
    def _first(route_or_path: BaseRoute | str) -> str:
        path = route_or_path if isinstance(route_or_path, str) else getattr(route_or_path, "path", "")
        first = path.strip("/").partition("/")[0]
        return "" if first.startswith("{") else first

    def of(self, path: str) -> tuple[str, str]:
        top, _, rest = path.strip("/").partition("/")
        below = self.known.get(top)
        if below is None:
            return "other", ""
        endpoint = rest.partition("/")[0]
        return top, endpoint if endpoint in below else ("" if not endpoint else "other")


class AuditMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, labels: RouteLabels,
                 transfers: TransfersInFlight) -> None:
        self.app, self.metrics, self.labels = app, metrics, labels
        self.transfers = transfers  # what background copies give way to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        rid = scope[REQUEST_ID_KEY] = request_id(scope)
        service, endpoint = self.labels.of(scope["path"])
        status, sent, received = 0, 0, 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def send_with_identity(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", rid)
                name = caller_name(scope)
                if name is not None:
                    headers.append("X-VO-Authenticated", name)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            with transfer_in_flight(self.metrics, self.transfers, scope["method"], service,
                                    endpoint):
                await self.app(scope, counting_receive, send_with_identity)
        finally:
            status = status or 500
            duration = time.monotonic() - started
            if scope["method"] not in SAFE_METHODS:
                log_event("write", scope, status=status)
            observe(self.metrics, scope, service, endpoint, status, sent, received, duration)


@contextmanager
def transfer_in_flight(metrics: Metrics, transfers: TransfersInFlight, method: str,
                       service: str, endpoint: str) -> Iterator[None]:
    """Count a data transfer (both ports) while it runs: in the in-flight gauge, and in the
    process's ``transfers``, which background copies give way to. Other requests: nothing."""
    if endpoint not in DATA_ENDPOINTS or method not in ("GET", "PUT"):
        yield
        return
    gauge = metrics.transfers.labels(service, "out" if method == "GET" else "in")
    gauge.inc()
    transfers.add(1)
    try:
        yield
    finally:
        gauge.dec()
        transfers.add(-1)


def observe(metrics: Metrics, scope: Scope, service: str, endpoint: str, status: int, sent: int,
            received: int, duration: float) -> None:
    """A finished request in the metrics and the access log (both ports, see dataport)."""
    m = metrics
    m.requests.labels(service, endpoint, scope["method"], str(status)).inc()
    m.latency.labels(service, endpoint).observe(duration)
    m.bytes_in.labels(service).inc(received)
    m.bytes_out.labels(service).inc(sent)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(json.dumps({
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "request_id": scope[REQUEST_ID_KEY], "user": caller_name(scope),
            "method": scope["method"], "path": logged_path(scope), "status": status,
            "bytes": sent, "bytes_in": received, "duration": round(duration, 6),
            "pid": os.getpid()}))  # which process answered (vospace serve --workers)
