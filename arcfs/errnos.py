"""What each client error is to the caller of a syscall: the errno table of SEMANTICS.md."""
from __future__ import annotations

import errno
import logging
import os
from contextlib import contextmanager
from typing import Iterator

import httpx

from vosclient import errors

log = logging.getLogger("arcfs")

ERRNO = ((errors.NotFound, errno.ENOENT), (errors.NotAuthenticated, errno.EACCES),
         (errors.PermissionDenied, errno.EACCES), (errors.AlreadyExists, errno.EEXIST),
         (errors.NotAContainer, errno.ENOTDIR), (errors.IsAContainer, errno.EISDIR),
         (errors.QuotaExceeded, errno.EDQUOT), (errors.Locked, errno.EPERM),
         (errors.InvalidArgument, errno.EINVAL))


def fs_error(code: int, message: str = "") -> OSError:
    return OSError(code, message or os.strerror(code))


def errno_of(exc: errors.VOSError) -> int:
    for kind, code in ERRNO:
        if isinstance(exc, kind):
            return code
    return errno.EIO        # unreachable server, server failure, checksum mismatch


@contextmanager
def remote_errors() -> Iterator[None]:
    """Turn client errors into the errno the caller of the syscall sees."""
    try:
        yield
    except errors.VOSError as exc:
        log.info("%s", exc)
        raise fs_error(errno_of(exc), str(exc)) from None
    except (httpx.HTTPError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno:
            raise
        log.warning("transport failure: %s", exc)
        raise fs_error(errno.EIO, str(exc)) from None
