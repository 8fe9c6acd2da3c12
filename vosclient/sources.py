"""Where a node's bytes are fetched from or sent to: the pre-authorized URL transfer
negotiation hands out (this project's server: its data port, where TLS runs at OpenSSL's
speed and the main port's event loop is left alone) for big files, ``/files`` otherwise.

Negotiation costs one request, which only a small file would notice; a refused negotiation
(no permission, a link leading elsewhere, another server) or a pre-authorized URL refused
later (expired, the node gone) sends the request to ``/files``, whose answer is the one
that matters: the same bytes, or the error the user should see.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from . import errors
from .uris import Remote

if TYPE_CHECKING:
    from .bulk import Stream
    from .client import Client

# What a pre-authorized URL answers once it no longer serves: 403 (expired or not valid
# for the node any more), 401 (a proxy asking for a credential), 404 (the node is gone).
STALE = (errors.PermissionDenied, errors.NotAuthenticated, errors.NotFound)


def endpoint(client: "Client", remote: Remote, push: bool, negotiate: bool = True) -> str:
    """Where the bytes of ``remote`` go (``push``) or come from: with ``negotiate`` the
    pre-authorized URL a negotiation hands out; /files without, or when negotiation is
    refused or names no URL (/files then gives the error that matters, if any)."""
    if negotiate:
        try:
            url = client.negotiate(remote, push=push)
        except errors.Unreachable:
            raise
        except errors.VOSError:
            url = None
        if url:
            return url
    return client.files_url(remote)


class ByteSource:
    """Range reads of one node, all to one URL: with ``negotiate`` the URL a pull
    negotiation hands out (negotiated at the first read, once), else /files. Once the
    negotiated URL is refused, this read and every later one go to /files."""

    def __init__(self, client: "Client", remote: Remote, negotiate: bool) -> None:
        self.client = client
        self.remote = remote
        self.files = client.files_url(remote)
        self._url: str | None = None if negotiate else self.files
        self._lock = threading.Lock()     # concurrent first reads negotiate once

    def url(self) -> str:
        with self._lock:
            if self._url is None:
                self._url = endpoint(self.client, self.remote, push=False)
            return self._url

    def open(self, start: int = 0, end: int | None = None,
             extra: dict[str, str] | None = None) -> "Stream":
        """Bytes ``[start, end)`` as a stream (``extra`` headers: ``If-Range``)."""
        url = self.url()
        try:
            return self.client.bulk.get(url, start, end, what=str(self.remote), extra=extra)
        except STALE:
            if url == self.files:
                raise
        with self._lock:
            self._url = self.files
        return self.client.bulk.get(self.files, start, end, what=str(self.remote), extra=extra)
