"""UWS async jobs over real HTTP on vault (SQLite, PostgreSQL) and arc: move and copy
semantics, recursive delete and property setting, and the UWS 1.1 surface (phases, abort,
delete, errorSummary, results, WAIT, job list), with every job document schema-validated.
"""
from __future__ import annotations

import hashlib
import time

import httpx
from lxml import etree

from .conftest import VOS_NS
from .schemas import assert_valid

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
CORE = "ivo://ivoa.net/vospace/core#"


def transfer_doc(svc, src: str, dest: str, keep_bytes: bool, extra: str = "") -> str:
    return (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
            f"<vos:target>{svc.uri(src)}</vos:target>"
            f"<vos:direction>{svc.uri(dest)}</vos:direction>"
            f"<vos:keepBytes>{'true' if keep_bytes else 'false'}</vos:keepBytes>{extra}"
            f"</vos:transfer>")


def new_job(c: httpx.Client, svc, src: str, dest: str, keep_bytes: bool = False,
            extra: str = "") -> str:
    r = c.post(f"/{svc.name}/transfers",
               content=transfer_doc(svc, src, dest, keep_bytes, extra),
               headers={"Content-Type": "text/xml"})
    assert r.status_code == 303, r.text
    return r.headers["location"]


def final_phase(c: httpx.Client, job: str) -> str:
    """The phase of a job that was set running, once it is final. A fast job ends inside
    the PHASE=RUN request (its 1.5 s inline budget); on a loaded machine (four CI workers
    on two cores) it may not, and the UWS ``WAIT`` covers the rest."""
    for _ in range(10):
        phase = c.get(job + "/phase").text
        if phase not in ("QUEUED", "EXECUTING"):
            break
        c.get(job, params={"WAIT": "30"})
    return phase


def run_job(c: httpx.Client, svc, src: str, dest: str, keep_bytes: bool = False,
            extra: str = "") -> str:
    """Create and run a transfer job; returns its URL once the job is final."""
    job = new_job(c, svc, src, dest, keep_bytes, extra)
    r = c.post(job + "/phase", data={"PHASE": "RUN"})
    assert r.status_code == 303 and r.headers["location"] == job
    final_phase(c, job)
    return job


def job_doc(c: httpx.Client, job: str, **params) -> etree._Element:
    r = c.get(job, params=params)
    assert r.status_code == 200, r.text
    assert_valid(r.content, "UWS job")
    return etree.fromstring(r.content)


def results(doc: etree._Element) -> dict[str, str]:
    return {r.get("id"): r.get(XLINK_HREF) for r in doc.iter(f"{UWS}result")}


def put_bytes(svc, path: str, data: bytes) -> None:
    with svc.client() as c:
        r = c.put(f"/{svc.name}/files/{path}", content=data)
    assert r.status_code == 201, r.text


def status(svc, path: str) -> int:
    with svc.client() as c:
        return c.get(svc.nodes_url(path)).status_code


def length_of(svc, path: str) -> int:
    with svc.client() as c:
        r = c.get(svc.nodes_url(path), params={"limit": 0})
    props = etree.fromstring(r.content).find(f"{{{VOS_NS}}}properties")
    return int(next(p.text for p in props if p.get("uri") == CORE + "length"))


