"""Property URIs, which of them are read-only, and their formats, as CADC services use them.

See ../shared/research/vospace.md section 2 for where CADC and the IVOA text disagree;
we emit CADC's URIs (``#ispublic``, ``#encoding``) and accept the standard's synonyms.
"""
from __future__ import annotations

from datetime import datetime, timezone

CORE = "ivo://ivoa.net/vospace/core#"
CADC = "ivo://cadc.nrc.ca/vospace/core#"

LENGTH = CORE + "length"
DATE = CORE + "date"
MD5 = CORE + "MD5"
TYPE = CORE + "type"
ENCODING = CORE + "encoding"
CREATOR = CORE + "creator"
ISPUBLIC = CORE + "ispublic"
PUBLICREAD = CORE + "publicread"
GROUPREAD = CORE + "groupread"
GROUPWRITE = CORE + "groupwrite"
QUOTA = CORE + "quota"
AVAILABLE_SPACE = CORE + "availableSpace"
MTIME = CORE + "mtime"
CTIME = CORE + "ctime"
BTIME = CORE + "btime"
ISLOCKED = CADC + "islocked"
READABLE = CADC + "readable"
WRITABLE = CADC + "writable"
INHERIT_PERMISSIONS = CADC + "inheritPermissions"
COPIES = "urn:vospace-server:node#copies"  # vault: which blob stores hold the bytes (admins)

# Computed by the server from the stored bytes or the request; a client that re-posts a
# node it fetched (the CADC client always does) sends them back and they are ignored.
READ_ONLY = frozenset({LENGTH, DATE, MD5, CREATOR, AVAILABLE_SPACE, MTIME, CTIME, BTIME,
                       READABLE, WRITABLE, COPIES})

# Only administrators may set these (quotas are a promise made by the operators).
ADMIN_ONLY = frozenset({QUOTA})

# Accepted on input as another spelling of a property we store under a canonical URI.
SYNONYMS = {PUBLICREAD: ISPUBLIC}

BOOLEAN = frozenset({ISPUBLIC, ISLOCKED, INHERIT_PERMISSIONS})

MAX_VALUE_BYTES = 64 * 1024
MAX_URI_BYTES = 1024


def canonical_uri(uri: str) -> str:
    return SYNONYMS.get(uri, uri)


def format_date(ts: float) -> str:
    """IVOA date format ``yyyy-MM-ddTHH:mm:ss.SSS`` in UTC with no zone (what vls parses)."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def normalize_boolean(value: str) -> str:
    return "true" if value.strip().lower() in ("true", "1", "yes") else "false"
