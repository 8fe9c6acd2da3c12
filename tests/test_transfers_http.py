"""The data path over HTTP on every backend: headers, ranges, checksums, pre-authorized
URLs, synctrans and the ACL, with httpx against the real server."""
from __future__ import annotations

import base64
import hashlib
import os
import re

import pytest
from lxml import etree

from vospace_server.auth.preauth import PreauthSigner, load_secret

from .conftest import VOS_NS, ServiceUnderTest
from .schemas import assert_valid

CORE = "ivo://ivoa.net/vospace/core#"
TRANSFER = ('<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1">'
            '<vos:target>{target}</vos:target><vos:direction>{direction}</vos:direction>'
            '<vos:protocol uri="ivo://ivoa.net/vospace/core#{proto}">{sec}</vos:protocol>'
            '</vos:transfer>')
TOKEN_METHOD = '<vos:securityMethod uri="vos://cadc.nrc.ca~vospace/CADC/std/Auth#token-1.0"/>'


def b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def files(svc, path: str) -> str:
    return f"/{svc.name}/files/{path}"


@pytest.fixture
def stored(svc):
    """A folder with one 300 kB DataNode uploaded through /files; (path, bytes)."""
    base = svc.unique()
    assert svc.create(base).status_code == 201
    data = os.urandom(300_000)
    with svc.client() as c:
        r = c.put(files(svc, f"{base}/blob.dat"), content=data)
    assert r.status_code == 201, r.text
    assert r.headers["digest"] == f"md5={b64(hashlib.md5(data).hexdigest())}"
    return f"{base}/blob.dat", data


def fetch(svc, path: str, user: str | None = "alice", **headers):
    with svc.client(user) as c:
        return c.get(files(svc, path), headers=headers, follow_redirects=True)


def test_get_and_head_carry_node_headers(svc, stored):
    path, data = stored
    md5 = hashlib.md5(data).hexdigest()
    with svc.client() as c:
        head = c.head(files(svc, path))
        raw = c.get(files(svc, path))
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["digest"] == f"md5={b64(md5)}"
    assert head.headers["etag"] == f'"{md5}"'
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["content-disposition"] == 'inline; filename="blob.dat"'
    assert "last-modified" in head.headers
    assert "xfer" not in str(raw.headers.get("location", ""))
    if svc.name == "vault":  # the CADC client expects vault's /files to redirect
        assert raw.status_code == 303 and "/preauth/" in raw.headers["location"]
    else:
        assert raw.status_code == 200
    r = fetch(svc, path)
    assert r.status_code == 200 and r.content == data
    for server_header in r.headers.get_list("server"):
        assert "vault-" not in server_header and "cavern-" not in server_header


def test_ranges(svc, stored):
    path, data = stored
    r = fetch(svc, path, Range="bytes=1000-1999")
    assert r.status_code == 206 and r.content == data[1000:2000]
    assert r.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    r = fetch(svc, path, Range="bytes=299000-")
    assert r.status_code == 206 and r.content == data[299000:]
    assert r.headers["content-range"] == f"bytes 299000-{len(data) - 1}/{len(data)}"
    r = fetch(svc, path, Range="bytes=-10")
    assert r.status_code == 206 and r.content == data[-10:]
    r = fetch(svc, path, Range=f"bytes={len(data)}-")
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"


def test_etag_if_none_match(svc, stored):
    path, data = stored
    etag = fetch(svc, path).headers["etag"]
    assert fetch(svc, path, **{"If-None-Match": etag}).status_code == 304
    assert fetch(svc, path, **{"If-None-Match": '"0000"'}).status_code == 200


def test_checksum_mismatch_is_412_and_keeps_old_content(svc, stored):
    path, data = stored
    new = b"replacement" * 1000
    with svc.client() as c:
        wrong = c.put(files(svc, path), content=new,
                      headers={"Digest": f"md5={b64(hashlib.md5(b'other').hexdigest())}"})
        assert wrong.status_code == 412 and wrong.text.startswith("PreconditionFailed")
        assert fetch(svc, path).content == data
        right = c.put(files(svc, path), content=new,
                      headers={"Content-MD5": b64(hashlib.md5(new).hexdigest())})
        assert right.status_code == 201
        node = c.get(svc.nodes_url(path))
    assert fetch(svc, path).content == new
    props = {p.get("uri"): p.text for p in etree.fromstring(node.content).iter(f"{{{VOS_NS}}}property")}
    assert props[CORE + "length"] == str(len(new))
    assert props[CORE + "MD5"] == hashlib.md5(new).hexdigest()


@pytest.mark.parametrize("server_fixture", ["sqlite_server", "postgres_server"])
def test_vault_container_length_tracks_uploads(request, server_fixture):
    svc = ServiceUnderTest(request.getfixturevalue(server_fixture), "vault", server_fixture)
    base = svc.unique()
    svc.create(base)
    with svc.client() as c:
        c.put(files(svc, f"{base}/a"), content=b"x" * 100)
        c.put(files(svc, f"{base}/b"), content=b"x" * 50)
        c.put(files(svc, f"{base}/a"), content=b"x" * 10)
        node = c.get(svc.nodes_url(base), params={"limit": 0})
    props = {p.get("uri"): p.text for p in etree.fromstring(node.content).iter(f"{{{VOS_NS}}}property")}
    assert props[CORE + "length"] == "60"


