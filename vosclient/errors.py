"""Client-side errors, each carrying the exit status the command-line tools use.

The table is documented in README.md and in every tool's ``--help`` epilog; statuses are
fixed per kind of failure (errno-like where an errno fits) and never summed.
"""
from __future__ import annotations

import errno

EXIT_CODES = """exit status:
  0   success
  1   some files failed (a summary is printed) or an unclassified error
  2   no such node or file (also: bad command line)
  13  permission denied or the credential was refused
  16  the node is locked (unlock it with vlock --unlock)
  17  the destination already exists
  20  not a container
  21  is a container (use vrmdir, or -r)
  22  invalid argument or URI
  28  quota exceeded or no space left
  66  the server failed (try again later)
  74  data corrupted in transit (checksum mismatch)
  101 the service cannot be reached (network or server down)
  130 interrupted"""


class VOSError(Exception):
    """Base of every client error; ``hint`` says what the user can do about it.

    A kind of error names its exit status and default hint in its class statement:
    ``class Locked(VOSError, exit_code=errno.EBUSY, hint="...")``."""

    exit_code = 1
    hint = ""

    def __init_subclass__(cls, exit_code: int | None = None, hint: str | None = None) -> None:
        super().__init_subclass__()
        if exit_code is not None:
            cls.exit_code = exit_code
        if hint is not None:
            cls.hint = hint

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def line(self) -> str:
        """The one line the tools print after ``ERROR:: ``."""
        text = str(self)
        return f"{text} ({self.hint})" if self.hint else text


class NotFound(VOSError, exit_code=errno.ENOENT):
    """No such node or local file."""


class PermissionDenied(
        VOSError, exit_code=errno.EACCES,
        hint="check the node's permissions with vls -l, or ask its owner for access"):
    """The caller may not do this to the node."""


class NotAuthenticated(PermissionDenied,
                       hint="the token is unknown or expired; run vos-login to store a new one"):
    """The service refused the credential (or wanted one)."""


class Locked(VOSError, exit_code=errno.EBUSY, hint="unlock it with vlock --unlock first"):
    """The node is locked, or busy with another transfer."""


class AlreadyExists(VOSError, exit_code=errno.EEXIST):
    """The destination already exists."""


class NotAContainer(VOSError, exit_code=errno.ENOTDIR):
    """A container was expected."""


class IsAContainer(VOSError, exit_code=errno.EISDIR):
    """A data node was expected."""


class InvalidArgument(VOSError, exit_code=errno.EINVAL):
    """A bad argument or URI, or a request the service cannot take."""


class QuotaExceeded(VOSError, exit_code=errno.ENOSPC,
                    hint="free some space or ask an administrator for a larger quota"):
    """The quota is used up, or the disk is full."""


class ServerError(VOSError, exit_code=errno.EREMOTE,
                  hint="the service failed; try again later, and report it if it persists"):
    """The service failed (an HTTP 5xx)."""


class ChecksumMismatch(VOSError, exit_code=errno.EBADMSG,
                       hint="the data was corrupted in transit; copy it again"):
    """The bytes received do not have the MD5 the service recorded."""


class Unreachable(VOSError, exit_code=errno.ENETUNREACH,
                  hint="check the service URL (vos-login --show) and your network"):
    """No answer from the service (network or server down)."""


class TransferFailed(VOSError):
    """Some files of a multi-file operation failed; the per-file summary was printed."""


def from_response(status: int, body: str, what: str) -> VOSError:
    """Map an HTTP error answer (body ``FaultName: detail``) to the matching error."""
    detail = body.strip().splitlines()[0] if body.strip() else f"HTTP {status}"
    fault = detail.partition(":")[0].strip()
    message = f"{what}: {detail}"
    if status == 404:
        return NotFound(message)
    if status == 401:
        return NotAuthenticated(message)
    if status == 403:
        if "lock" in detail.lower():
            return Locked(message)
        if "quota" in detail.lower():
            return QuotaExceeded(message)
        return PermissionDenied(message)
    if status == 409:
        if fault == "NodeBusy":
            return Locked(message, "another transfer is using the node; try again shortly")
        return AlreadyExists(message)
    if status == 412:
        return ChecksumMismatch(message)
    if status in (413, 507):
        if fault == "RequestEntityTooLarge":
            return InvalidArgument(message, "the request is larger than the service accepts")
        return QuotaExceeded(message)
    if status == 423:
        return Locked(message)
    if status == 400:
        if fault == "LinkFound":
            return InvalidArgument(message, "the path goes through a link node")
        return InvalidArgument(message)
    if status >= 500:
        return ServerError(message)
    return VOSError(message)
