"""Optional OpenID Connect: accept RS256/ES256 JWT access tokens signed by a configured issuer.

Uses ``joserfc``, the JOSE library of the Authlib project (``authlib.jose`` is deprecated in
its favour; installing ``authlib`` brings it). Keys come from a JWKS file, or from the
issuer's JWKS URL, fetched on first use and again (at most every 5 minutes) when a token
names an unknown key id. A valid token maps to a local user through one claim
(``preferred_username`` by default); that user must exist and be enabled.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

log = logging.getLogger("vospace.auth")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384"]
REFETCH_INTERVAL_S = 300


class OidcValidator:
    def __init__(self, issuer: str, audience: str, user_claim: str,
                 jwks_file: str = "", jwks_url: str = "") -> None:
        if not (jwks_file or jwks_url):
            raise ValueError("OIDC needs oidc_jwks_file or oidc_jwks_url")
        self.issuer, self.audience, self.user_claim = issuer, audience, user_claim
        self.jwks_file, self.jwks_url = jwks_file, jwks_url
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()
        self._claims = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            exp={"essential": True},
            **({"aud": {"essential": True, "value": audience}} if audience else {}))

    def _load(self) -> KeySet:
        if self.jwks_file:
            with open(self.jwks_file, encoding="utf-8") as fh:
                return KeySet.import_key_set(json.load(fh))
        response = httpx.get(self.jwks_url, timeout=10)
        response.raise_for_status()
        return KeySet.import_key_set(response.json())

    def _keyset(self, refresh: bool) -> KeySet:
        with self._lock:
            stale = refresh and time.monotonic() - self._fetched > REFETCH_INTERVAL_S
            if self._keys is None or stale:
                self._keys = self._load()
                self._fetched = time.monotonic()
            return self._keys

    def user_of(self, token: str) -> str | None:
        """The local user name a valid token stands for, or None (reason logged)."""
        for refresh in (False, True):
            try:
                decoded = jwt.decode(token, self._keyset(refresh), algorithms=ALGORITHMS)
                self._claims.validate(decoded.claims)
            except ValueError as exc:  # unknown kid among others: try fresh keys once
                if refresh or "kid" not in str(exc).lower():
                    log.info("OIDC token refused: %s", exc)
                    return None
                continue
            except (JoseError, OSError, httpx.HTTPError) as exc:
                log.info("OIDC token refused: %s", exc)
                return None
            name = decoded.claims.get(self.user_claim)
            return name if isinstance(name, str) else None
        return None
