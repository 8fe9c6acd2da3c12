"""TAR and ZIP framing for package downloads, written as a stream of byte chunks.

Nothing is staged: each entry's header is emitted, then its bytes as they are read, so a
package of any size needs memory for one chunk. ZIP entries are stored (astronomical data
rarely compresses well and deflate would bound the rate by one CPU) with data descriptors,
as a writer that cannot seek must; ZIP64 is used for entries over 4 GiB. TAR entries use
the POSIX.1-2001 (pax) format, so long and non-ASCII names survive.
"""
from __future__ import annotations

import tarfile
import time
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterator

from ..storage.streams import CHUNK, ReadHandle

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Entry:
    """One archive member: a folder (``name`` ends with ``/``) or a file at node ``path``."""

    name: str
    path: str | None = None
    mtime: float | None = None

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


Opener = Callable[[str], ReadHandle]


def _chunks(handle: ReadHandle) -> Iterator[bytes]:
    """Exactly ``handle.size`` bytes (zero-filled should the file shrink meanwhile)."""
    offset = 0
    while offset < handle.size:
        data = handle.read(offset, min(CHUNK, handle.size - offset))
        if not data:
            data = bytes(min(CHUNK, handle.size - offset))
        offset += len(data)
        yield data


def tar_stream(entries: Iterator[Entry], open_read: Opener) -> Iterator[bytes]:
    for entry in entries:
        info = tarfile.TarInfo(entry.name.rstrip("/"))
        info.mtime = int(entry.mtime or time.time())
        if entry.is_dir:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8")
            continue
        handle = open_read(entry.path or "")
        try:
            info.size, info.mode, info.mtime = handle.size, 0o644, int(handle.mtime)
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8")
            yield from _chunks(handle)
        finally:
            handle.close()
        if info.size % tarfile.BLOCKSIZE:
            yield bytes(tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield bytes(tarfile.RECORDSIZE)  # end-of-archive blocks, padded to a whole record


class _Sink:
    """A write-only file for zipfile (no tell/seek: it then writes data descriptors)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


def _zip_info(name: str, mtime: float, mode: int) -> zipfile.ZipInfo:
    stamp = max(time.gmtime(mtime)[:6], ZIP_EPOCH)
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.external_attr = mode << 16
    return info


def zip_stream(entries: Iterator[Entry], open_read: Opener) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            if entry.is_dir:
                info = _zip_info(entry.name, entry.mtime or time.time(), 0o40755)
                info.external_attr |= 0x10  # MS-DOS directory flag
                archive.writestr(info, b"")
                yield sink.take()
                continue
            handle = open_read(entry.path or "")
            try:
                info = _zip_info(entry.name, handle.mtime, 0o100644)
                info.file_size = handle.size  # decides ZIP64 up front
                with archive.open(info, "w") as member:
                    for data in _chunks(handle):
                        member.write(data)
                        if sink.size >= CHUNK:
                            yield sink.take()
            finally:
                handle.close()
            yield sink.take()
    yield sink.take()


WRITERS = {"tar": tar_stream, "zip": zip_stream}
