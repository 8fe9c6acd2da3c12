"""Fixtures: real servers (SQLite and PostgreSQL deployments) and a per-backend view of them.

`svc` is parametrized over vault-on-SQLite, vault-on-PostgreSQL and arc, so every contract
test runs against each backend through real HTTP.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from .arcfs_mounts import live_mount_logs
from .harness import PostgresCluster, Server, make_server
# VOS_NS and XSI_NS are imported from here by many tests.
from .nodes_xml import VOS_NS, XSI_NS, fetch_properties, node_xml



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows what the arcfs mounts still live (held by fixtures) logged: an
    upload that failed in the background is reported by a later close, and its cause is
    only in the log, which goes with the mount's cache directory."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for mountpoint, text in live_mount_logs().items():
            report.sections.append((f"arcfs mount log ({mountpoint})", text))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory):
    server = make_server(str(tmp_path_factory.mktemp("srv")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory, postgres):
    server = make_server(str(tmp_path_factory.mktemp("srvpg")), postgres.create_database())
    yield server
    server.stop()


@dataclass
class ServiceUnderTest:
    """One VOSpace service of a running server, with helpers to address its nodes."""

    server: Server
    name: str           # "vault" or "arc"
    backend: str        # pytest id

    def home(self, user: str) -> str:
        return user if self.name == "vault" else f"home/{user}"

    def unique(self, user: str = "alice") -> str:
        """A fresh path in ``user``'s home for one test (servers are shared per session)."""
        return f"{self.home(user)}/t-{uuid.uuid4().hex[:10]}"

    def nodes_url(self, path: str) -> str:
        return f"/{self.name}/nodes/{path}"

    def uri(self, path: str) -> str:
        return f"vos://localhost~{self.name}/{path}"

    def client(self, user: str | None = "alice") -> httpx.Client:
        return self.server.client(user)

    def node_xml(self, path: str, node_type: str = "ContainerNode",
                 properties: dict[str, str | None] | None = None, target: str | None = None,
                 prefix: str = "vos") -> str:
        return node_xml(self.uri(path), node_type, properties, target, prefix)

    def properties(self, path: str, user: str = "alice") -> dict[str, str]:
        with self.client(user) as c:
            return fetch_properties(c, self.nodes_url(path))

    def create(self, path: str, node_type: str = "ContainerNode", user: str = "alice",
               **kwargs) -> httpx.Response:
        with self.client(user) as c:
            return c.put(self.nodes_url(path), content=self.node_xml(path, node_type, **kwargs),
                         headers={"Content-Type": "text/xml"})


BACKENDS = ["vault-sqlite", "vault-postgres", "arc"]


@pytest.fixture(params=BACKENDS)
def svc(request) -> ServiceUnderTest:
    if request.param == "vault-postgres":
        return ServiceUnderTest(request.getfixturevalue("postgres_server"), "vault", request.param)
    server = request.getfixturevalue("sqlite_server")
    return ServiceUnderTest(server, request.param.split("-")[0], request.param)
