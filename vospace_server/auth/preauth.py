"""Pre-authorized URLs: HMAC-signed, expiring tokens scoped to one node and one direction.

A token is issued after the ACL check (by /synctrans, or by vault's /files GET) and then
works with no other credential: ``/{service}/preauth/{token}/{path}``. It signs the
service, path, direction ("get" or "put"), the user it acts for and its expiry. The secret
comes from the settings or from ``<data_dir>/preauth-secret`` (created once, atomically),
so every server process sharing a data directory accepts every other one's tokens. Tokens
are lower-case hex and dots only: the CADC client rewrites ``xfer`` anywhere in some URLs.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass

from ..protocol.faults import PermissionDenied

DIRECTIONS = ("get", "put")


@dataclass(frozen=True)
class Grant:
    """What a verified token allows: ``direction`` on ``path`` acting as ``user``."""

    direction: str
    user: str


def load_secret(configured: str, data_dir: str) -> bytes:
    if configured:
        return configured.encode()
    path = os.path.join(data_dir, "preauth-secret")
    if not os.path.exists(path):
        temp = f"{path}.{secrets.token_hex(6)}"
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)  # fails if another process won the race; then use theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    with open(path) as fh:
        return fh.read().strip().encode()


class PreauthSigner:
    def __init__(self, secret: bytes, lifetime_s: int) -> None:
        self._secret, self.lifetime_s = secret, lifetime_s

    def _sign(self, service: str, path: str, direction: str, user_hex: str, expiry: str) -> str:
        message = "\0".join((service, path, direction, user_hex, expiry)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def issue(self, service: str, path: str, direction: str, user: str) -> str:
        assert direction in DIRECTIONS
        expiry = format(int(time.time()) + self.lifetime_s, "x")
        user_hex = user.encode().hex()
        sig = self._sign(service, path, direction, user_hex, expiry)
        return f"{DIRECTIONS.index(direction)}.{expiry}.{user_hex}.{sig}"

    def verify(self, token: str, service: str, path: str, direction: str) -> Grant:
        """The grant of a valid token for exactly this service, path and direction."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] not in ("0", "1"):
            raise PermissionDenied("malformed pre-authorized URL")
        index, expiry, user_hex, sig = parts
        if DIRECTIONS[int(index)] != direction:
            raise PermissionDenied(f"this pre-authorized URL does not allow {direction}")
        expected = self._sign(service, path, direction, user_hex, expiry)
        if not hmac.compare_digest(expected, sig):
            raise PermissionDenied("pre-authorized URL not valid for this node")
        try:
            expired = int(expiry, 16) < time.time()
            user = bytes.fromhex(user_hex).decode()
        except ValueError:
            raise PermissionDenied("malformed pre-authorized URL") from None
        if expired:
            raise PermissionDenied("pre-authorized URL expired")
        return Grant(direction, user)
