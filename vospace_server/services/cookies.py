"""The names and attributes of the cookies this server sets (login, CSRF, a session host's
pass), in one place.

Over TLS each name carries the ``__Host-`` prefix. A browser keeps such a cookie only when
it was set by this very host, ``Secure``, with ``Path=/`` and no ``Domain``, so no sibling
host under the same domain (a session host of a deployment whose session domain sits under
the platform's, or another session host under the session domain) can plant one that
shadows ours: no fixed login, no known CSRF cookie. Plain HTTP (``make run`` without TLS,
a test) keeps the bare names, which browsers would refuse with the prefix.
"""
from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

HOST_PREFIX = "__Host-"


def over_tls(conn: HTTPConnection) -> bool:
    return conn.url.scheme in ("https", "wss")


def cookie_name(conn: HTTPConnection, name: str) -> str:
    """``name`` as this request's browser holds it."""
    return HOST_PREFIX + name if over_tls(conn) else name


def read_cookie(conn: HTTPConnection, name: str) -> str:
    """The value of our cookie ``name`` on this request ("" when absent)."""
    return conn.cookies.get(cookie_name(conn, name), "")


def set_cookie(conn: HTTPConnection, response: Response, name: str, value: str,
               samesite: str = "lax", max_age: int | None = None) -> None:
    """Our cookie ``name``: HttpOnly, host-only, ``Path=/``, Secure over TLS."""
    response.set_cookie(cookie_name(conn, name), value, max_age=max_age, path="/",
                        httponly=True, samesite=samesite, secure=over_tls(conn))


def delete_cookie(conn: HTTPConnection, response: Response, name: str) -> None:
    """Drop our cookie ``name`` (with the attributes a prefixed name must carry)."""
    response.delete_cookie(cookie_name(conn, name), path="/", httponly=True,
                           secure=over_tls(conn))


def our_cookie(name: str, bare_names: set[str]) -> bool:
    """Whether a cookie called ``name`` is one of ``bare_names``, with or without the prefix
    (what a session's app may neither see nor set)."""
    return name.removeprefix(HOST_PREFIX) in bare_names
