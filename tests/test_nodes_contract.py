"""The node service contract, run against vault (SQLite, PostgreSQL) and arc over real HTTP."""
from __future__ import annotations

from lxml import etree

from .conftest import VOS_NS
from .nodes_xml import properties_of as props_of

CORE = "ivo://ivoa.net/vospace/core#"


def child_names(xml: bytes) -> list[str]:
    root = etree.fromstring(xml)
    nodes = root.find(f"{{{VOS_NS}}}nodes")
    return [n.get("uri").rsplit("/", 1)[1] for n in nodes] if nodes is not None else []


def test_create_container_returns_201_with_node(svc):
    path = svc.unique()
    r = svc.create(path)
    assert r.status_code == 201, r.text
    root = etree.fromstring(r.content)
    assert root.get("uri") == svc.uri(path)
    assert root.get(f"{{http://www.w3.org/2001/XMLSchema-instance}}type") == "vos:ContainerNode"
    assert props_of(r.content)[CORE + "creator"] == "alice"


def test_create_duplicate_is_409(svc):
    path = svc.unique()
    assert svc.create(path).status_code == 201
    r = svc.create(path)
    assert r.status_code == 409
    assert r.text.startswith("DuplicateNode")


def test_missing_parent_is_container_not_found(svc):
    path = svc.unique() + "/missing/child"
    r = svc.create(path)
    assert r.status_code == 404
    assert r.text.startswith("ContainerNotFound")


def test_listing_children_carry_full_properties(svc):
    base = svc.unique()
    svc.create(base)
    for name in ("b", "a", "c"):
        assert svc.create(f"{base}/{name}", "DataNode").status_code == 201
    with svc.client() as c:
        r = c.get(svc.nodes_url(base))
    assert r.status_code == 200
    assert child_names(r.content) == ["a", "b", "c"]
    child = props_of(r.content, svc.uri(f"{base}/a"))
    for prop in ("date", "length", "creator", "ispublic"):
        assert CORE + prop in child


def test_paging_with_limit_and_uri(svc):
    base = svc.unique()
    svc.create(base)
    names = [f"n{i:02d}" for i in range(12)]
    for name in names:
        svc.create(f"{base}/{name}", "DataNode")
    with svc.client() as c:
        first = c.get(svc.nodes_url(base), params={"limit": 5})
        assert child_names(first.content) == names[:5]
        nxt = c.get(svc.nodes_url(base), params={"limit": 5, "uri": svc.uri(f"{base}/n04")})
        assert child_names(nxt.content) == names[4:9]
        beyond = c.get(svc.nodes_url(base), params={"limit": 5, "uri": svc.uri(f"{base}/zz")})
        assert beyond.status_code == 200 and child_names(beyond.content) == []
        none = c.get(svc.nodes_url(base), params={"limit": 0})
        assert child_names(none.content) == []


def test_set_and_delete_properties(svc):
    path = svc.unique()
    svc.create(path, properties={CORE + "title": "first"})
    with svc.client() as c:
        body = svc.node_xml(path, properties={CORE + "title": "second",
                                              "ivo://example.org/custom#x": "42"})
        r = c.post(svc.nodes_url(path), content=body)
        assert r.status_code == 200, r.text
        got = props_of(r.content)
        assert got[CORE + "title"] == "second" and got["ivo://example.org/custom#x"] == "42"
        r = c.post(svc.nodes_url(path), content=svc.node_xml(path, properties={CORE + "title": None}))
        assert CORE + "title" not in props_of(r.content)
        assert props_of(c.get(svc.nodes_url(path)).content)["ivo://example.org/custom#x"] == "42"


def test_read_only_properties_are_ignored_on_post(svc):
    path = svc.unique()
    svc.create(path, "DataNode")
    with svc.client() as c:
        before = props_of(c.get(svc.nodes_url(path)).content)
        body = svc.node_xml(path, "DataNode", properties={CORE + "length": "999",
                                                          CORE + "creator": "mallory",
                                                          CORE + "date": "2000-01-01T00:00:00.000"})
        r = c.post(svc.nodes_url(path), content=body)
        assert r.status_code == 200
        after = props_of(r.content)
    assert after[CORE + "length"] == before[CORE + "length"] == "0"
    assert after[CORE + "creator"] == "alice"
    assert after[CORE + "date"] == before[CORE + "date"]


def test_delete_container_removes_children(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/child", "DataNode")
    with svc.client() as c:
        assert c.delete(svc.nodes_url(base)).status_code in (200, 204)
        assert c.get(svc.nodes_url(base)).status_code == 404
        assert c.get(svc.nodes_url(f"{base}/child")).status_code == 404


def test_link_node_and_link_found(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/dir")
    r = svc.create(f"{base}/ln", "LinkNode", target=svc.uri(f"{base}/dir"))
    assert r.status_code == 201, r.text
    with svc.client() as c:
        got = etree.fromstring(c.get(svc.nodes_url(f"{base}/ln")).content)
        assert got.findtext(f"{{{VOS_NS}}}target") == svc.uri(f"{base}/dir")
        through = c.get(svc.nodes_url(f"{base}/ln/x"))  # followed (services/links.py)
        assert through.status_code == 404 and through.text.startswith("NodeNotFound")
        made = c.put(svc.nodes_url(f"{base}/ln/x"), content=svc.node_xml(f"{base}/ln/x"))
        assert made.status_code == 400 and made.text.startswith("LinkFound")  # writes: never


def test_anonymous_cannot_read_private_or_write(svc):
    path = svc.unique()
    svc.create(path)
    with svc.client(None) as anon:
        assert anon.get(svc.nodes_url(path)).status_code == 401
        r = anon.put(svc.nodes_url(path + "/x"), content=svc.node_xml(path + "/x"))
        assert r.status_code == 401
    with svc.client() as c:
        c.post(svc.nodes_url(path), content=svc.node_xml(path, properties={CORE + "ispublic": "true"}))
    with svc.client(None) as anon:
        # a public node below a private home is still hidden: reading needs every ancestor
        assert anon.get(svc.nodes_url(path)).status_code == 401


def test_other_user_cannot_write_in_my_home(svc):
    path = svc.unique()
    r = svc.create(path, user="bob")
    assert r.status_code == 403
    assert r.text.startswith("PermissionDenied")
