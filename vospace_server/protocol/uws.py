"""UWS 1.1 documents: a job, a job list, results and parameters (UWS-v1.1.xsd order).

The CADC client reads ``uws:phase``, ``uws:errorSummary/uws:message`` and
``uws:results/uws:result[@id]/@xlink:href`` (``final:<N>`` for the recursive operations)
by namespace, so prefixes are free; we use ``uws`` and ``xlink`` anyway.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from lxml import etree

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
PHASES = frozenset({"PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR", "ABORTED",
                    "UNKNOWN", "HELD", "SUSPENDED", "ARCHIVED"})


@dataclass
class JobView:
    """What a job document shows; built by the service layer from a stored job."""

    id: str
    href: str                      # the job's URL
    phase: str
    owner: str | None
    created: float
    started: float | None
    ended: float | None
    duration: int
    destruction: float | None
    parameters: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)   # id -> href
    error: str | None = None       # errorSummary message
    job_info: etree._Element | None = None


def format_time(ts: float) -> str:
    """xs:dateTime in UTC with milliseconds."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(text: str) -> float:
    """An ISO 8601 instant (as clients POST for destruction); naive means UTC."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _uws(tag: str) -> str:
    return f"{{{UWS_NS}}}{tag}"


def _nillable(parent: etree._Element, tag: str, ts: float | None) -> None:
    el = etree.SubElement(parent, _uws(tag))
    if ts is None:
        el.set(f"{{{XSI_NS}}}nil", "true")
    else:
        el.text = format_time(ts)


def _owner(parent: etree._Element, owner: str | None) -> None:
    el = etree.SubElement(parent, _uws("ownerId"))
    if owner is None:
        el.set(f"{{{XSI_NS}}}nil", "true")
    else:
        el.text = owner


def _results(parent: etree._Element | None, results: dict[str, str]) -> etree._Element:
    el = etree.Element(_uws("results"), nsmap=NSMAP) if parent is None \
        else etree.SubElement(parent, _uws("results"))
    for rid, href in results.items():
        result = etree.SubElement(el, _uws("result"), id=rid)
        result.set(f"{{{XLINK_NS}}}href", href)
    return el


def _parameters(parent: etree._Element | None, params: dict[str, str]) -> etree._Element:
    el = etree.Element(_uws("parameters"), nsmap=NSMAP) if parent is None \
        else etree.SubElement(parent, _uws("parameters"))
    for pid, value in params.items():
        etree.SubElement(el, _uws("parameter"), id=pid).text = value
    return el


def render_job(job: JobView) -> bytes:
    root = etree.Element(_uws("job"), nsmap=NSMAP, version="1.1")
    etree.SubElement(root, _uws("jobId")).text = job.id
    _owner(root, job.owner)
    etree.SubElement(root, _uws("phase")).text = job.phase
    etree.SubElement(root, _uws("creationTime")).text = format_time(job.created)
    _nillable(root, "startTime", job.started)
    _nillable(root, "endTime", job.ended)
    etree.SubElement(root, _uws("executionDuration")).text = str(job.duration)
    _nillable(root, "destruction", job.destruction)
    _parameters(root, job.parameters)
    _results(root, job.results)
    if job.error is not None:
        summary = etree.SubElement(root, _uws("errorSummary"), type="fatal", hasDetail="true")
        etree.SubElement(summary, _uws("message")).text = job.error
    if job.job_info is not None:
        etree.SubElement(root, _uws("jobInfo")).append(job.job_info)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_job_list(jobs: list[JobView]) -> bytes:
    root = etree.Element(_uws("jobs"), nsmap=NSMAP, version="1.1")
    for job in jobs:
        ref = etree.SubElement(root, _uws("jobref"), id=job.id)
        ref.set(f"{{{XLINK_NS}}}href", job.href)
        etree.SubElement(ref, _uws("phase")).text = job.phase
        _owner(ref, job.owner)
        etree.SubElement(ref, _uws("creationTime")).text = format_time(job.created)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def render_results(results: dict[str, str]) -> bytes:
    return etree.tostring(_results(None, results), xml_declaration=True, encoding="UTF-8")


def render_parameters(params: dict[str, str]) -> bytes:
    return etree.tostring(_parameters(None, params), xml_declaration=True, encoding="UTF-8")