def test_move_renames_and_moves_into_container(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/a")
    svc.create(f"{base}/a/f", "DataNode")
    svc.create(f"{base}/dir")
    with svc.client() as c:
        job = run_job(c, svc, f"{base}/a", f"{base}/renamed")
        assert c.get(job + "/phase").text == "COMPLETED"
        assert status(svc, f"{base}/renamed/f") == 200 and status(svc, f"{base}/a") == 404
        job = run_job(c, svc, f"{base}/renamed", f"{base}/dir")
        doc = job_doc(c, job)
        assert doc.findtext(f"{UWS}phase") == "COMPLETED"
        assert results(doc)["destination"] == svc.uri(f"{base}/dir/renamed")
    assert status(svc, f"{base}/dir/renamed/f") == 200
    assert status(svc, f"{base}/renamed") == 404


def test_move_onto_existing_file_is_duplicate_node_error(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/x", "DataNode")
    svc.create(f"{base}/y", "DataNode")
    with svc.client() as c:
        job = run_job(c, svc, f"{base}/x", f"{base}/y")
        assert c.get(job + "/phase").text == "ERROR"
        assert c.get(job + "/error").text == "DuplicateNode."  # exactly what vmv maps to EEXIST
        doc = job_doc(c, job)
        summary = doc.find(f"{UWS}errorSummary")
        assert summary.get("type") == "fatal"
        assert summary.findtext(f"{UWS}message").startswith("DuplicateNode")
    assert status(svc, f"{base}/x") == 200


def test_missing_source_is_node_not_found_and_into_itself_refused(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/d")
    with svc.client() as c:
        job = run_job(c, svc, f"{base}/nothing", f"{base}/d")
        assert c.get(job + "/error").text == "NodeNotFound"
        job = run_job(c, svc, f"{base}/d", f"{base}/d/inner")
        assert c.get(job + "/phase").text == "ERROR"
        assert c.get(job + "/error").text == "InvalidArgument"
    assert status(svc, f"{base}/d") == 200


def test_copy_copies_bytes_and_keeps_source(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/src")
    svc.create(f"{base}/src/sub")
    payload = bytes(range(256)) * 1000
    put_bytes(svc, f"{base}/src/sub/data.bin", payload)
    svc.create(f"{base}/src/link", "LinkNode", target=svc.uri(f"{base}/src/sub/data.bin"))
    with svc.client() as c:
        job = run_job(c, svc, f"{base}/src", f"{base}/copy", keep_bytes=True)
        assert c.get(job + "/phase").text == "COMPLETED", c.get(job + "/error").text
        r = c.get(f"/{svc.name}/files/{base}/copy/sub/data.bin", follow_redirects=True)
        assert r.status_code == 200 and r.content == payload
        node = c.get(svc.nodes_url(f"{base}/copy/sub/data.bin")).content
        assert hashlib.md5(payload).hexdigest().encode() in node
        link = etree.fromstring(c.get(svc.nodes_url(f"{base}/copy/link")).content)
        # arc keeps in-tree links relative on disk, so like ``cp -a`` they follow the copy
        linked = "copy" if svc.name == "arc" else "src"
        assert link.findtext(f"{{{VOS_NS}}}target") == svc.uri(f"{base}/{linked}/sub/data.bin")
        # the source is untouched and independent of the copy
        put_bytes(svc, f"{base}/src/sub/data.bin", b"changed")
        r = c.get(f"/{svc.name}/files/{base}/copy/sub/data.bin", follow_redirects=True)
        assert r.content == payload
        # copying onto the existing copy's parent puts it inside; twice is a duplicate
        job = run_job(c, svc, f"{base}/src/sub", f"{base}/copy", keep_bytes=True)
        assert c.get(job + "/error").text == "DuplicateNode."


def test_vault_container_lengths_follow_moves(svc):
    if svc.name != "vault":
        return  # arc container lengths belong to the quotas work
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/a")
    svc.create(f"{base}/b")
    put_bytes(svc, f"{base}/a/f", b"x" * 1234)
    assert length_of(svc, f"{base}/a") == 1234
    with svc.client() as c:
        run_job(c, svc, f"{base}/a/f", f"{base}/b")
        assert length_of(svc, f"{base}/a") == 0
        assert length_of(svc, f"{base}/b") == 1234
        assert length_of(svc, base) == 1234
        run_job(c, svc, f"{base}/b", f"{base}/c", keep_bytes=True)
    assert length_of(svc, base) == 2468


def test_acl_and_locks_are_enforced(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/mine", "DataNode")
    svc.create(f"{base}/locked", "DataNode",
               properties={"ivo://cadc.nrc.ca/vospace/core#islocked": "true"})
    with svc.client("bob") as bob:
        job = run_job(bob, svc, f"{base}/mine", f"{svc.home('bob')}/stolen")
        assert bob.get(job + "/error").text == "PermissionDenied"
    with svc.client() as c:
        assert c.get(job).status_code == 403  # alice cannot see bob's job
        job = run_job(c, svc, f"{base}/locked", f"{base}/moved")
        assert c.get(job + "/error").text == "NodeLocked"
        job = run_job(c, svc, f"{base}/mine", f"{svc.home('bob')}/given")
        assert c.get(job + "/error").text == "PermissionDenied"
    assert status(svc, f"{base}/mine") == 200 and status(svc, f"{base}/locked") == 200


def test_uws_surface(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/a", "DataNode")
    with svc.client() as c:
        job = new_job(c, svc, f"{base}/a", f"{base}/b")
        job_id = job.rsplit("/", 1)[1]
        doc = job_doc(c, job)
        assert doc.findtext(f"{UWS}phase") == "PENDING"
        assert doc.findtext(f"{UWS}ownerId") == "alice"
        assert c.get(job + "/owner").text == "alice"
        assert c.get(job + "/quote").status_code == 200
        assert_valid(c.get(job + "/parameters").content, "UWS parameters")
        assert_valid(c.get(job + "/results").content, "UWS results")
        params = etree.fromstring(c.get(job + "/parameters").content)
        assert {p.get("id"): p.text for p in params}["target"] == svc.uri(f"{base}/a")
        assert c.get(job + "/error").status_code == 404
        # WAIT on a PENDING job blocks for the time asked, then answers PENDING
        start = time.monotonic()
        assert job_doc(c, job, WAIT=1).findtext(f"{UWS}phase") == "PENDING"
        assert time.monotonic() - start >= 0.9
        # executionduration and destruction can be set; bad phase values are refused
        assert c.post(job + "/executionduration", data={"EXECUTIONDURATION": "600"}).status_code == 303
        assert c.get(job + "/executionduration").text == "600"
        r = c.post(job + "/destruction", data={"DESTRUCTION": "2099-01-01T00:00:00Z"})
        assert r.status_code == 303
        assert c.get(job + "/destruction").text.startswith("2099-01-01T00:00:00")
        assert c.post(job + "/phase", data={"PHASE": "FLY"}).status_code == 400
        # the job list holds it; PHASE filters
        listing = c.get(f"/{svc.name}/transfers")
        assert_valid(listing.content, "UWS job list")
        assert job_id in listing.text
        assert job_id not in c.get(f"/{svc.name}/transfers", params={"PHASE": "COMPLETED"}).text
        # abort (lower-case parameter name), then delete with ACTION=DELETE
        assert c.post(job + "/phase", data={"phase": "ABORT"}).status_code == 303
        assert c.get(job + "/phase").text == "ABORTED"
        start = time.monotonic()
        assert job_doc(c, job, WAIT=5).findtext(f"{UWS}phase") == "ABORTED"
        assert time.monotonic() - start < 1  # final phases never block
        r = c.post(job, data={"ACTION": "DELETE"})
        assert r.status_code == 303 and r.headers["location"].endswith("/transfers")
        assert c.get(job).status_code == 404
        # HTTP DELETE of a finished job; the node was never moved by the aborted job
        job = run_job(c, svc, f"{base}/a", f"{base}/b")
        assert c.delete(job).status_code == 303 and c.get(job).status_code == 404
    assert status(svc, f"{base}/b") == 200
    with svc.client(None) as anon:
        assert anon.post(f"/{svc.name}/transfers", content=transfer_doc(
            svc, f"{base}/b", f"{base}/c", False)).status_code == 401
    with svc.client() as c:
        assert c.post(f"/{svc.name}/transfers", content=b"<nonsense/>").status_code == 400
        assert c.get(f"/{svc.name}/transfers/doesnotexist").status_code == 404


def test_create_with_phase_run_in_one_post(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/a", "DataNode")
    with svc.client() as c:
        r = c.post(f"/{svc.name}/transfers?PHASE=RUN",
                   content=transfer_doc(svc, f"{base}/a", f"{base}/b", False),
                   headers={"Content-Type": "text/xml"})
        assert r.status_code == 303
        assert final_phase(c, r.headers["location"]) == "COMPLETED"
    assert status(svc, f"{base}/b") == 200


def _recursive(c: httpx.Client, url: str, **kwargs) -> etree._Element:
    r = c.post(url, **kwargs)
    assert r.status_code == 303, r.text
    job = r.headers["location"]
    assert c.post(job + "/phase", data={"phase": "RUN"}).status_code == 303
    return job_doc(c, job, WAIT=6)


def test_recursive_delete_counts_and_spares_what_it_may_not_delete(svc):
    base = svc.unique()
    svc.create(base)
    for path in ("d", "d/e", "d/e/f", "d/g", "keep", "keep/locked"):
        kind = "DataNode" if path.endswith(("f", "g", "locked")) else "ContainerNode"
        extra = {"properties": {"ivo://cadc.nrc.ca/vospace/core#islocked": "true"}} \
            if path.endswith("locked") else {}
        assert svc.create(f"{base}/{path}", kind, **extra).status_code == 201
    with svc.client() as c:
        doc = _recursive(c, f"/{svc.name}/async-delete", data={"target": svc.uri(f"{base}/d")})
        assert doc.findtext(f"{UWS}phase") == "COMPLETED"
        assert results(doc) == {"successcount": "final:4"}
        assert status(svc, f"{base}/d") == 404
        doc = _recursive(c, f"/{svc.name}/async-delete", data={"target": svc.uri(base)})
        # the locked node and therefore its container and the base survive
        assert results(doc) == {"successcount": "final:0", "errorcount": "final:3"}
        assert status(svc, f"{base}/keep/locked") == 200
    with svc.client("bob") as bob:
        doc = _recursive(bob, f"/{svc.name}/async-delete",
                         data={"target": svc.uri(f"{base}/keep")})
        assert doc.findtext(f"{UWS}phase") == "ERROR"
        assert "PermissionDenied" in doc.find(f"{UWS}errorSummary").findtext(f"{UWS}message")


def test_recursive_setprops(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/sub")
    svc.create(f"{base}/sub/f", "DataNode")
    svc.create(f"{base}/link", "LinkNode", target=svc.uri(f"{base}/sub"))
    body = svc.node_xml(base, properties={CORE + "ispublic": "true",
                                          "ivo://example.org/t#tag": "x"})
    with svc.client() as c:
        doc = _recursive(c, f"/{svc.name}/async-setprops", content=body,
                         headers={"Content-Type": "text/xml"})
        assert doc.findtext(f"{UWS}phase") == "COMPLETED"
        assert results(doc) == {"successcount": "final:3"}
    with svc.client() as c:  # set all the way down
        for path in (base, f"{base}/sub", f"{base}/sub/f"):
            props = etree.fromstring(c.get(svc.nodes_url(path), params={"limit": 0}).content)
            found = {p.get("uri"): p.text for p in props.find(f"{{{VOS_NS}}}properties")}
            assert found[CORE + "ispublic"] == "true" and found["ivo://example.org/t#tag"] == "x"
    with svc.client("bob") as bob:
        doc = _recursive(bob, f"/{svc.name}/async-setprops", content=body,
                         headers={"Content-Type": "text/xml"})
        assert doc.findtext(f"{UWS}phase") == "ERROR"  # bob cannot even see alice's home


def _data_transfer(svc, path: str, direction: str) -> str:
    return (f'<vos:transfer xmlns:vos="{VOS_NS}" version="2.1">'
            f"<vos:target>{svc.uri(path)}</vos:target><vos:direction>{direction}</vos:direction>"
            f'<vos:protocol uri="{CORE}httpsput"/><vos:protocol uri="{CORE}httpsget"/>'
            "</vos:transfer>")


def _endpoint_of(c: httpx.Client, job: str) -> str:
    assert c.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
    doc = job_doc(c, job)
    assert doc.findtext(f"{UWS}phase") == "COMPLETED", c.get(job + "/error").text
    details = c.get(results(doc)["transferDetails"])
    assert details.status_code == 200
    assert_valid(details.content, "transfer details")
    return etree.fromstring(details.content).findtext(f"{{{VOS_NS}}}protocol/{{{VOS_NS}}}endpoint")


def test_async_push_and_pull_negotiate_preauthorized_endpoints(svc):
    base = svc.unique()
    svc.create(base)
    path = f"{base}/pushed.bin"
    with svc.client() as c:
        r = c.post(f"/{svc.name}/transfers", content=_data_transfer(svc, path, "pushToVoSpace"))
        put_url = _endpoint_of(c, r.headers["location"])
        r = c.post(f"/{svc.name}/transfers", content=_data_transfer(svc, path, "pullFromVoSpace"))
        pull_job = r.headers["location"]
        r = c.post(f"/{svc.name}/transfers",
                   content=_data_transfer(svc, f"{base}/nowhere/x", "pushToVoSpace"))
        failed = r.headers["location"]
        assert c.post(failed + "/phase", data={"PHASE": "RUN"}).status_code == 303
        assert c.get(failed + "/error").text == "ContainerNotFound"
    with httpx.Client(verify=False) as anonymous:  # the endpoints need no other credential
        assert anonymous.put(put_url, content=b"async bytes").status_code == 201
    with svc.client() as c:
        get_url = _endpoint_of(c, pull_job)
    with httpx.Client(verify=False) as anonymous:
        assert anonymous.get(get_url, follow_redirects=True).content == b"async bytes"


def test_transfer_document_in_another_encoding(svc):
    base = svc.unique()
    svc.create(base)
    svc.create(f"{base}/caf\u00e9", "DataNode")
    doc = ('<?xml version="1.0" encoding="ISO-8859-1"?>'
           + transfer_doc(svc, f"{base}/caf\u00e9", f"{base}/th\u00e9", False)).encode("latin-1")
    with svc.client() as c:
        r = c.post(f"/{svc.name}/transfers?PHASE=RUN", content=doc,
                   headers={"Content-Type": "text/xml"})
        assert r.status_code == 303
        assert final_phase(c, r.headers["location"]) == "COMPLETED"
    assert status(svc, f"{base}/th\u00e9") == 200



REPLACE_PARAM = '<vos:param uri="urn:vospace-server:transfer#replace">true</vos:param>'


def move_phase(c: httpx.Client, svc, src: str, dest: str, replace: bool) -> tuple[str, str]:
    """Run a move job (with the replace parameter if asked); its phase and document."""
    job = run_job(c, svc, src, dest, extra=REPLACE_PARAM if replace else "")
    return c.get(f"{job}/phase").text.strip(), c.get(job).text


def test_move_with_replace_is_rename(svc):
    """The replace transfer parameter (arcfs's rename): an existing file or empty container
    is replaced in the same step; a non-empty container or a type mismatch is refused and
    nothing changes; without the parameter an existing file stays a DuplicateNode."""
    top = svc.unique()
    assert svc.create(top).status_code == 201
    put_bytes(svc, f"{top}/a", b"new content")
    put_bytes(svc, f"{top}/b", b"old")
    with svc.client() as c:
        phase, text = move_phase(c, svc, f"{top}/a", f"{top}/b", replace=False)
        assert phase == "ERROR" and "DuplicateNode" in text
        assert move_phase(c, svc, f"{top}/a", f"{top}/b", replace=True)[0] == "COMPLETED"
        assert status(svc, f"{top}/a") == 404
        assert c.get(f"/{svc.name}/files/{top}/b", follow_redirects=True).content == \
            b"new content"
        if svc.name == "vault":  # the container counts the bytes once
            assert length_of(svc, top) == len(b"new content")
        for name in ("dir", "full", "empty"):
            assert svc.create(f"{top}/{name}").status_code == 201
        put_bytes(svc, f"{top}/full/keep", b"k")
        for src, dest in (("b", "dir"), ("dir", "b"), ("dir", "full")):
            phase, text = move_phase(c, svc, f"{top}/{src}", f"{top}/{dest}", replace=True)
            assert phase == "ERROR" and "DuplicateNode" in text, (src, dest, text)
        assert c.get(f"/{svc.name}/files/{top}/full/keep", follow_redirects=True).content == b"k"
        assert move_phase(c, svc, f"{top}/dir", f"{top}/empty", replace=True)[0] == "COMPLETED"
        assert status(svc, f"{top}/dir") == 404 and status(svc, f"{top}/empty") == 200
