"""Credentials -> Caller: tokens (ours or OIDC), passwords, and the caller's groups.

Membership changes, disabled accounts and revoked tokens take effect on the very next
request. The Caller of one of our tokens is remembered (CallerCache) only while the database's
auth generation is unchanged, and every such change bumps it. The argon2 check of HTTP Basic
passwords is remembered briefly (BASIC_CACHE_S), also only within one auth generation (a
password change bumps it, so the old password stops working at once on every replica):
hashing on every request of a netrc client would cost more CPU than serving it; the
account's enabled flag is still read each time.
"""
from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Callable

from .groups import GroupStore
from .identity import Caller
from .store import TOKEN_PREFIX, Account, AuthStore
from .throttle import FailureThrottle

if TYPE_CHECKING:  # imported only when configured: it pulls in httpx and joserfc
    from .oidc import OidcValidator

BASIC_CACHE_S = 30.0
BASIC_CACHE_MAX = 1024
CALLER_CACHE_MAX = 4096


class CallerCache:
    """Callers of recently seen tokens, valid for one auth generation (store.auth_changed).

    The generation is read before the database is asked about a token, so an entry never
    describes a state older than the generation it is filed under; ``clock`` (Unix seconds,
    the token store's) ends an entry when its token expires."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._generation = -1
        self._callers: dict[str, tuple[Caller, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, generation: int) -> Caller | None:
        with self._lock:
            if generation != self._generation:
                self._callers.clear()
                self._generation = generation
                return None
            found = self._callers.get(token)
        if found is None:
            return None
        caller, expires = found
        return caller if expires is None or expires >= self.clock() else None

    def put(self, token: str, generation: int, caller: Caller, expires: float | None) -> None:
        with self._lock:
            if generation != self._generation:
                return
            if len(self._callers) >= CALLER_CACHE_MAX:
                self._callers.clear()
            self._callers[token] = (caller, expires)


def looks_like_jwt(token: str) -> bool:
    """A compact JWS: three base64url parts, the header starting ``{"`` (``ey``)."""
    return token.count(".") == 2 and token.startswith("ey")


class Authenticator:
    def __init__(self, store: AuthStore, groups: GroupStore,
                 oidc: OidcValidator | None = None) -> None:
        self.store, self.groups, self.oidc = store, groups, oidc
        self._basic_ok: dict[str, float] = {}
        self._basic_generation = -1
        self._lock = threading.Lock()
        self.throttle = FailureThrottle(store.engine, store.clock)
        self._callers = CallerCache(store.clock)

    def caller(self, account: Account) -> Caller:
        return Caller(name=account.name, is_admin=account.is_admin,
                      groups=self.groups.memberships(account.name))

    def from_token(self, token: str) -> Caller | None:
        if token.startswith(TOKEN_PREFIX):
            return self._from_our_token(token)
        account: Account | None = None
        if self.oidc is not None and looks_like_jwt(token):
            name = self.oidc.user_of(token)
            account = self.store.account(name) if name else None
        if account is None or account.disabled:
            return None
        return self.caller(account)

    def _from_our_token(self, token: str) -> Caller | None:
        generation = self.store.generation()
        caller = self._callers.get(token, generation)
        if caller is not None:
            return caller
        account = self.store.authenticate(token)
        if account is None:  # unknown, expired, revoked or disabled
            return None
        caller = self.caller(account)
        self._callers.put(token, generation, caller, account.expires)
        return caller

    def from_password(self, user: str, password: str, client: str = "") -> Caller | None:
        """The caller for a right password; TooManyRequests after repeated wrong ones."""
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        generation = self.store.generation()
        with self._lock:
            if generation != self._basic_generation:
                self._basic_ok.clear()
                self._basic_generation = generation
            verified = self._basic_ok.get(key, 0.0) > time.monotonic()
        if verified:
            account = self.store.account(user)
        else:
            failures = self.throttle.check(user, client)
            account = self.store.check_password(user, password)
            if account is None:
                self.throttle.failed(user, client)
            else:
                if failures:
                    self.throttle.succeeded(user, client)
                with self._lock:
                    if len(self._basic_ok) >= BASIC_CACHE_MAX:
                        self._basic_ok.clear()
                    self._basic_ok[key] = time.monotonic() + BASIC_CACHE_S
        if account is None or account.disabled:
            return None
        return self.caller(account)
