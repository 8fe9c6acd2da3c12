"""Who did what: the ``X-VO-Authenticated`` header and one structured log line per write.

An ASGI middleware around every service, so no endpoint can forget either: the caller is
whatever ``caller_of`` cached in the request scope; a request that never authenticated
(anonymous, or refused before that) carries no header.
"""
from __future__ import annotations

import json
import logging

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth.identity import Caller
from .requests import CALLER_KEY

audit_log = logging.getLogger("vospace.audit")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def caller_name(scope: Scope) -> str | None:
    caller: Caller | None = scope.get(CALLER_KEY)
    return None if caller is None else caller.name


def log_event(event: str, scope: Scope, **fields: object) -> None:
    """One JSON object per line, so the audit trail can be filtered with standard tools."""
    record = {"event": event, "caller": caller_name(scope), "method": scope.get("method"),
              "path": scope.get("path"), **fields}
    audit_log.info(json.dumps(record, sort_keys=True))


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_with_identity(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                name = caller_name(scope)
                if name is not None:
                    MutableHeaders(scope=message).append("X-VO-Authenticated", name)
            await send(message)

        try:
            await self.app(scope, receive, send_with_identity)
        finally:
            if scope["method"] not in SAFE_METHODS:
                log_event("write", scope, status=status or 500)
