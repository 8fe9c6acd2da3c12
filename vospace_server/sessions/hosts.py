"""Session hosts: every interactive session's app on a browser origin of its own.

A session's app runs someone's code (the owner's notebook, a contributed image) in the
browsers of everyone the session is shared with. On the platform's origin its JavaScript
could fetch platform pages with the visitor's cookie, read their CSRF token and act as them.
So each session is served only on ``<id>.<session_domain>`` (setting ``session_domain``,
default ``sessions.localhost``: browsers resolve every ``*.localhost`` name to loopback), an
origin that shares nothing with the platform: the platform's cookies are host-only (no
``Domain``), a different port would not do (cookies ignore ports).

``SessionHostRoute`` decides by the Host header alone, before any other route: a request
for a session host (any name under the session domain) reaches only the session host's
routes (the proxy and the ticket swap, sessions/proxy.py and sessions/tickets.py) and is
404 for everything else; it never reaches ``/storage``, ``/skaha`` or the login.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match, NoMatchFound, Router
from starlette.types import Receive, Scope, Send

from ..config import Settings

SESSION_ID = re.compile(r"^[a-z0-9]{1,16}$")
HOST_SESSION_KEY = "vospace.host-session"  # the session id the Host header names ("" : none)


class SessionHosts:
    """Names of session hosts and the platform's origin, from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.domain = settings.session_domain.strip(".").lower()
        self.public_url = settings.public_url.rstrip("/")
        self.bind_host = settings.host

    def session_of(self, host_header: str) -> str | None:
        """The session id a Host header names; "" for a name under the session domain that
        names none; None for any other host (the platform's)."""
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        host = host.lower().rstrip(".")
        if host == self.domain:
            return ""
        if not host.endswith("." + self.domain):
            return None
        label = host[:-len(self.domain) - 1]
        return label if SESSION_ID.match(label) else ""

    def origin(self, base: str, session_id: str) -> str:
        """The session host's origin, with the scheme and port of the platform's ``base``."""
        parts = urlsplit(base)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{session_id}.{self.domain}{port}"

    def platform(self, scheme: str, port: int | None) -> str:
        """The platform's origin as seen from a session host (where its login cookie is):
        ``public_url``, else the address the server listens on, on the browser's port."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.bind_host in ("0.0.0.0", "::", "") else self.bind_host
        return f"{scheme}://{host}" + (f":{port}" if port else "")


class SessionHostRoute(BaseRoute):
    """The first route of the app: takes every request whose Host is a session host and
    hands it to the session host's own routes only (404 for anything else there)."""

    def __init__(self, hosts: SessionHosts, routes: list[BaseRoute]) -> None:
        self.hosts = hosts
        self.router = Router(routes)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        session_id = self.hosts.session_of(Headers(scope=scope).get("host", ""))
        if session_id is None:
            return Match.NONE, {}
        return Match.FULL, {HOST_SESSION_KEY: session_id}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: object) -> object:
        raise NoMatchFound(name, path_params)
