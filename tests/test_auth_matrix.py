"""Authorization matrix: every endpoint and method x every kind of caller, on vault and arc.

One server (the session's SQLite deployment), one set of users and groups, one shared
folder per service owned by ``mxowner``; each cell is one real HTTP request.
Roles: anonymous, owner, member of the read group, member of the write group (through a
nested group), another user, a removed member, an expired token, a tampered token, admin.
"""
from __future__ import annotations

import uuid

import httpx
import pytest
from lxml import etree

from .conftest import VOS_NS
from .nodes_xml import node_xml

ROLES = ["anonymous", "owner", "reader", "writer", "other", "removed", "expired", "tampered",
         "admin"]
USERS = {"owner": "mxowner", "reader": "mxreader", "writer": "mxwriter", "other": "bob",
         "removed": "mxremoved"}
UNAUTHENTICATED = {"anonymous", "expired", "tampered"}
READERS = {"owner", "reader", "writer", "admin"}
WRITERS = {"owner", "writer", "admin"}
PERMISSION_CHANGERS = {"owner", "admin"}
QUOTA_SETTERS = {"admin"}
SIGNED_IN = set(ROLES) - UNAUTHENTICATED
JOB_OWNERS = {"owner", "admin"}


class World:
    """Users, groups, tokens and the shared folders, made once for the module."""

    def __init__(self, server) -> None:
        self.server = server
        for user in USERS.values():
            if user not in server.tokens:
                server.add_user(user)
        self.tokens = {role: server.tokens[user] for role, user in USERS.items()}
        self.tokens["admin"] = server.tokens["admin"]
        expired = server.vospace("token", "create", USERS["owner"], "--expires", "2020-01-01T00:00:00Z")
        assert expired.returncode == 0, expired.stderr
        self.tokens["expired"] = expired.stdout.strip()
        good = self.tokens["owner"]
        self.tokens["tampered"] = good[:-1] + ("A" if good[-1] != "A" else "B")
        tag = uuid.uuid4().hex[:6]
        self.read_group, self.write_group = f"mx-read-{tag}", f"mx-write-{tag}"
        self.inner_group = f"mx-inner-{tag}"
        with self.client("owner") as c:
            for group in (self.read_group, self.write_group, self.inner_group):
                assert c.put(f"/ac/groups/{group}").status_code == 201
            for group, user in ((self.read_group, "reader"), (self.read_group, "removed"),
                                (self.inner_group, "writer")):
                assert c.put(f"/ac/groups/{group}/userMembers/{USERS[user]}").status_code == 200
            # writer is in the write group only through the nested inner group
            r = c.put(f"/ac/groups/{self.write_group}/groupMembers/{self.inner_group}")
            assert r.status_code == 200
            r = c.delete(f"/ac/groups/{self.read_group}/userMembers/{USERS['removed']}")
            assert r.status_code == 200
        self.shared: dict[str, str] = {}
        for service in ("vault", "arc"):
            home = USERS["owner"] if service == "vault" else f"home/{USERS['owner']}"
            # the home is readable by both groups (bare names here, URIs below: both accepted)
            self.post_props("owner", service, home, {
                "ivo://ivoa.net/vospace/core#groupread": f"{self.read_group} {self.write_group}"}
            ).raise_for_status()
            shared = f"{home}/shared-{tag}"
            self.shared[service] = shared
            groups = {"ivo://ivoa.net/vospace/core#groupread":
                      f"ivo://localhost/gms?{self.read_group}",
                      "ivo://ivoa.net/vospace/core#groupwrite":
                      f"ivo://localhost/gms?{self.write_group}"}
            self.put_node("owner", service, shared, properties=groups).raise_for_status()
            self.put_node("owner", service, f"{shared}/f", "DataNode",
                          properties=groups).raise_for_status()
            with self.client("owner") as c:
                c.put(f"/{service}/files/{shared}/f", content=b"hello").raise_for_status()
        with self.client("owner") as c:  # a job of the owner's, for job visibility
            r = c.post("/vault/async-delete",
                       data={"target": f"vos://localhost~vault/{self.shared['vault']}/none"})
            assert r.status_code == 303, r.text
            self.owner_job = r.headers["location"]

    def client(self, role: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}
        return httpx.Client(base_url=self.server.url, headers=headers, verify=False, timeout=30)

    def put_node(self, role: str, service: str, path: str, node_type: str = "ContainerNode",
                 properties: dict[str, str] | None = None) -> httpx.Response:
        with self.client(role) as c:
            return c.put(f"/{service}/nodes/{path}", headers={"Content-Type": "text/xml"},
                         content=node_xml(f"vos://localhost~{service}/{path}", node_type,
                                          properties))

    def post_props(self, role: str, service: str, path: str,
                   properties: dict[str, str]) -> httpx.Response:
        with self.client(role) as c:
            r = c.post(f"/{service}/nodes/{path}",
                       content=node_xml(f"vos://localhost~{service}/{path}", "DataNode",
                                        properties),
                       headers={"Content-Type": "text/xml"})
        return r


