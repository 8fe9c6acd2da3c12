"""Rendering pages: the Jinja2 environment (autoescaped), the CSRF cookie and token every
page carries, the refusal page for faults, and the small formatting filters."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..auth.csrf import CSRF_COOKIE, CSRF_FIELD, new_cookie_value
from ..protocol.faults import PermissionDenied, VOSpaceFault
from ..services.cookies import delete_cookie, read_cookie, set_cookie
from ..services.requests import CSRF_CHECKED_KEY, SESSION_COOKIE, deployment, read_body

HERE = os.path.dirname(__file__)
templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(value: int | str | None) -> str:
    """``1536`` -> ``1.5 KiB``; empty for unknown sizes."""
    if value is None or value == "":
        return ""
    size = float(value)
    for unit in UNITS:
        if size < 1024 or unit == UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def short_date(value: str | None) -> str:
    """IVOA ``2026-12-01T22:20:46.123`` -> ``2026-12-01 22:20:46`` (UTC)."""
    return (value or "")[:19].replace("T", " ")


def utc_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters.update(human_size=human_size, short_date=short_date)


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie value, or a new one (True: it must be set)."""
    value = read_cookie(request, CSRF_COOKIE)
    return (value, False) if value else (new_cookie_value(), True)


# No page of ours in another's frame (a session app's page, say: sessions/hosts.py), where
# a disguised click could act with the visitor's login.
NOT_FRAMED = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def page(request: Request, template: str, context: dict, status: int = 200) -> Response:
    """A page with the CSRF token for this browser (its cookie set on first visit)."""
    cookie, fresh = csrf_cookie(request)
    token = deployment(request).csrf.token(cookie, read_cookie(request, SESSION_COOKIE))
    response = templates.TemplateResponse(request, template, {**context, "csrf": token},
                                          status_code=status, headers=NOT_FRAMED)
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, cookie, samesite="strict")
    return response


def refusal(request: Request, fault: VOSpaceFault) -> Response:
    """The service's own message on a page (401 offers the login form); a session cookie
    that no longer authenticates is dropped, so the next page is anonymous."""
    response = page(request, "error.html", {"fault": fault, "status": fault.status,
                                            "next": request.url.path}, fault.status)
    if fault.status == 401 and read_cookie(request, SESSION_COOKIE):
        delete_cookie(request, response, SESSION_COOKIE)
    return response


async def check_form_csrf(request: Request) -> dict[str, list[str]]:
    """The (URL-encoded) form of a POST to a page, after its ``csrf`` field was checked against this
    browser's cookies (PermissionDenied otherwise); marks the request as checked."""
    body = await read_body(request, deployment(request).settings.max_xml_bytes)
    fields = parse_qs(body.decode("utf-8", "replace"))
    token = (fields.get(CSRF_FIELD) or [""])[0]
    if not deployment(request).csrf.valid(token, read_cookie(request, CSRF_COOKIE),
                                          read_cookie(request, SESSION_COOKIE)):
        raise PermissionDenied("missing or stale CSRF token: reload the page and try again")
    request.scope[CSRF_CHECKED_KEY] = True
    return fields
