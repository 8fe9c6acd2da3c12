"""Hostile and malformed input: the right IVOA fault and status, never a 500, nothing changed.

Every test runs on each backend of ``svc``. After each one the server log must hold no new
traceback, and refused writes must leave no node behind (checked over HTTP and, for arc,
on disk). Raw paths go through http.client because httpx would normalize ``..`` away.
"""
from __future__ import annotations

import http.client
import os
import ssl

import httpx
import pytest
from lxml import etree

from .conftest import VOS_NS, XSI_NS, ServiceUnderTest

CORE = "ivo://ivoa.net/vospace/core#"


@pytest.fixture(autouse=True)
def no_tracebacks(svc):
    """Fail the test if the server logged an unexpected error while it ran."""
    log = svc.server.log_path
    start = os.path.getsize(log)
    yield
    with open(log, "rb") as fh:
        fh.seek(start)
        new = fh.read().decode(errors="replace")
    assert "Traceback" not in new and "internal error" not in new, new[-3000:]


def assert_fault(r: httpx.Response, status: int, fault: str) -> None:
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.text.startswith(fault), r.text
    assert "Traceback" not in r.text


def put_xml(svc: ServiceUnderTest, path: str, body: str | bytes, **headers) -> httpx.Response:
    with svc.client() as c:
        return c.put(svc.nodes_url(path), content=body,
                     headers={"Content-Type": "text/xml", **headers})


def assert_absent(svc: ServiceUnderTest, path: str) -> None:
    with svc.client() as c:
        assert c.get(svc.nodes_url(path)).status_code == 404
    if svc.name == "arc":
        assert not os.path.lexists(os.path.join(svc.server.data_dir, "arc", path))


def raw_request(svc: ServiceUnderTest, method: str, raw_path: str, body: bytes = b"",
                user: str | None = "alice") -> tuple[int, str]:
    """Send ``raw_path`` byte for byte (no client-side normalization or encoding)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", svc.server.port, context=ctx, timeout=30)
    headers = {"Content-Type": "text/xml"}
    if user:
        headers["Authorization"] = f"Bearer {svc.server.tokens[user]}"
    try:
        conn.request(method, raw_path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


# -- malformed and hostile XML -------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<vos:node xmlns:vos="{vos}" xmlns:xsi="{xsi}" uri="{uri}" xsi:type="vos:ContainerNode">
<vos:properties><vos:property uri="{core}description">&lol3;</vos:property></vos:properties>
</vos:node>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE n [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<vos:node xmlns:vos="{vos}" xmlns:xsi="{xsi}" uri="{uri}" xsi:type="vos:ContainerNode">
<vos:properties><vos:property uri="{core}description">&xxe;</vos:property></vos:properties>
</vos:node>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE n [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;]>
<vos:node xmlns:vos="{vos}" xmlns:xsi="{xsi}" uri="{uri}" xsi:type="vos:ContainerNode"/>"""


def _fill(template: str, svc: ServiceUnderTest, path: str) -> str:
    return template.format(vos=VOS_NS, xsi=XSI_NS, uri=svc.uri(path), core=CORE)


@pytest.mark.parametrize("template", [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY],
                         ids=["billion-laughs", "external-entity", "parameter-entity"])
def test_entity_tricks_are_refused(svc, template):
    path = svc.unique()
    r = put_xml(svc, path, _fill(template, svc, path))
    assert_fault(r, 400, "InvalidArgument")
    assert "root:" not in r.text  # /etc/passwd never echoed
    assert_absent(svc, path)


@pytest.mark.parametrize("body", [
    b"", b"   ", b"<vos:node", b"not xml at all", b"<a><b></a>",
    b"\xff\xfe<\x00n\x00",  # bytes that are not the declared encoding
], ids=["empty", "blank", "truncated", "text", "mismatched", "bad-encoding"])
def test_malformed_xml_is_invalid_argument(svc, body):
    path = svc.unique()
    assert_fault(put_xml(svc, path, body), 400, "InvalidArgument")
    assert_absent(svc, path)


def test_deeply_nested_xml_is_refused(svc):
    path = svc.unique()
    doc = svc.node_xml(path).replace("<vos:properties>", "<x>" * 200 + "</x>" * 200 +
                                     "<vos:properties>")
    assert_fault(put_xml(svc, path, doc), 400, "InvalidArgument")
    assert_absent(svc, path)


