"""``vosclient.Client``: the calls people make from Python and the tools are built on.

Every call takes a remote name (``vos:alice/x``, ``arc:home/alice/x``, ``vos://...``) or a
:class:`~vosclient.uris.Remote`. Node operations are single requests on ``/{svc}/nodes``;
data goes through ``/{svc}/files`` (see :mod:`vosclient.transfer`); moves and server-side
copies are UWS jobs on ``/{svc}/transfers``.
"""
from __future__ import annotations

import fnmatch
from typing import Iterator
from urllib.parse import quote

from vospace_server.protocol import properties as P
from vospace_server.protocol.xml_io import parse_xml

from . import errors, jobs, nodes, transfer, uris
from .bulk import Bulk, Stream
from .config import Settings, load
from .http import Transport
from .nodes import Node
from .sources import ByteSource, endpoint

PAGE = 5000
Target = str | uris.Remote


def as_remote(name: Target) -> uris.Remote:
    return name if isinstance(name, uris.Remote) else uris.parse(name)


class Client:
    """A VOSpace client for one deployment (both its vault and arc services).

    ``url``/``token``/``verify`` default to the config file and environment
    (:func:`vosclient.config.load`).
    """

    def __init__(self, url: str | None = None, token: str | None = None,
                 verify: bool | None = None, settings: Settings | None = None,
                 retries: int = 5, backoff: float = 0.5, timeout: float = 120.0) -> None:
        settings = settings or load()
        self.settings = Settings(url=(url or settings.url).rstrip("/"),
                                 token=token if token is not None else settings.token,
                                 verify=settings.verify if verify is None else verify)
        self.transport = Transport(self.settings.url, self.settings.token, self.settings.verify,
                                   retries=retries, backoff=backoff, timeout=timeout)
        self._base_uris: dict[str, str] = {}
        self._bulk: Bulk | None = None

    def close(self) -> None:
        self.transport.close()
        if self._bulk is not None:
            self._bulk.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- addressing -------------------------------------------------------------------
    @staticmethod
    def nodes_url(remote: uris.Remote) -> str:
        return f"/{remote.service}/nodes/{quote(remote.path, safe='/')}"

    @staticmethod
    def files_url(remote: uris.Remote) -> str:
        return f"/{remote.service}/files/{quote(remote.path, safe='/')}"

    def base_uri(self, service: str) -> str:
        """``vos://authority~service`` as the server names its nodes (learnt once)."""
        if service not in self._base_uris:
            root = self._get(uris.Remote(service, ""), limit=0, detail="min")
            self._base_uris[service] = "/".join(root.uri.split("/")[:3])
        return self._base_uris[service]

    def node_uri(self, remote: uris.Remote) -> str:
        return f"{self.base_uri(remote.service)}/{remote.path}"

    # ---- reading nodes ----------------------------------------------------------------
    def _get(self, remote: uris.Remote, limit: int | None = None, detail: str = "max",
             start: str | None = None, sort: str | None = None,
             order: str | None = None) -> Node:
        params: dict[str, str] = {"detail": detail}
        if limit is not None:
            params["limit"] = str(limit)
        if start:
            params["uri"] = start
        if sort:
            params["sort"] = nodes.prop_uri(sort)
        if order:
            params["order"] = order
        response = self.transport.request("GET", self.nodes_url(remote), params=params,
                                          what=str(remote))
        return nodes.parse(response.content)

    def get_node(self, name: Target, limit: int | None = 0) -> Node:
        """The node with its properties (and up to ``limit`` children; None = all)."""
        remote = as_remote(name)
        node = self._get(remote, limit=limit)
        self._base_uris.setdefault(remote.service, "/".join(node.uri.split("/")[:3]))
        return node

    stat = get_node
    status = get_node

    def exists(self, name: Target) -> bool:
        try:
            self.get_node(name)
            return True
        except errors.NotFound:
            return False

    def isdir(self, name: Target) -> bool:
        try:
            return self.get_node(name).isdir
        except errors.NotFound:
            return False

    def isfile(self, name: Target) -> bool:
        try:
            return self.get_node(name).isfile
        except errors.NotFound:
            return False

    def iterdir(self, name: Target, page: int = PAGE, sort: str | None = None,
                order: str | None = None, detail: str = "max") -> Iterator[Node]:
        """Children of a container with their properties, fetched ``page`` at a time
        (``uri`` cursor, inclusive: the first child of each later page is skipped).
        ``sort`` is ``length`` or ``date`` (server-side; default by name), ``order``
        ``asc`` or ``desc``; ``detail="properties"`` leaves out what the caller may do
        and the views (a smaller, quicker listing)."""
        remote = as_remote(name)
        node = self._get(remote, limit=page, sort=sort, order=order, detail=detail)
        if not node.isdir:
            raise errors.NotAContainer(f"{remote}: not a container")
        children = node.children or []
        yield from children
        while len(children) >= page:
            last = children[-1].uri
            children = (self._get(remote, limit=page + 1, start=last, sort=sort,
                                  order=order, detail=detail).children or [])[1:]
            yield from children

    def listdir(self, name: Target) -> list[str]:
        return [child.name for child in self.iterdir(name)]

    def glob(self, pattern: str) -> list[uris.Remote]:
        """Expand wildcards in the last path component (client-side, over one listing)."""
        remote = uris.parse(pattern)
        if not uris.has_wildcard(remote.name):
            return [remote]
        parent = remote.parent
        if uris.has_wildcard(parent.path):
            raise errors.InvalidArgument(f"{pattern}: wildcards only in the last component")
        return [parent.child(c.name) for c in self.iterdir(parent)
                if fnmatch.fnmatchcase(c.name, remote.name)]

    def walk(self, name: Target) -> Iterator[tuple[uris.Remote, list[Node], list[Node]]]:
        """Like os.walk: (container, subcontainers, other children), top-down."""
        remote = as_remote(name)
        dirs, others = [], []
        for child in self.iterdir(remote):
            (dirs if child.isdir else others).append(child)
        yield remote, dirs, others
        for d in dirs:
            yield from self.walk(remote.child(d.name))

    # ---- changing nodes ---------------------------------------------------------------
    def _create(self, remote: uris.Remote, type_: str, properties: dict | None = None,
                target: str | None = None) -> Node:
        body = nodes.render(self.base_uri(remote.service), remote.path, type_, properties,
                            target)
        response = self.transport.request("PUT", self.nodes_url(remote), content=body,
                                          headers={"Content-Type": "text/xml"},
                                          what=str(remote))
        return nodes.parse(response.content)

    def mkdir(self, name: Target, parents: bool = False, exist_ok: bool = False) -> None:
        remote = as_remote(name)
        try:
            self._create(remote, nodes.CONTAINER)
        except errors.NotFound:
            if not parents or not remote.path:
                raise errors.NotFound(f"{remote.parent}: no such container",
                                      "create it first, or use -p") from None
            self.mkdir(remote.parent, parents=True, exist_ok=True)
            self.mkdir(remote, parents=False, exist_ok=exist_ok)
        except errors.AlreadyExists:
            if not (exist_ok or parents) or not self.isdir(remote):
                raise

    makedirs = mkdir

    def delete(self, name: Target) -> None:
        """Delete a node (a container with everything below it)."""
        remote = as_remote(name)
        self.transport.request("DELETE", self.nodes_url(remote), what=str(remote))

    def link(self, name: Target, target: str,
             properties: dict[str, str | None] | None = None) -> Node:
        """Create a LinkNode at ``name`` pointing to ``target`` (a remote name or a URL),
        with optional ``properties`` (URIs) set in the same request."""
        remote = as_remote(name)
        if uris.is_remote(target):
            target_remote = uris.parse(target)
            target = self.node_uri(target_remote)
        return self._create(remote, nodes.LINK, properties, target=target)

    def get_props(self, name: Target) -> dict[str, str | None]:
        return dict(self.get_node(name).props)

    def set_props(self, name: Target, properties: dict[str, str | None],
                  current: Node | None = None) -> Node:
        """Set properties (short names or URIs); a value of None deletes the property.
        ``current`` is the node when the caller already has it (saves a request)."""
        remote = as_remote(name)
        current = current or self.get_node(remote)
        changes = {nodes.prop_uri(k): v for k, v in properties.items()}
        body = nodes.render(self.base_uri(remote.service), remote.path, current.type, changes,
                            current.target)
        response = self.transport.request("POST", self.nodes_url(remote), content=body,
                                          headers={"Content-Type": "text/xml"},
                                          what=str(remote))
        return nodes.parse(response.content)

    def lock(self, name: Target) -> Node:
        return self.set_props(name, {P.ISLOCKED: "true"})

    def unlock(self, name: Target) -> Node:
        return self.set_props(name, {P.ISLOCKED: None})

    def move(self, src: Target, dest: Target, timeout: float = 3600,
             replace: bool = False) -> None:
        """Server-side move (one job however large the tree): into ``dest`` if it is a
        container, else renamed to ``dest``. With ``replace`` it is renamed to ``dest``
        whatever is there, atomically replacing a file or an empty container, as
        rename(2) does (this project's server only; others answer DuplicateNode)."""
        self._transfer_job(as_remote(src), as_remote(dest), keep_bytes=False, timeout=timeout,
                           params={jobs.REPLACE_PARAM: "true"} if replace else None)

    def copy_remote(self, src: Target, dest: Target, timeout: float = 3600) -> None:
        """Server-side copy (same service)."""
        self._transfer_job(as_remote(src), as_remote(dest), keep_bytes=True, timeout=timeout)

    def _transfer_job(self, src: uris.Remote, dest: uris.Remote, keep_bytes: bool,
                      timeout: float, params: dict[str, str] | None = None) -> None:
        if src.service != dest.service:
            raise errors.InvalidArgument(
                f"{src} -> {dest}: server-side moves and copies stay within one service",
                "copy through a local file with vcp instead")
        jobs.run_transfer(self.transport, src.service, self.node_uri(src), self.node_uri(dest),
                          keep_bytes, what=f"{src} -> {dest}", timeout=timeout, params=params)

    # ---- data -------------------------------------------------------------------------
    def upload(self, local: str, name: Target, **kwargs) -> transfer.Result:
        return transfer.upload(self, local, as_remote(name), **kwargs)

    def download(self, name: Target, local: str, **kwargs) -> transfer.Result:
        return transfer.download(self, as_remote(name), local, **kwargs)

    def copy(self, src: str, dest: str, **kwargs) -> transfer.Result:
        """Copy one file: local->remote, remote->local or remote->remote (server-side)."""
        if uris.is_remote(src) and uris.is_remote(dest):
            self.copy_remote(src, dest)
            return transfer.Result(src, dest, "copied", 0)
        if uris.is_remote(dest):
            return self.upload(src, dest, **kwargs)
        if uris.is_remote(src):
            return self.download(src, dest, **kwargs)
        raise errors.InvalidArgument(f"{src} -> {dest}: one side must be remote")

    def negotiate(self, name: Target, push: bool) -> str | None:
        """The first endpoint synchronous transfer negotiation (``/synctrans``, query form)
        hands out for moving the bytes of ``name`` (up with ``push``): a pre-authorized URL,
        on this project's server its data port; None when the answer names none."""
        remote = as_remote(name)
        scheme = "https" if self.settings.url.startswith("https:") else "http"
        response = self.transport.request("POST", f"/{remote.service}/synctrans", params={
            "TARGET": self.node_uri(remote),
            "DIRECTION": "pushToVoSpace" if push else "pullFromVoSpace",
            "PROTOCOL": f"ivo://ivoa.net/vospace/core#{scheme}{'put' if push else 'get'}"},
            what=str(remote))
        for element in parse_xml(response.content).iter():
            if isinstance(element.tag, str) and element.tag.endswith("}endpoint") \
                    and element.text:
                return element.text.strip()
        return None

    def read_bytes(self, name: Target, start: int | None = None, end: int | None = None) -> bytes:
        return transfer.read_range(self, as_remote(name), start, end)

    def write_bytes(self, name: Target, data: bytes) -> Node:
        return transfer.put_bytes(self, as_remote(name), data)

    # ---- bulk bodies (http.client: several times faster than httpx for big streams) ------
    @property
    def bulk(self) -> "Bulk":
        if self._bulk is None:
            self._bulk = Bulk(self.settings.url, self.transport.auth_headers,
                              self.settings.verify, timeout=self.transport.http.timeout.read
                              or 120.0)
        return self._bulk

    def open_stream(self, name: Target, start: int = 0, end: int | None = None,
                    negotiate: bool = False) -> "Stream":
        """Bytes ``[start, end)`` of a node as a stream (``read(n)``, ``close()``). With
        ``negotiate`` from the pre-authorized URL transfer negotiation hands out (the data
        port, as vcp's big downloads), else, or when it is refused, from /files. A caller
        reading one node in many ranges keeps a :meth:`byte_source` instead."""
        return self.byte_source(name, negotiate).open(start, end)

    def byte_source(self, name: Target, negotiate: bool = False) -> ByteSource:
        """Range reads of one node to one URL, negotiated at most once (see ``open_stream``)."""
        return ByteSource(self, as_remote(name), negotiate)

    def put_stream(self, name: Target, fh, size: int,
                   content_type: str = "application/octet-stream") -> str:
        """Store ``size`` bytes read from ``fh`` as the node's content (created if missing);
        returns their MD5, checked against what the server stored."""
        remote = as_remote(name)
        return self.bulk.put(self.files_url(remote), fh, size, content_type, what=str(remote))

    def put_chunks(self, name: Target, chunks, content_type: str = "application/octet-stream",
                   tls_suffices: bool = False, negotiate: bool = False) -> str | None:
        """Store the bytes of an iterable produced while it is sent (chunked encoding: the
        length need not be known); returns their MD5, checked against the server's (with
        ``tls_suffices``, over HTTPS: the server's, unchecked; see ``Bulk.put_chunks``).
        With ``negotiate`` they go to the pre-authorized URL transfer negotiation hands out
        (the data port, as vcp's big uploads), else, or when it is refused, to /files."""
        remote = as_remote(name)
        pool, target = self.bulk.at(endpoint(self, remote, push=True, negotiate=negotiate))
        return pool.put_chunks(target, chunks, content_type, what=str(remote),
                               tls_suffices=tls_suffices)

    def open(self, name: str, mode: str = "rb", **kwargs):
        """A file object (fsspec's buffered file: Range reads, upload on close)."""
        from .fs import ArcFileSystem, VOSFileSystem
        remote = as_remote(name)
        fs_class = ArcFileSystem if remote.service == "arc" else VOSFileSystem
        return fs_class(client=self, skip_instance_cache=True).open(remote.path, mode, **kwargs)
