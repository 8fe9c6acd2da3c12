"""CSRF tokens for the web pages: what a browser's cookie alone can never supply.

A browser sends the session cookie with any request a foreign page makes it send, so a
state-changing request authenticated by that cookie must also carry a token only our
pages know: ``HMAC(key, csrf cookie | session cookie)``. The ``vospace_csrf`` cookie is a
random value set with the first page (HttpOnly, SameSite=Strict), so the token also
protects the login form, where there is no session yet. Pages put the token in their
forms (field ``csrf``) and in a meta tag that their scripts send as ``X-CSRF-Token``.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

CSRF_COOKIE = "vospace_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


def new_cookie_value() -> str:
    return secrets.token_urlsafe(24)


class CsrfTokens:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"vospace csrf tokens", hashlib.sha256).digest()

    def token(self, csrf_cookie: str, session: str) -> str:
        message = f"{csrf_cookie}|{session}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def valid(self, token: str, csrf_cookie: str, session: str) -> bool:
        if not token or not csrf_cookie:
            return False
        # bytes: compare_digest refuses non-ASCII text, and a header may carry any
        return hmac.compare_digest(token.encode(), self.token(csrf_cookie, session).encode())