def test_acl_on_files(svc, stored):
    path, _ = stored
    assert fetch(svc, path, user=None).status_code == 401
    assert fetch(svc, path, user="bob").status_code == 403
    with svc.client("bob") as c:
        assert c.put(files(svc, path), content=b"evil").status_code == 403
        assert c.put(files(svc, path + "-new"), content=b"evil").status_code == 403
    with svc.client() as c:
        assert c.put(files(svc, svc.unique() + "/no/parent"), content=b"x").status_code == 404
        assert c.put(files(svc, svc.home("alice")), content=b"x").status_code == 400


def _negotiate(svc, path: str, direction: str, proto: str, sec: str = "", user="alice"):
    body = TRANSFER.format(target=svc.uri(path), direction=direction, proto=proto, sec=sec)
    with svc.client(user) as c:
        first = c.post(f"/{svc.name}/synctrans", content=body,
                       headers={"Content-Type": "text/xml"})
        if first.status_code != 303:
            return first, []
        location = first.headers["location"]
        assert location.endswith("/results/transferDetails") and "xfer" not in location
        details = c.get(location)
        assert details.status_code == 200
        assert_valid(details.content, "transfer details")
        phase = c.get(location.replace("/results/transferDetails", "/phase"))
        assert phase.text == "COMPLETED"
    endpoints = [e.text for e in etree.fromstring(details.content).iter(f"{{{VOS_NS}}}endpoint")]
    return details, endpoints


def test_synctrans_push_then_pull_with_preauth_urls(svc):
    base = svc.unique()
    svc.create(base)
    path = f"{base}/pushed.bin"
    data = os.urandom(20_000)
    _, put_urls = _negotiate(svc, path, "pushToVoSpace", "httpsput", TOKEN_METHOD)
    assert "/preauth/" in put_urls[0] and put_urls[1].endswith(f"/files/{path}")
    with svc.client(None) as anon:  # pre-authorized: no credential needed
        assert anon.put(put_urls[0], content=data).status_code == 201
        assert anon.get(put_urls[0]).status_code == 403  # a put URL does not read
    _, get_urls = _negotiate(svc, path, "pullFromVoSpace", "httpsget")
    with svc.client(None) as anon:
        r = anon.get(get_urls[0])
        assert r.status_code == 200 and r.content == data
        assert anon.put(get_urls[0], content=b"x").status_code == 403  # a get URL does not write
        token = re.search(r"/preauth/([^/]+)/", get_urls[0]).group(1)
        other = get_urls[0].replace(path, f"{base}/other.bin")
        assert anon.get(other).status_code == 403  # scoped to one node
        forged = token[:-1] + ("0" if token[-1] != "0" else "1")
        assert anon.get(get_urls[0].replace(token, forged)).status_code == 403
        secret = load_secret("", svc.server.data_dir)
        expired = PreauthSigner(secret, lifetime_s=-10).issue(svc.name, path, "get", "alice")
        r = anon.get(get_urls[0].replace(token, expired))
        assert r.status_code == 403 and "expired" in r.text


def test_synctrans_refusals(svc, stored):
    path, _ = stored
    r, _ = _negotiate(svc, path + "-missing", "pullFromVoSpace", "httpsget")
    assert r.status_code == 404
    r, _ = _negotiate(svc, path, "pullFromVoSpace", "ftp")
    assert r.status_code == 400 and r.text.startswith("ProtocolNotSupported")
    r, _ = _negotiate(svc, path, "pullFromVoSpace", "httpsget", user="bob")
    assert r.status_code == 403
    with svc.client() as c:
        r = c.post(f"/{svc.name}/synctrans", content=b"<vos:transfer", headers={"Content-Type": "text/xml"})
        assert r.status_code == 400


def test_synctrans_query_form(svc, stored):
    path, data = stored
    params = {"TARGET": svc.uri(path), "DIRECTION": "pullFromVoSpace",
              "PROTOCOL": CORE + "httpsget"}
    with svc.client() as c:
        doc = c.get(f"/{svc.name}/synctrans", params=params)
        assert doc.status_code == 200
        assert_valid(doc.content, "transfer document")
        r = c.get(f"/{svc.name}/synctrans", params={**params, "REQUEST": "redirect"})
        assert r.status_code == 303
        assert c.get(r.headers["location"]).content == data


def test_large_file_handshake_is_answered_without_transaction(svc):
    """vcp of >= 5 GiB first PUTs an empty body with x-total-length; no txn id means one PUT."""
    path = svc.unique()
    with svc.client() as c:
        r = c.put(files(svc, path), content=b"",
                  headers={"x-put-txn-op": "start", "x-total-length": str(6 << 30)})
        assert r.status_code == 200 and "x-put-txn-id" not in r.headers
        assert c.get(svc.nodes_url(path)).status_code == 404  # nothing was created
