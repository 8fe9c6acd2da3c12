"""Server-side transfers (move, copy) as UWS jobs on ``/{svc}/transfers``.

Create the job with the transfer document and ``PHASE=RUN``, then poll its phase with a
growing interval; an ERROR phase is turned into the error its summary names.
"""
from __future__ import annotations

import time
from html import escape

from vospace_server.protocol.faults import VOSpaceFault
from vospace_server.protocol.xml_io import parse_xml

from . import errors
from .http import Transport

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"


# The server's transfer parameter for a move that replaces its destination (rename(2)).
REPLACE_PARAM = "urn:vospace-server:transfer#replace"


def transfer_document(target: str, direction: str, keep_bytes: bool,
                      params: dict[str, str] | None = None) -> bytes:
    extra = "".join(f'<vos:param uri="{escape(uri)}">{escape(value)}</vos:param>'
                    for uri, value in (params or {}).items())
    return (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
            f"<vos:target>{escape(target)}</vos:target>"
            f"<vos:direction>{escape(direction)}</vos:direction>"
            f"<vos:keepBytes>{'true' if keep_bytes else 'false'}</vos:keepBytes>"
            f"{extra}</vos:transfer>").encode()


def _error_summary(transport: Transport, job_url: str) -> str:
    response = transport.request("GET", job_url, what=job_url)
    try:
        root = parse_xml(response.content)
    except VOSpaceFault:
        return response.text.strip()
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.endswith("}message") and el.text:
            return el.text.strip()
    return "the job failed"


def summary_error(summary: str, what: str) -> errors.VOSError:
    """Map a job's error summary (``FaultName: detail`` when the server follows CADC) to
    the matching error class."""
    fault = summary.partition(":")[0].strip()
    status = {"NodeNotFound": 404, "ContainerNotFound": 404, "PermissionDenied": 403,
              "NotAuthenticated": 401, "DuplicateNode": 409, "InvalidURI": 400,
              "InvalidArgument": 400, "QuotaExceeded": 413}.get(fault, 0)
    if status:
        return errors.from_response(status, summary, what)
    lowered = summary.lower()
    if "not found" in lowered or "no such" in lowered:
        return errors.NotFound(f"{what}: {summary}")
    if "denied" in lowered or "permission" in lowered:
        return errors.PermissionDenied(f"{what}: {summary}")
    return errors.ServerError(f"{what}: {summary}")


def run_transfer(transport: Transport, service: str, target: str, direction: str,
                 keep_bytes: bool, what: str, timeout: float = 3600,
                 params: dict[str, str] | None = None) -> None:
    body = transfer_document(target, direction, keep_bytes, params)
    response = transport.request("POST", f"/{service}/transfers", params={"PHASE": "RUN"},
                                 content=body, headers={"Content-Type": "text/xml"},
                                 what=what, retry=False)
    job_url = response.headers.get("location")
    if not job_url:
        raise errors.ServerError(f"{what}: the server did not return a job URL")
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        phase = transport.request("GET", f"{job_url.rstrip('/')}/phase",
                                  what=what).text.strip().upper()
        if phase == "COMPLETED":
            return
        if phase in ("ERROR", "ABORTED"):
            raise summary_error(_error_summary(transport, job_url), what)
        if phase == "PENDING":
            transport.request("POST", f"{job_url.rstrip('/')}/phase", data={"PHASE": "RUN"},
                              what=what, ok=(303,))
        if time.monotonic() > deadline:
            raise errors.ServerError(f"{what}: the job did not finish within {timeout:.0f}s",
                                     f"check it later at {job_url}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
