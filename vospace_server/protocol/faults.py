"""One exception type per IVOA VOSpace fault, each carrying its HTTP status.

The services turn any :class:`VOSpaceFault` into a ``text/plain`` body of the form
``FaultName: detail`` (what CADC's ``NodeFault.getStatus`` emits and the CADC client parses).
Keeping the name and status on the class means the mapping lives in exactly one place.
"""
from __future__ import annotations

import errno


class VOSpaceFault(Exception):
    """Base of every protocol fault. Subclasses set ``fault_name`` and ``status``."""

    fault_name = "InternalFault"
    status = 500
    headers: dict[str, str] = {}

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> str:
        return f"{self.fault_name}: {self.detail}\n" if self.detail else f"{self.fault_name}\n"


class InternalFault(VOSpaceFault):
    fault_name, status = "InternalFault", 500


class InvalidURI(VOSpaceFault):
    fault_name, status = "InvalidURI", 400


class InvalidArgument(VOSpaceFault):
    fault_name, status = "InvalidArgument", 400


class TypeNotSupported(VOSpaceFault):
    fault_name, status = "TypeNotSupported", 400


class LinkFound(VOSpaceFault):
    fault_name, status = "LinkFound", 400


class UnreadableLinkTarget(VOSpaceFault):
    fault_name, status = "UnreadableLinkTarget", 400


class ProtocolNotSupported(VOSpaceFault):
    fault_name, status = "ProtocolNotSupported", 400


class ViewNotSupported(VOSpaceFault):
    fault_name, status = "ViewNotSupported", 400


class OptionNotSupported(VOSpaceFault):
    fault_name, status = "OptionNotSupported", 400


class NotAuthenticated(VOSpaceFault):
    fault_name, status = "NotAuthenticated", 401


class PermissionDenied(VOSpaceFault):
    fault_name, status = "PermissionDenied", 403


class NodeNotFound(VOSpaceFault):
    fault_name, status = "NodeNotFound", 404


class JobNotFound(VOSpaceFault):
    """A UWS job (or one of its resources) that does not exist; not a VOSpace fault name."""

    fault_name, status = "NotFound", 404


class ContainerNotFound(VOSpaceFault):
    fault_name, status = "ContainerNotFound", 404


class DuplicateNode(VOSpaceFault):
    fault_name, status = "DuplicateNode", 409


class ContainerNotEmpty(VOSpaceFault):
    """Not an IVOA fault name; used only where POSIX-like callers need ENOTEMPTY semantics."""

    fault_name, status = "ContainerNotEmpty", 409


class PreconditionFailed(VOSpaceFault):
    fault_name, status = "PreconditionFailed", 412


class RequestEntityTooLarge(VOSpaceFault):
    fault_name, status = "RequestEntityTooLarge", 413


class QuotaExceeded(VOSpaceFault):
    fault_name, status = "QuotaExceeded", 413


class InsufficientStorage(VOSpaceFault):
    """The server's storage itself is full (not the user's quota): HTTP's 507."""
    fault_name, status = "InsufficientStorage", 507


def storage_fault(exc: BaseException) -> VOSpaceFault | None:
    """The fault a full disk or an exhausted filesystem quota (CephFS directory quotas
    answer EDQUOT) is to the client, rather than an internal error; None for others."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return InsufficientStorage("the server's storage is full; nothing was stored")
    if isinstance(exc, OSError) and exc.errno == errno.EDQUOT:
        return QuotaExceeded("the storage's own quota is exhausted; nothing was stored")
    return None


class NodeLocked(VOSpaceFault):
    fault_name, status = "NodeLocked", 423


class ServiceBusy(VOSpaceFault):
    fault_name, status = "ServiceBusy", 503
    headers = {"Retry-After": "5"}


class NodeBusy(VOSpaceFault):
    """The CADC client looks for the substring ``Node is busy`` in the body."""

    fault_name, status = "NodeBusy", 409

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"Node is busy {detail}".strip())


class TooManyRequests(VOSpaceFault):
    """Not an IVOA fault: password guessing slowed down (``/ac/login``, HTTP Basic)."""

    fault_name, status = "TooManyRequests", 429
    headers = {"Retry-After": "60"}
