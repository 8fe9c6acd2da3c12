"""fsspec filesystems for the ``vos`` (vault) and ``arc`` protocols.

Registered through the ``fsspec.specs`` entry points, so ``fsspec.open("vos://alice/x.fits")``
and ``pandas.read_csv("arc://home/alice/t.csv")`` work; full ``vos://authority~service/path``
URIs are accepted too. (fsspec only recognizes ``proto://``; the tools' short ``vos:path`` form
works with :func:`vosclient.open`.) Reads are HTTP Range requests behind fsspec's block/readahead
caches; writes are spooled to a temporary file and uploaded, MD5-checked, on close.
"""
from __future__ import annotations

import tempfile

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import errors, transfer, uris
from .client import Client
from .config import load
from .nodes import Node


def _os_error(exc: errors.VOSError, path: str) -> OSError:
    """fsspec callers expect the builtin exception types."""
    if isinstance(exc, errors.NotFound):
        return FileNotFoundError(2, str(exc), path)
    if isinstance(exc, errors.PermissionDenied):
        return PermissionError(13, str(exc), path)
    if isinstance(exc, errors.AlreadyExists):
        return FileExistsError(17, str(exc), path)
    if isinstance(exc, errors.IsAContainer):
        return IsADirectoryError(21, str(exc), path)
    if isinstance(exc, errors.NotAContainer):
        return NotADirectoryError(20, str(exc), path)
    return OSError(exc.exit_code, str(exc), path)


class _SettingsKeyed(type(AbstractFileSystem)):
    """fsspec caches instances by constructor arguments; the URL and token found in the
    config file or environment must be part of that key, or a changed VOSPACE_URL would
    silently reuse a client for the old service."""

    def __call__(cls, *args, **kwargs):
        if kwargs.get("client") is None and kwargs.get("url") is None:
            settings = load()
            kwargs.update(url=settings.url, token=kwargs.get("token") or settings.token,
                          verify=settings.verify if kwargs.get("verify") is None
                          else kwargs["verify"])
        return super().__call__(*args, **kwargs)


