"""TLS 1.3 cipher suites in our order, on both ports: AES-128-GCM first.

OpenSSL puts AES-256-GCM first. With AES-NI, AES-128-GCM (10 rounds, not 14) encrypts a
sixth faster (``openssl speed``: 6.1 against 5.2 GB/s on these machines) at a strength
Mozilla's recommended server configurations also rank first; on a bulk download the
cipher is a third of the server's CPU and of the client's. Python 3.11 orders TLS 1.2
ciphers (``set_ciphers``) but has no call for TLS 1.3 suites, so this calls OpenSSL's
``SSL_CTX_set_ciphersuites`` on the context's own ``SSL_CTX`` (the first field after the
object header of CPython's ``PySSLContext`` in the versions named below), and checks the
result with ``get_ciphers``; on any other Python the context keeps OpenSSL's order.
"""
from __future__ import annotations

import ctypes
import logging
import ssl
import sys

log = logging.getLogger("vospace")
SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
KNOWN_LAYOUTS = {(3, 11), (3, 12), (3, 13)}  # where PySSLContext starts with SSL_CTX *ctx


def prefer_aes128(context: ssl.SSLContext) -> bool:
    """Put AES-128-GCM first among ``context``'s TLS 1.3 suites (the server's order wins:
    Python sets ``OP_CIPHER_SERVER_PREFERENCE``); whether it took."""
    took = sys.version_info[:2] in KNOWN_LAYOUTS and sys.implementation.name == "cpython" \
        and _set_suites(context) and context.get_ciphers()[0]["name"] == SUITES.split(":")[0]
    if not took:
        log.warning("TLS 1.3 suites left in OpenSSL's order (AES-256-GCM first)")
    return took


def _set_suites(context: ssl.SSLContext) -> bool:
    openssl = ctypes.CDLL(ssl._ssl.__file__)  # its libssl, found through its dependencies
    openssl.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return bool(ssl_ctx) and openssl.SSL_CTX_set_ciphersuites(ssl_ctx, SUITES.encode()) == 1
