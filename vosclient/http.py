"""One pooled HTTP/1.1 connection set per client, with bounded retries.

Retried: 503/502/504 (honouring ``Retry-After``) and dropped or refused connections, with
exponential backoff; only for requests whose body can be sent again. A token the server
refuses (401) on a read falls back to anonymous access once, so public data stays readable
with an expired credential.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any

import httpx

from . import errors

log = logging.getLogger("vosclient")
RETRY_STATUSES = (429, 502, 503, 504)
READ_METHODS = ("GET", "HEAD")


class Transport:
    def __init__(self, base_url: str, token: str | None, verify: bool = True,
                 retries: int = 5, backoff: float = 0.5, max_delay: float = 30.0,
                 timeout: float = 120.0, max_connections: int = 32) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay
        self.anonymous = False          # set once the server refused the token
        self.notices: list[str] = []    # what the user should hear about if all goes well
        self.http = httpx.Client(
            base_url=self.base_url, verify=verify, http1=True, http2=False,
            timeout=httpx.Timeout(timeout, connect=15.0), follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    def close(self) -> None:
        self.http.close()

    def auth_headers(self) -> dict[str, str]:
        if self.token and not self.anonymous:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                return min(float(after), self.max_delay)
        return min(self.backoff * (2 ** attempt), self.max_delay) * (0.5 + random.random() / 2)

    def request(self, method: str, url: str, *, what: str = "", stream: bool = False,
                auth: bool = True, ok: tuple[int, ...] = (), retry: bool = True,
                **kwargs: Any) -> httpx.Response:
        """Send with retries; raise the matching VOSError for an error status not in ``ok``.

        ``what`` names the node in error messages. With ``stream`` the caller must close the
        returned response. A 3xx answer is returned as it is (the caller decides to follow).
        """
        what = what or url
        headers = dict(kwargs.pop("headers", None) or {})
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            sent = {**(self.auth_headers() if auth else {}), **headers}
            try:
                request = self.http.build_request(method, url, headers=sent, **kwargs)
                response = self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError,
                    httpx.WriteError, httpx.ConnectTimeout, httpx.PoolTimeout,
                    httpx.ReadTimeout) as exc:
                # A refused connection means the service is down: fail fast (3 tries);
                # a dropped one is worth the full retry budget.
                refused = isinstance(exc, httpx.ConnectError)
                if attempt + 1 >= attempts or (refused and attempt >= 2):
                    raise errors.Unreachable(f"{what}: cannot reach {self.base_url}: "
                                             f"{exc.__class__.__name__} {exc}") from None
                log.info("retrying %s %s after %s", method, url, exc)
                time.sleep(self._delay(attempt, None))
                continue
            status = response.status_code
            if status in RETRY_STATUSES and attempt + 1 < attempts:
                delay = self._delay(attempt, response)
                response.close()
                log.info("retrying %s %s after HTTP %s (%.1fs)", method, url, status, delay)
                time.sleep(delay)
                continue
            if status == 401 and "Authorization" in sent and method in READ_METHODS \
                    and not self.anonymous:
                response.close()
                self.anonymous = True
                notice = ("the token was refused (expired or revoked); continuing "
                          "anonymously. Run vos-login to store a new one.")
                self.notices.append(notice)
                log.warning(notice)
                return self.request(method, url, what=what, stream=stream, auth=auth, ok=ok,
                                    retry=retry, headers=headers, **kwargs)
            if status < 400 or status in ok:
                return response
            if stream:
                response.read()
            response.close()
            error = errors.from_response(status, response.text, what)
            if status in (401, 403) and self.anonymous and self.token:
                error = errors.NotAuthenticated(str(error))
            raise error
        raise AssertionError("unreachable")
