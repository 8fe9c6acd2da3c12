"""What a session is, in skaha's words: its types, status names and JSON fields.

Kept free of HTTP and SQL so the API, the store and both runners share one vocabulary.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

HEADLESS = "headless"
INTERACTIVE_TYPES = ("notebook", "desktop", "carta", "firefly", "contributed")
SESSION_TYPES = INTERACTIVE_TYPES + (HEADLESS,)

# skaha's status names (derived from the Kubernetes pod phase there).
PENDING, RUNNING, TERMINATING = "Pending", "Running", "Terminating"
SUCCEEDED, FAILED = "Succeeded", "Failed"
ACTIVE = (PENDING, RUNNING, TERMINATING)
FINISHED = (SUCCEEDED, FAILED)
STATUSES = ACTIVE + FINISHED + ("Completed", "Error")  # accepted as filters, as canfar lists them

# The path of each interactive type's app under /session/<path>/<id>/ (skaha's URL builder),
# on the session's own host.
URL_PATHS = {"notebook": "notebook", "desktop": "desktop", "carta": "carta",
             "firefly": "firefly", "contributed": "contrib"}


def iso(ts: float | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, as skaha writes startTime/expiryTime."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Session:
    """One row of the ``sessions`` table."""

    id: str
    owner: str
    name: str
    image: str
    type: str
    status: str
    uid: int
    gid: int
    groups: list[int]
    cores_request: int
    cores_limit: int
    ram_request: int           # GB
    ram_limit: int             # GB
    gpus: int
    fixed: bool
    created: float
    expiry: float
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    runner: str = "local"
    runner_id: str | None = None   # host:pid:nonce of the process supervising it (local runner)
    workdir: str | None = None     # local runner: scratch, log and passwd files live here
    ended: float | None = None
    stop_reason: str | None = None  # set by a DELETE in any process; the supervisor acts
    discard: bool = False           # delete the row once stopped (DELETE, as skaha forgets)
    ram_in_use: int | None = None   # bytes, last measured
    cpu_in_use: float | None = None  # cores, last measured
    shared_group: str | None = None  # group URI whose members may use the app (proxy.py)

    @property
    def interactive(self) -> bool:
        return self.type != HEADLESS

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def expired(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.expiry


def connect_url(session: Session, origin: str) -> str:
    """skaha's connectURL for an interactive session once its app answers (Running), on the
    session's own host ``origin`` (sessions/hosts.py) with skaha's paths; an empty string
    before and for headless sessions."""
    if not session.interactive or session.status != RUNNING:
        return ""
    prefix = f"{origin}/session/{URL_PATHS[session.type]}/{session.id}"
    if session.type == "notebook":
        return f"{prefix}/lab/tree/arc/home/{session.owner}?token={session.id}"
    if session.type == "desktop":
        return f"{prefix}/?password={session.id}&path=session/desktop/{session.id}/"
    if session.type == "firefly":
        return f"{prefix}/firefly/"
    return f"{prefix}/"


def _gb(value: float | None) -> str:
    return "0G" if value is None else f"{value:.2f}G".replace(".00G", "G")


def session_json(session: Session, origin: str) -> dict:
    """The full session document of ``GET /session[/{id}]``; ``origin``: its host's."""
    return {
        "id": session.id,
        "userid": session.owner,
        "runAsUID": str(session.uid),
        "runAsGID": str(session.gid),
        "supplementalGroups": session.groups,
        "appid": "<none>",
        "image": session.image,
        "type": session.type,
        "status": session.status,
        "name": session.name,
        "startTime": iso(session.created),
        "expiryTime": iso(session.expiry),
        "connectURL": connect_url(session, origin),
        "requestedRAM": f"{session.ram_limit if session.fixed else session.ram_request}G",
        "requestedCPUCores": str(session.cores_limit if session.fixed else session.cores_request),
        "requestedGPUCores": str(session.gpus),
        "ramInUse": _gb(None if session.ram_in_use is None else session.ram_in_use / 2**30),
        "gpuRAMInUse": "0G",
        "cpuCoresInUse": "0" if session.cpu_in_use is None else f"{session.cpu_in_use:.3f}",
        "gpuUtilization": "0",
        "isFixedResources": session.fixed,
        **({"sharedGroup": session.shared_group} if session.shared_group else {}),
    }


EVENT_HEADER = "TYPE  REASON  MESSAGE  FIRST-SEEN  LAST-SEEN"
WARNING_REASONS = ("Failed", "Terminating")


def event_line(when: float, text: str) -> str:
    """A ``view=events`` line as kubectl prints events (what the canfar client parses: fields
    apart by two spaces, so single spaces only inside a message)."""
    reason, _, message = text.partition(": ")
    kind = "Warning" if reason in WARNING_REASONS else "Normal"
    message = " ".join(message.split()) or reason
    return f"{kind}  {reason}  {message}  {iso(when)}  {iso(when)}"


def public_json(session: Session) -> dict:
    """What ``view=all`` shows of everyone's sessions (skaha's PublicSession)."""
    return {"userid": session.owner, "type": session.type, "status": session.status,
            "startTime": iso(session.created)}
