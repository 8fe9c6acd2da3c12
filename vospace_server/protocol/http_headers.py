"""Values of the HTTP headers the data path emits (shared by services and storage)."""
from __future__ import annotations

import base64
from urllib.parse import quote


def md5_b64(md5_hex: str) -> str:
    """An MD5 as RFC 3230 ``Digest: md5=`` wants it: base64 of the 16 raw bytes."""
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def content_disposition(name: str) -> str:
    """``inline; filename="name"`` (plus RFC 6266 ``filename*`` for non-ASCII names)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    value = f'inline; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name)}"
    return value