def test_wrong_namespace_is_refused(svc):
    path = svc.unique()
    doc = svc.node_xml(path).replace(VOS_NS, "http://www.ivoa.net/xml/VOSpace/v1.1")
    assert_fault(put_xml(svc, path, doc), 400, "InvalidArgument")
    assert_absent(svc, path)


def test_wrong_root_element_is_refused(svc):
    path = svc.unique()
    doc = svc.node_xml(path).replace("vos:node", "vos:transfer")
    assert_fault(put_xml(svc, path, doc), 400, "InvalidArgument")
    assert_absent(svc, path)


def test_other_prefix_is_accepted(svc):
    """Not bad input: namespaces decide, not prefixes (the CADC client uses ns0:)."""
    path = svc.unique()
    assert put_xml(svc, path, svc.node_xml(path, prefix="ns0")).status_code == 201


@pytest.mark.parametrize("xsi_type", ["vos:FooNode", "vos:Node", "StructuredDataNode2", ""])
def test_unknown_xsi_type_is_type_not_supported(svc, xsi_type):
    path = svc.unique()
    doc = svc.node_xml(path).replace('xsi:type="vos:ContainerNode"', f'xsi:type="{xsi_type}"')
    assert_fault(put_xml(svc, path, doc), 400, "TypeNotSupported")
    assert_absent(svc, path)


def test_uri_attribute_must_match_the_url(svc):
    path, other = svc.unique(), svc.unique()
    assert_fault(put_xml(svc, path, svc.node_xml(other)), 400, "InvalidURI")
    assert_absent(svc, path)
    assert_absent(svc, other)


def test_uri_attribute_of_another_service_is_refused(svc):
    path = svc.unique()
    foreign = "arc" if svc.name == "vault" else "vault"
    doc = svc.node_xml(path).replace(f"~{svc.name}/", f"~{foreign}/")
    assert_fault(put_xml(svc, path, doc), 400, "InvalidURI")
    assert_absent(svc, path)


@pytest.mark.parametrize("uri", ["http://localhost/x", "vos://nowhere", "not a uri",
                                 "vos://evil.example~vault/x"])
def test_malformed_or_foreign_uri_attribute(svc, uri):
    path = svc.unique()
    doc = svc.node_xml(path).replace(f'uri="{svc.uri(path)}"', f'uri="{uri}"', 1)
    assert_fault(put_xml(svc, path, doc), 400, "InvalidURI")
    assert_absent(svc, path)


def test_property_value_too_long(svc):
    path = svc.unique()
    doc = svc.node_xml(path, properties={CORE + "description": "x" * (64 * 1024 + 1)})
    assert_fault(put_xml(svc, path, doc), 400, "InvalidArgument")
    assert_absent(svc, path)


def test_link_target_must_be_an_absolute_uri(svc):
    path = svc.unique()
    r = put_xml(svc, path, svc.node_xml(path, "LinkNode", target="../../etc/passwd"))
    assert_fault(r, 400, "InvalidArgument")
    assert_absent(svc, path)


def test_malformed_post_changes_nothing(svc):
    path = svc.unique()
    assert svc.create(path, properties={CORE + "description": "before"}).status_code == 201
    with svc.client() as c:
        r = c.post(svc.nodes_url(path), content=b"<vos:node", headers={"Content-Type": "text/xml"})
        assert_fault(r, 400, "InvalidArgument")
        bomb = _fill(BILLION_LAUGHS, svc, path)
        assert_fault(c.post(svc.nodes_url(path), content=bomb), 400, "InvalidArgument")
        xml = c.get(svc.nodes_url(path)).content
    assert b"before" in xml and b"lol" not in xml


# -- bodies over the size limit --------------------------------------------------------------

def test_body_over_limit_with_content_length(svc):
    path = svc.unique()
    padding = "x" * (1024 * 1024 + 10)
    doc = svc.node_xml(path, properties={CORE + "description": padding})
    assert_fault(put_xml(svc, path, doc), 413, "RequestEntityTooLarge")
    assert_absent(svc, path)


