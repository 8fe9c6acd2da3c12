"""vosclient: Python library, fsspec filesystem and command-line tools for VOSpace.

>>> from vosclient import Client
>>> with Client() as c:                      # URL and token from vos-login / VOSPACE_* env
...     c.mkdir("vos:alice/run1", parents=True)
...     c.upload("img.fits", "vos:alice/run1/")
...     [n.name for n in c.iterdir("vos:alice/run1")]
"""
from __future__ import annotations

from .client import Client
from .errors import VOSError
from .nodes import Node
from .uris import Remote, parse as parse_uri

__all__ = ["Client", "Node", "Remote", "VOSError", "open", "parse_uri"]


def open(name: str, mode: str = "rb", client: Client | None = None, **kwargs):  # noqa: A001
    """Open ``vos:path`` / ``arc:path`` / ``vos://...`` as a file object."""
    return (client or Client()).open(name, mode, **kwargs)
