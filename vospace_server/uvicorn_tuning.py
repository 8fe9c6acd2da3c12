"""uvicorn settings that have no command-line switch.

uvicorn pauses reading a request body once 64 KiB wait unconsumed, and hands the body to
the app in pieces of that size: a 1 GiB upload becomes ~16,000 receive() calls and as many
pause/resume cycles, which costs more than hashing and writing the bytes. One MiB per
connection (at most) lets bodies arrive in MiB pieces.
"""
from __future__ import annotations

BODY_HIGH_WATER = 1024 * 1024


def raise_body_high_water(limit: int = BODY_HIGH_WATER) -> None:
    import uvicorn.protocols.http.h11_impl as h11_impl
    import uvicorn.protocols.http.httptools_impl as httptools_impl

    httptools_impl.HIGH_WATER_LIMIT = limit
    h11_impl.HIGH_WATER_LIMIT = limit