@pytest.fixture(scope="module")
def world(sqlite_server) -> World:
    return World(sqlite_server)


def operations(world: World, service: str, role: str) -> dict[str, tuple[set[str], httpx.Response]]:
    """Each operation's allowed roles and the response ``role`` got."""
    shared = world.shared[service]
    data = f"{shared}/f"
    doomed = f"{shared}/del-{role}"
    world.put_node("owner", service, doomed).raise_for_status()
    results: dict[str, tuple[set[str], httpx.Response]] = {}
    with world.client(role) as c:
        results["GET container"] = (READERS, c.get(f"/{service}/nodes/{shared}"))
        results["GET data node"] = (READERS, c.get(f"/{service}/nodes/{data}"))
        results["PUT create node"] = (WRITERS, world.put_node(role, service,
                                                              f"{shared}/new-{role}"))
        results["POST set title"] = (WRITERS, world.post_props(
            role, service, data, {"ivo://ivoa.net/vospace/core#title": role}))
        results["POST change groupread"] = (PERMISSION_CHANGERS, world.post_props(
            role, service, data,
            {"ivo://ivoa.net/vospace/core#groupread": f"ivo://localhost/gms?{world.read_group}"
             f" ivo://localhost/gms?unused-{role}"}))  # a real change for every role
        results["POST set quota"] = (QUOTA_SETTERS, world.post_props(
            role, service, shared, {"ivo://ivoa.net/vospace/core#quota": "1000000"}))
        results["DELETE node"] = (WRITERS, c.delete(f"/{service}/nodes/{doomed}"))
        results["GET files"] = (READERS, c.get(f"/{service}/files/{data}"))
        results["HEAD files"] = (READERS, c.head(f"/{service}/files/{data}"))
        results["PUT files"] = (WRITERS, c.put(f"/{service}/files/{data}",
                                               content=b"hello"))
        results["PUT files new"] = (WRITERS, c.put(f"/{service}/files/{shared}/up-{role}",
                                                   content=b"x"))
        for direction, allowed in (("pullFromVoSpace", READERS), ("pushToVoSpace", WRITERS)):
            results[f"POST synctrans {direction}"] = (allowed, c.post(
                f"/{service}/synctrans", content=data_transfer(service, data, direction),
                headers={"Content-Type": "text/xml"}))
        results["async copy (transfers)"] = (WRITERS, run_job(c, f"/{service}/transfers", content=(
            f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
            f"<vos:target>vos://localhost~{service}/{data}</vos:target>"
            f"<vos:direction>vos://localhost~{service}/{shared}/copy-{role}</vos:direction>"
            "<vos:keepBytes>true</vos:keepBytes></vos:transfer>")))
        results["async-setprops"] = (WRITERS, run_job(
            c, f"/{service}/async-setprops",
            content=node_xml(f"vos://localhost~{service}/{data}", "DataNode",
                             {"ivo://ivoa.net/vospace/core#title": f"async {role}"})))
        results["GET owner's job"] = (JOB_OWNERS, c.get(world.owner_job))
        results["GET posix-mapper uid"] = (SIGNED_IN, c.get("/posix-mapper/uid"))
        if service == "vault":
            results["GET versions"] = (READERS, c.get(f"/vault/versions/{data}"))
        world.put_node("owner", service, f"{doomed}2").raise_for_status()
        results["async-delete"] = (WRITERS, run_job(
            c, f"/{service}/async-delete", data={"target": f"vos://localhost~{service}/{doomed}2"}))
    return results


def data_transfer(service: str, path: str, direction: str) -> str:
    return (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
            f"<vos:target>vos://localhost~{service}/{path}</vos:target>"
            f"<vos:direction>{direction}</vos:direction>"
            '<vos:protocol uri="ivo://ivoa.net/vospace/core#httpsget"/>'
            '<vos:protocol uri="ivo://ivoa.net/vospace/core#httpsput"/></vos:transfer>')


class JobOutcome:
    """An async job as one matrix cell: allowed when it completed without errors."""

    def __init__(self, created: httpx.Response, doc: bytes = b"") -> None:
        self.created, self.doc = created, doc
        self.request = created.request

    @property
    def status_code(self) -> int:
        if self.created.status_code != 303:
            return self.created.status_code
        ok = b"<uws:phase>COMPLETED</uws:phase>" in self.doc and b"errorcount" not in self.doc
        return 200 if ok else 403

    @property
    def text(self) -> str:
        return self.created.text if self.created.status_code != 303 else \
            "PermissionDenied (job): " + self.doc.decode()[:60]

    @property
    def headers(self) -> httpx.Headers:
        return self.created.headers


