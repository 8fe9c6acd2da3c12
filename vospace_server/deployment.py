"""Wires settings to stores: the auth store and one NodeTree per VOSpace service."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .auth.authenticate import Authenticator
from .auth.csrf import CsrfTokens
from .auth.groups import GroupStore
from .auth.posix import PosixMapper
from .auth.preauth import PreauthSigner, load_secret
from .auth.store import AuthStore
from .config import Settings
from .metrics import Metrics
from .protocol import properties as props
from .protocol.faults import DuplicateNode
from .protocol.nodes import Node, NodeType
from .storage.arc.tree import ArcTree
from .storage.jobs import JobStore
from .storage.tree import NodeTree
from .storage.vault.blobs import PRIMARY, copy_stores, make_blob_store
from .storage.vault.copies import ReplicatedBlobStore
from .storage.vault.copy_ledger import CopyLedger
from .storage.vault.copy_worker import CopyWorker
from .storage.vault.tree import VaultTree
from .storage.vault.versions import Retention
from .yielding import TransfersInFlight, WorkerBoard

if TYPE_CHECKING:
    from .auth.oidc import OidcValidator


@dataclass
class Service:
    """One VOSpace service (``vault`` or ``arc``) mounted at ``/<name>``."""

    name: str
    tree: NodeTree
    authority: str

    @property
    def base_uri(self) -> str:
        return f"vos://{self.authority}~{self.name}"


def _oidc(settings: Settings) -> OidcValidator | None:
    """The OIDC token validator when an issuer is configured (see README, "Authentication")."""
    if not settings.oidc_issuer:
        return None
    from .auth.oidc import OidcValidator  # only when configured (httpx, joserfc)

    return OidcValidator(settings.oidc_issuer, settings.oidc_audience, settings.oidc_user_claim,
                         jwks_file=settings.oidc_jwks_file, jwks_url=settings.oidc_jwks_url)


class Deployment:
    """Everything the web app needs, built once per process from Settings."""

    def __init__(self, settings: Settings, board: WorkerBoard | None = None) -> None:
        """``board``: the transfers of every worker (with ``--workers``), which the blob
        copier gives way to besides this process's."""
        self.settings = settings
        for d in (settings.data_dir, settings.blob_dir, settings.arc_root):
            os.makedirs(d, exist_ok=True)
        self.metrics = Metrics()
        vault = VaultTree(settings.database_url, root_owner=settings.admin_user,
                          blobs=make_blob_store(settings),
                          retention=Retention(settings.version_keep, settings.version_max_age_days),
                          migrate=settings.migrate_on_start)
        self.vault = vault  # the VaultTree itself, for its engine and blob store
        self.transfers = TransfersInFlight(board)  # counted by the access middleware
        self.copier = self._replicate(vault)
        self.auth = AuthStore(vault.engine)
        self.jobs = JobStore(vault.engine)  # UWS jobs and sync transfer records
        self.auth.ensure_user(settings.admin_user, is_admin=True)
        self.groups = GroupStore(vault.engine, settings.authority)
        self.authenticator = Authenticator(self.auth, self.groups, _oidc(settings))
        # Stable uids/gids; arc keeps permissions as owners, modes and ACLs with them.
        self.posix = PosixMapper(vault.engine, self.auth, self.groups, settings.posix_uid_start,
                                 settings.posix_gid_start)
        arc = ArcTree(settings.arc_root, root_owner=settings.admin_user,
                      base_uri=f"vos://{settings.authority}~arc",
                      snapshot_dir=settings.snapshot_dir, ids=self.posix)
        # The deployment's one secret (every replica's): each use derives its own key from it.
        self.secret = load_secret(settings.preauth_secret, settings.data_dir)
        self.preauth = PreauthSigner(self.secret, settings.preauth_lifetime)
        self.csrf = CsrfTokens(self.secret)
        self.services = {
            "vault": Service("vault", vault, settings.authority),
            "arc": Service("arc", arc, settings.authority),
        }
        self._publish_top_levels()
        self._add_gauges()

    def _replicate(self, vault: VaultTree) -> CopyWorker | None:
        """With ``blob_copies``, vault's store becomes the primary of a ReplicatedBlobStore;
        returns the background copier the server runs (not started here)."""
        copies = copy_stores(self.settings)
        if not copies:
            return None
        vault.blobs = ReplicatedBlobStore({PRIMARY: vault.blobs, **copies},
                                          CopyLedger(vault.engine), self.metrics)
        return CopyWorker(vault.blobs, self.transfers, self.settings.copy_max_wait)

    def _add_gauges(self) -> None:
        """The deployment-wide gauges read at scrape time (see metrics.py)."""
        pool = self.vault.engine.pool
        self.metrics.add_gauges(
            "vospace_uws_jobs", "UWS jobs (and sync transfer records) by kind and phase",
            ["kind", "phase"], lambda: self.jobs.count_by_phase().items())
        self.metrics.add_gauges(
            "vospace_db_pool_connections", "Metadata database connections of this process",
            ["state"], lambda: [(("in_use",), pool.checkedout()), (("idle",), pool.checkedin()),
                                (("size",), pool.size())])
        if self.copier is not None:
            self.metrics.add_gauges(
                "vospace_copy_backlog", "Blob copies (and deletes) queued for the copier, and "
                "those of them that failed at least once", ["state"], self._copy_backlog)

    def _copy_backlog(self) -> list[tuple[tuple[str, ...], float]]:
        assert self.copier is not None
        backlog = self.copier.ledger.backlog()
        return [(("queued",), backlog.tasks), (("failing",), backlog.failing)]

    def _publish_top_levels(self) -> None:
        """The fixed folders (the service roots, arc's home/ and projects/: each tree's
        protected paths) are listable by everyone."""
        public = {props.ISPUBLIC: "true"}
        for service in self.services.values():
            for path in sorted(service.tree.protected):
                service.tree.update_properties(path, public)

    def provision_user(self, name: str) -> None:
        """Give ``name`` a vault home ``/<name>`` and an arc home ``/home/<name>``."""
        self.auth.ensure_user(name)
        for service, path in (("vault", name), ("arc", f"home/{name}")):
            try:
                self.services[service].tree.create(Node(path, NodeType.CONTAINER), owner=name)
            except DuplicateNode:
                pass

    def readiness(self) -> dict[str, str]:
        """What cannot serve now, part -> reason; empty when the metadata database, the vault
        blob stores and the arc tree all answer (``/readyz``)."""
        problems: dict[str, str] = {}
        checks = {"database": self._ping_database,
                  "vault blobs": self.vault.blobs.check,
                  "arc tree": self._check_arc}
        for part, check in checks.items():
            try:
                check()
            except Exception as exc:  # any failure means "not ready"; the reason is shown
                problems[part] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return problems

    def _ping_database(self) -> None:
        with self.vault.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def _check_arc(self) -> None:
        if not os.access(self.settings.arc_root, os.R_OK | os.W_OK | os.X_OK):
            raise OSError(f"{self.settings.arc_root} is not accessible")

    def close(self) -> None:
        for service in self.services.values():
            service.tree.close()
