"""skaha's errors: a status and a one-line message sent as text/plain, as skaha sends them."""
from __future__ import annotations


class SkahaError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(SkahaError):
    status = 400


class Forbidden(SkahaError):
    status = 403


class NotFound(SkahaError):
    status = 404
