"""A node's properties as ``user.*`` xattrs, and the times the server cannot store.

Extended attribute ``user.NAME`` is property ``NAME`` (a short name or a full URI, see
``vosclient.nodes.prop_uri``); the properties the server computes or that carry sharing
and locking are not xattrs (chmod and vlock change them).
"""
from __future__ import annotations

import calendar
import datetime
import errno

from vosclient.nodes import Node, prop_uri, short_name
from vospace_server.protocol import properties as P

from .errnos import fs_error

# Where utimens keeps a time the server cannot store (its dates are computed, read-only):
# "<mtime ns> <md5> <length>", trusted only while the content is still that md5/length.
MTIME_PROP = "ivo://cadc.nrc.ca/vospace/arcfs#mtime"
RESERVED = P.READ_ONLY | P.ADMIN_ONLY | {P.TYPE, P.ENCODING, P.ISPUBLIC, P.GROUPREAD,
                                          P.GROUPWRITE, P.ISLOCKED, P.INHERIT_PERMISSIONS,
                                          P.PUBLICREAD, MTIME_PROP}
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2   # utimensat's special values


def xattr_names(node: Node) -> list[str]:
    return ["user." + short_name(uri) for uri, value in node.props.items()
            if uri not in RESERVED and value is not None and not uri.startswith(P.CADC)]


def xattr_uri(name: str) -> str:
    """The property URI of xattr ``name``: ENOTSUP outside ``user.``, EPERM for the
    properties that are not xattrs."""
    if not name.startswith("user."):
        raise fs_error(errno.ENOTSUP)
    uri = prop_uri(name[len("user."):])
    if uri in RESERVED or uri.startswith(P.CADC):
        raise fs_error(errno.EPERM)
    return uri


def date_ns(value: str | None) -> int:
    """Nanoseconds of an IVOA date ``YYYY-MM-DDTHH:MM:SS.mmm`` (UTC). Read by slicing, not
    ``strptime`` (a third of the time of ``stat`` of a listed file went there)."""
    if not value or len(value) < 19 or value[4] + value[7] + value[10] + value[13] + value[16] \
            != "--T::":
        return 0
    try:
        fields = [int(value[a:b]) for a, b in ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16),
                                                (17, 19))]
        seconds = calendar.timegm(datetime.datetime(*fields).timetuple())
    except ValueError:
        return 0
    fraction = value[20:23] if len(value) > 20 and value[19] == "." else ""
    millis = int(fraction) if fraction.isdigit() else 0
    return seconds * 1_000_000_000 + millis * 1_000_000


def mtime_ns(node: Node) -> int:
    """The time utimens set, while the content is unchanged; else the server's date."""
    override = node.props.get(MTIME_PROP)
    if override:
        ns, _, ident = override.partition(" ")
        if ns.isdigit() and (node.isdir or ident == f"{node.md5 or '-'} {node.size}"):
            return int(ns)
    return date_ns(node.props.get(P.DATE))


def mtime_stamp(node: Node, ns: int) -> str:
    """The MTIME_PROP value keeping ``ns`` for the node's current content."""
    return f"{ns}" + ("" if node.isdir else f" {node.md5 or '-'} {node.size}")