def test_body_over_limit_when_chunked(svc):
    path = svc.unique()

    def chunks():
        yield svc.node_xml(path).encode()[:40]
        for _ in range(20):
            yield b" " * 65536

    assert_fault(put_xml(svc, path, chunks()), 413, "RequestEntityTooLarge")
    assert_absent(svc, path)
    assert svc.create(path).status_code == 201  # the server is fine afterwards


# -- paths ---------------------------------------------------------------------------------

@pytest.mark.parametrize("segment", ["..", "%2e%2e", "%2E%2e", "%252e%252e", ".", "%2e",
                                     "%2e%2e%2f%2e%2e", "..%5c..", "%00", "a%01b", "a%0ab",
                                     "a%7fb", "%ff%fe"])
def test_invalid_path_segments(svc, segment):
    """Raw ``..``, its percent-encoded and doubly encoded forms, control characters."""
    home = svc.home("alice")
    for method in ("GET", "PUT", "DELETE"):
        raw = f"/{svc.name}/nodes/{home}/{segment}/victim"
        body = svc.node_xml(f"{home}/victim").encode() if method == "PUT" else b""
        status, text = raw_request(svc, method, raw, body)
        assert status == 400, (method, raw, status, text)
        assert text.startswith("InvalidURI"), text
    assert_absent(svc, f"{home}/victim")


def test_dot_dot_cannot_escape_to_another_home(svc):
    bob_thing = f"{svc.home('bob')}/escaped"
    raw = f"/{svc.name}/nodes/{svc.home('alice')}/%2e%2e/bob/escaped"
    status, _ = raw_request(svc, "PUT", raw, svc.node_xml(bob_thing).encode())
    assert status == 400
    assert_absent(svc, bob_thing)


@pytest.mark.parametrize("name", ["with space", "caf\u00e9 \u65e5\u672c", "emoji \U0001f52d",
                                  "semi;colon", "50% off", "x" * 255,
                                  "\u00e9" * 127])
def test_unusual_but_valid_names_round_trip(svc, name):
    parent = svc.unique()
    assert svc.create(parent).status_code == 201
    path = f"{parent}/{name}"
    r = svc.create(path)
    assert r.status_code == 201, r.text
    with svc.client() as c:
        listing = c.get(svc.nodes_url(parent))
    root = etree.fromstring(listing.content)
    uris = [n.get("uri") for n in root.iter(f"{{{VOS_NS}}}node")][1:]
    assert uris == [svc.uri(path)]
    if svc.name == "arc":
        assert os.path.isdir(os.path.join(svc.server.data_dir, "arc", parent, name))


@pytest.mark.parametrize("escaped", ["100%2541", "%252e%252e", "a%252fb"])
def test_names_holding_percent_escapes_are_refused(svc, escaped):
    """``100%2541`` decodes to the name ``100%41``, which a second decoding would turn into
    ``100A``: ambiguous names (and doubly-encoded ``..``) are refused outright."""
    parent = svc.unique()
    assert svc.create(parent).status_code == 201
    with svc.client() as c:
        r = c.put(svc.nodes_url(f"{parent}/{escaped}"),
                  content=svc.node_xml(f"{parent}/{escaped}"))
        assert_fault(r, 400, "InvalidURI")
        assert children(c.get(svc.nodes_url(parent)).content) == []


@pytest.mark.parametrize("name", ["x" * 256, "\u00e9" * 128, "\U0001f52d" * 64])
def test_names_longer_than_255_bytes(svc, name):
    parent = svc.unique()
    assert svc.create(parent).status_code == 201
    path = f"{parent}/{name}"
    assert_fault(svc.create(path), 400, "InvalidURI")
    with svc.client() as c:
        listing = c.get(svc.nodes_url(parent)).content
    assert len(list(etree.fromstring(listing).iter(f"{{{VOS_NS}}}node"))) == 1
    if svc.name == "arc":
        assert os.listdir(os.path.join(svc.server.data_dir, "arc", parent)) == []


def test_path_longer_than_limit(svc):
    path = "/".join([svc.home("alice")] + ["d" * 200] * 25)
    with svc.client() as c:
        assert_fault(c.get(svc.nodes_url(path)), 400, "InvalidURI")


# -- query parameters ------------------------------------------------------------------------