class VOSFileSystem(AbstractFileSystem, metaclass=_SettingsKeyed):
    """Nodes of the vault service as an fsspec filesystem (paths without a leading slash)."""

    protocol = ("vos", "vault")
    service = "vault"
    root_marker = ""

    def __init__(self, client: Client | None = None, url: str | None = None,
                 token: str | None = None, verify: bool | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.client = client or Client(url=url, token=token, verify=verify)

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("vos://") and "~" in path.split("/")[2].replace("!", "~"):
            remote = uris.parse(path)
            if remote.service != cls.service:
                raise ValueError(f"{path} is not on the {cls.service} service")
            return remote.path
        for proto in cls.protocol:
            for prefix in (f"{proto}://", f"{proto}:"):
                if path.startswith(prefix):
                    path = path[len(prefix):]
                    break
        return uris.normalize(path)

    def remote_of(self, path: str) -> uris.Remote:
        return uris.Remote(self.service, self._strip_protocol(path))

    def call_mapped(self, fn, path: str, *args, **kwargs):
        """``fn(*args, **kwargs)``, its VOSError raised as the OSError fsspec callers expect."""
        try:
            return fn(*args, **kwargs)
        except errors.VOSError as exc:
            raise _os_error(exc, path) from None

    def _info(self, node: Node, path: str) -> dict:
        kind = "directory" if node.isdir else "file" if node.isfile else "other"
        return {"name": path, "size": node.size, "type": kind, "md5": node.md5,
                "mtime": node.mtime, "creator": node.creator, "islink": node.islink,
                "target": node.target}

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        node = self.call_mapped(self.client.get_node, path, self.remote_of(path))
        return self._info(node, path)

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        remote = self.remote_of(path)
        node = self.call_mapped(self.client.get_node, path, remote)
        if node.isdir:
            entries = [self._info(child, remote.child(child.name).path)
                       for child in self.call_mapped(lambda: list(self.client.iterdir(remote)), path)]
        else:
            entries = [self._info(node, path)]
        return entries if detail else [e["name"] for e in entries]

    def mkdir(self, path, create_parents=True, **kwargs):
        path = self._strip_protocol(path)
        self.call_mapped(self.client.mkdir, path, self.remote_of(path), parents=create_parents)

    def makedirs(self, path, exist_ok=False):
        path = self._strip_protocol(path)
        if not exist_ok and self.exists(path):
            raise FileExistsError(17, "exists", path)
        self.call_mapped(self.client.mkdir, path, self.remote_of(path), parents=True)

    def _rm(self, path):
        path = self._strip_protocol(path)
        self.call_mapped(self.client.delete, path, self.remote_of(path))

    def rm(self, path, recursive=False, maxdepth=None):
        """Containers are deleted server-side in one request when ``recursive``."""
        for p in ([path] if isinstance(path, str) else path):
            if not recursive and self.isdir(p) and self.ls(p, detail=False):
                raise OSError(39, "container not empty", p)
            self._rm(p)

    def rmdir(self, path):
        self.rm(path)

    def mv(self, path1, path2, recursive=False, maxdepth=None, **kwargs):
        p1, p2 = self._strip_protocol(path1), self._strip_protocol(path2)
        self.call_mapped(self.client.move, p1, self.remote_of(p1), self.remote_of(p2))

    def cp_file(self, path1, path2, **kwargs):
        p1, p2 = self._strip_protocol(path1), self._strip_protocol(path2)
        self.call_mapped(self.client.copy_remote, p1, self.remote_of(p1), self.remote_of(p2))

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        size = None
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(path)["size"]
            start = size + start if start is not None and start < 0 else start
            end = size + end if end is not None and end < 0 else end
        return self.call_mapped(self.client.read_bytes, path, self.remote_of(path), start, end)

    def pipe_file(self, path, value, **kwargs):
        path = self._strip_protocol(path)
        self.call_mapped(self.client.write_bytes, path, self.remote_of(path), bytes(value))

    def get_file(self, rpath, lpath, callback=None, **kwargs):
        rpath = self._strip_protocol(rpath)
        self.call_mapped(self.client.download, rpath, self.remote_of(rpath), lpath)

    def put_file(self, lpath, rpath, callback=None, **kwargs):
        rpath = self._strip_protocol(rpath)
        self.call_mapped(self.client.upload, rpath, lpath, self.remote_of(rpath))

    def checksum(self, path):
        return int(self.info(path)["md5"] or "0", 16)

    def ukey(self, path):
        return self.info(path)["md5"]

    def modified(self, path):
        import datetime
        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], datetime.timezone.utc)

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None,
              **kwargs):
        return VOSFile(self, self._strip_protocol(path), mode=mode,
                       block_size=block_size or "default", autocommit=autocommit,
                       cache_options=cache_options, **kwargs)


class ArcFileSystem(VOSFileSystem):
    """The same for the arc (POSIX) service: ``arc://home/alice/x``."""

    protocol = ("arc",)
    service = "arc"


class VOSFile(AbstractBufferedFile):
    """Reads fetch byte ranges; writes go to a spool file uploaded in one PUT on close."""

    DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024

    def _fetch_range(self, start, end):
        fs: VOSFileSystem = self.fs
        return fs.call_mapped(fs.client.read_bytes, self.path, fs.remote_of(self.path), start, end)

    def _initiate_upload(self):
        self._spool = tempfile.NamedTemporaryFile(prefix="vosclient-")

    def _upload_chunk(self, final=False):
        self.buffer.seek(0)
        while chunk := self.buffer.read(transfer.CHUNK):
            self._spool.write(chunk)
        if not final:
            return True
        fs: VOSFileSystem = self.fs
        self._spool.flush()
        try:
            fs.call_mapped(fs.client.upload, self.path, self._spool.name, fs.remote_of(self.path),
                     skip_identical=False)
        finally:
            self._spool.close()
        return True

    def discard(self):
        spool = getattr(self, "_spool", None)
        if spool is not None:
            spool.close()