def run_job(c: httpx.Client, url: str, **kwargs) -> JobOutcome:
    created = c.post(url, params={"PHASE": "RUN"}, **kwargs)
    if created.status_code != 303:
        return JobOutcome(created)
    return JobOutcome(created, c.get(created.headers["location"], params={"WAIT": 10}).content)


@pytest.mark.parametrize("service", ["vault", "arc"])
@pytest.mark.parametrize("role", ROLES)
def test_matrix(world: World, service: str, role: str) -> None:
    wrong = []
    for name, (allowed, response) in operations(world, service, role).items():
        status = response.status_code
        if role in allowed:
            ok = 200 <= status < 400
        elif role in UNAUTHENTICATED:
            ok = status == 401 and "WWW-Authenticate" in response.headers and (
                response.request.method == "HEAD" or
                response.text.startswith("NotAuthenticated"))
        else:
            ok = status == 403 and (response.request.method == "HEAD" or
                                    response.text.startswith("PermissionDenied"))
        if ok and role in USERS | {"admin": "admin"} and role not in UNAUTHENTICATED:
            ok = response.headers.get("X-VO-Authenticated") == (USERS | {"admin": "admin"})[role]
        if not ok:
            wrong.append(f"{name}: {status} {response.text[:80]!r}")
    assert not wrong, f"{role} on {service}: " + "; ".join(wrong)


@pytest.mark.parametrize("service", ["vault", "arc"])
def test_membership_changes_take_effect_at_once(world: World, service: str) -> None:
    url = f"/{service}/nodes/{world.shared[service]}"
    member_url = f"/ac/groups/{world.read_group}/userMembers/{USERS['other']}"
    with world.client("other") as other, world.client("owner") as owner:
        assert other.get(url).status_code == 403
        assert owner.put(member_url).status_code == 200
        try:
            assert other.get(url).status_code == 200
        finally:
            assert owner.delete(member_url).status_code == 200
        assert other.get(url).status_code == 403


def test_disabled_user_refused_at_once(world: World) -> None:
    url = f"/vault/nodes/{world.shared['vault']}"
    with world.client("reader") as reader:
        assert reader.get(url).status_code == 200
        assert world.server.vospace("user", "disable", USERS["reader"]).returncode == 0
        try:
            assert reader.get(url).status_code == 401
        finally:
            world.server.vospace("user", "disable", "--enable", USERS["reader"])
        assert reader.get(url).status_code == 200


def test_readable_writable_properties(world: World) -> None:
    """The computed #readable/#writable tell each caller their own effective access."""
    shared = world.shared["arc"]
    expected = {"reader": ("true", "false"), "writer": ("true", "true"),
                "owner": ("true", "true")}
    ns = {"vos": VOS_NS}
    for role, (readable, writable) in expected.items():
        with world.client(role) as c:
            root = etree.fromstring(c.get(f"/arc/nodes/{shared}").content)
        values = {p.get("uri").rpartition("#")[2]: p.text
                  for p in root.findall("vos:properties/vos:property", ns)}
        assert (values["readable"], values["writable"]) == (readable, writable), role
        child = root.find("vos:nodes/vos:node[@uri='vos://localhost~arc/" + shared + "/f']", ns)
        child_values = {p.get("uri").rpartition("#")[2]: p.text
                        for p in child.findall("vos:properties/vos:property", ns)}
        assert child_values["writable"] == writable, role


@pytest.mark.parametrize("service", ["vault", "arc"])
def test_inherit_permissions(world: World, service: str) -> None:
    """Under a folder with inheritPermissions, new nodes (made by node PUT or by upload) get
    its groups, so the write group can change what the owner creates there."""
    folder = f"{world.shared[service]}/inherit-{uuid.uuid4().hex[:6]}"
    world.put_node("owner", service, folder, properties={
        "ivo://ivoa.net/vospace/core#groupread": world.read_group,
        "ivo://ivoa.net/vospace/core#groupwrite": world.write_group,
        "ivo://cadc.nrc.ca/vospace/core#inheritPermissions": "true"}).raise_for_status()
    world.put_node("owner", service, f"{folder}/sub").raise_for_status()
    with world.client("owner") as c:
        c.put(f"/{service}/files/{folder}/up.txt", content=b"shared").raise_for_status()
    for child in ("sub", "up.txt"):
        with world.client("reader") as reader:
            assert reader.get(f"/{service}/nodes/{folder}/{child}").status_code == 200
        r = world.post_props("writer", service, f"{folder}/{child}",
                             {"ivo://ivoa.net/vospace/core#title": "edited by a member"})
        assert r.status_code == 200, (child, r.text)
        assert world.post_props("reader", service, f"{folder}/{child}", {
            "ivo://ivoa.net/vospace/core#title": "x"}).status_code == 403