@pytest.fixture
def folder(svc) -> str:
    path = svc.unique()
    assert svc.create(path).status_code == 201
    for name in ("a", "b", "c"):
        assert svc.create(f"{path}/{name}", "DataNode").status_code == 201
    return path


def children(xml: bytes) -> list[str]:
    nodes = etree.fromstring(xml).find(f"{{{VOS_NS}}}nodes")
    return [n.get("uri").rsplit("/", 1)[1] for n in nodes] if nodes is not None else []


@pytest.mark.parametrize("detail", ["full", "MAX", "", "min,max", "x" * 500])
def test_unknown_detail_value(svc, folder, detail):
    with svc.client() as c:
        assert_fault(c.get(svc.nodes_url(folder), params={"detail": detail}), 400,
                     "InvalidArgument")


@pytest.mark.parametrize("limit", ["-1", "abc", "1.5", "1e3", " 2", "0x10", "\u0663"])
def test_bad_limit_values(svc, folder, limit):
    with svc.client() as c:
        assert_fault(c.get(svc.nodes_url(folder), params={"limit": limit}), 400,
                     "InvalidArgument")


@pytest.mark.parametrize("limit", ["99999999999999999999999999", "9223372036854775808"])
def test_huge_limit_lists_everything(svc, folder, limit):
    with svc.client() as c:
        r = c.get(svc.nodes_url(folder), params={"limit": limit})
    assert r.status_code == 200, r.text
    assert children(r.content) == ["a", "b", "c"]


def test_paging_beyond_the_end(svc, folder):
    with svc.client() as c:
        after_last = c.get(svc.nodes_url(folder),
                           params={"limit": "2", "uri": svc.uri(f"{folder}/zzz")})
        last = c.get(svc.nodes_url(folder), params={"limit": "2", "uri": svc.uri(f"{folder}/c")})
        between = c.get(svc.nodes_url(folder), params={"uri": svc.uri(f"{folder}/bb")})
    assert after_last.status_code == 200 and children(after_last.content) == []
    assert children(last.content) == ["c"]
    assert children(between.content) == ["c"]


@pytest.mark.parametrize("start", ["not a uri", "vos://localhost~{svc}/elsewhere/x",
                                   "vos://localhost~{svc}/{folder}", "vos://localhost~{svc}/{folder}/a/b",
                                   "vos://localhost~{svc}/{folder}/%2e%2e"])
def test_paging_uri_that_is_not_a_child(svc, folder, start):
    with svc.client() as c:
        r = c.get(svc.nodes_url(folder), params={"uri": start.format(svc=svc.name, folder=folder)})
    assert_fault(r, 400, "InvalidURI")


@pytest.mark.parametrize("params", [{"sort": "ivo://ivoa.net/vospace/core#creator"},
                                    {"sort": "name"}, {"order": "sideways"},
                                    {"sort": CORE + "date", "order": "up"}])
def test_unsupported_sort_parameters(svc, folder, params):
    with svc.client() as c:
        assert_fault(c.get(svc.nodes_url(folder), params=params), 400, "InvalidArgument")


def test_supported_sort_parameters(svc, folder):
    with svc.client() as c:
        desc = c.get(svc.nodes_url(folder), params={"order": "desc"})
        by_len = c.get(svc.nodes_url(folder), params={"sort": CORE + "length", "limit": "2"})
        paged = c.get(svc.nodes_url(folder), params={"order": "desc", "limit": "2",
                                                     "uri": svc.uri(f"{folder}/b")})
    assert children(desc.content) == ["c", "b", "a"]
    assert children(by_len.content) == ["a", "b"]  # equal lengths: by name
    assert children(paged.content) == ["b", "a"]


# -- the root and protected containers ---------------------------------------------------------

def test_put_on_the_root_is_duplicate(svc):
    with svc.client() as c:
        r = c.put(svc.nodes_url(""), content=svc.node_xml(""))
    assert_fault(r, 409, "DuplicateNode")


def test_delete_of_the_root_is_refused(svc):
    with svc.client("admin") as c:
        assert_fault(c.delete(svc.nodes_url("")), 403, "PermissionDenied")
        assert c.get(svc.nodes_url(""), params={"limit": "0"}).status_code == 200
