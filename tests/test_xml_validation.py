"""Every XML document the server emits validates against ../shared/schemas.

To cover a new document, append a :class:`Doc` to ``DOCUMENTS``: a name, and a function
that takes the service under test plus the :class:`Sample` nodes made for it and returns
the HTTP response carrying the document. It then runs on every backend of ``svc``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import httpx
import pytest

from .conftest import ServiceUnderTest
from .schemas import assert_valid


@dataclass
class Sample:
    """Nodes of every type under one container, created once per backend."""

    base: str
    data: str
    link: str
    sub: str

    @classmethod
    def create(cls, svc: ServiceUnderTest) -> "Sample":
        base = svc.unique()
        sample = cls(base, f"{base}/data.txt", f"{base}/link", f"{base}/sub")
        # node_xml does not escape, so the markup characters go in as entities
        props = {"ivo://ivoa.net/vospace/core#description": "sample &lt;&amp;&gt; \u00e9",
                 "ivo://example.org/custom#tag": "x"}
        for path, kind, extra in ((base, "ContainerNode", {}),
                                  (sample.data, "DataNode", {"properties": props}),
                                  (sample.sub, "ContainerNode", {"properties": props}),
                                  (sample.link, "LinkNode", {"target": svc.uri(sample.data)})):
            r = svc.create(path, kind, **extra)
            assert r.status_code == 201, r.text
        return sample


_samples: dict[tuple[int, str], Sample] = {}


@pytest.fixture
def sample(svc) -> Sample:
    key = (svc.server.port, svc.name)
    if key not in _samples:
        _samples[key] = Sample.create(svc)
    return _samples[key]


@dataclass
class Doc:
    name: str
    fetch: Callable[[ServiceUnderTest, Sample], httpx.Response]
    status: int = 200


def _get(path_of: Callable[[Sample], str], user: str | None = "alice", **params):
    def fetch(svc: ServiceUnderTest, s: Sample) -> httpx.Response:
        with svc.client(user) as c:
            return c.get(svc.nodes_url(path_of(s)), params=params)
    return fetch


def _service_doc(leaf: str, service: str | None = None):
    """VOSI ``leaf`` of the service under test, or of ``service`` (e.g. skaha)."""
    def fetch(svc: ServiceUnderTest, s: Sample) -> httpx.Response:
        with svc.client(None) as c:
            return c.get(f"/{service or svc.name}/{leaf}")
    return fetch


def _created(kind: str, **extra):
    def fetch(svc: ServiceUnderTest, s: Sample) -> httpx.Response:
        return svc.create(svc.unique(), kind, **extra)
    return fetch


def _posted(svc: ServiceUnderTest, s: Sample) -> httpx.Response:
    body = svc.node_xml(s.sub, "ContainerNode",
                        properties={"ivo://example.org/custom#tag": "y",
                                    "ivo://ivoa.net/vospace/core#title": "T"})
    with svc.client() as c:
        return c.post(svc.nodes_url(s.sub), content=body, headers={"Content-Type": "text/xml"})


def _second_page(svc: ServiceUnderTest, s: Sample) -> httpx.Response:
    with svc.client() as c:
        return c.get(svc.nodes_url(s.base), params={"limit": "2", "uri": svc.uri(s.link)})


DOCUMENTS: list[Doc] = [
    *(Doc(f"container-{d}", _get(lambda s: s.base, detail=d)) for d in ("min", "max", "properties")),
    *(Doc(f"data-{d}", _get(lambda s: s.data, detail=d)) for d in ("min", "max", "properties")),
    *(Doc(f"link-{d}", _get(lambda s: s.link, detail=d)) for d in ("min", "max", "properties")),
    Doc("container-limit-0", _get(lambda s: s.base, limit="0")),
    Doc("container-limit-1", _get(lambda s: s.base, limit="1")),
    Doc("container-second-page", _second_page),
    Doc("container-sorted-by-date", _get(lambda s: s.base, sort="ivo://ivoa.net/vospace/core#date",
                                         order="desc")),
    Doc("empty-container", _get(lambda s: s.sub)),
    Doc("service-root", _get(lambda s: "", limit="5")),
    Doc("service-root-anonymous", _get(lambda s: "", user=None, limit="5")),
    Doc("created-container", _created("ContainerNode"), 201),
    Doc("created-data", _created("DataNode"), 201),
    Doc("created-link", _created("LinkNode", target="https://example.org/x"), 201),
    Doc("set-properties", _posted),
    Doc("capabilities", _service_doc("capabilities")),
    Doc("availability", _service_doc("availability")),
    Doc("skaha-capabilities", _service_doc("capabilities", "skaha")),
    Doc("skaha-availability", _service_doc("availability", "skaha")),
]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: d.name)
def test_document_is_schema_valid(svc, sample, doc):
    r = doc.fetch(svc, sample)
    assert r.status_code == doc.status, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert_valid(r.content, f"{doc.name} on {svc.backend}")


def test_validator_rejects_an_invalid_node_document(svc, sample):
    """The check can fail: a node document with an unknown child element is refused."""
    with svc.client() as c:
        xml = c.get(svc.nodes_url(sample.data)).content
    broken = xml.replace(b"</vos:properties>", b"</vos:properties><vos:bogus/>", 1)
    assert broken != xml
    with pytest.raises(AssertionError, match="not schema-valid"):
        assert_valid(broken)
