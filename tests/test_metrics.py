"""``/metrics`` (who may read it, and exact counts after a known set of requests) and the
JSON access log with request ids, on a real server of their own."""
from __future__ import annotations

import json
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .harness import make_server
from .waiting import wait_until

SCRAPE_TOKEN = "scrape-" + "x" * 24


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = make_server(str(tmp_path_factory.mktemp("metrics")), users=("alice",),
                      extra_env={"VOSPACE_METRICS_TOKEN": SCRAPE_TOKEN})
    yield srv
    srv.stop()


def scrape(server) -> dict[tuple[str, frozenset], float]:
    with server.client() as c:
        r = c.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_only_admins_or_the_scrape_token_read_metrics(server):
    with server.client() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
    with server.client("alice") as alice:
        assert alice.get("/metrics").status_code == 403
    with server.client("admin") as admin:
        assert admin.get("/metrics").status_code == 200
    assert scrape(server)  # the configured token


def test_metrics_count_exactly_the_requests_made(server):
    before = scrape(server)
    sizes = [1000, 2500, 7]
    with server.client("alice") as c:
        for n, size in enumerate(sizes):
            r = c.put(f"/vault/files/alice/metric-{n}.bin", content=os.urandom(size))
            assert r.status_code == 201, r.text
        for _ in range(4):
            assert c.get("/vault/nodes/alice").status_code == 200
        assert c.get("/vault/nodes/alice/nothing-here").status_code == 404
        assert c.get("/arc/nodes/home/alice").status_code == 200
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    req = "vospace_requests_total"
    assert grew(req, service="vault", endpoint="files", method="PUT", status="201") == 3
    assert grew(req, service="vault", endpoint="nodes", method="GET", status="200") == 4
    assert grew(req, service="vault", endpoint="nodes", method="GET", status="404") == 1
    assert grew(req, service="arc", endpoint="nodes", method="GET", status="200") == 1
    assert grew("vospace_request_duration_seconds_count", service="vault", endpoint="files") == 3
    assert grew("vospace_received_bytes_total", service="vault") == sum(sizes)
    assert grew("vospace_sent_bytes_total", service="vault") > 0
    assert value(after, "vospace_transfers_in_flight", service="vault", direction="in") == 0
    assert value(after, "vospace_db_pool_connections", state="size") > 0
    with server.client("admin") as admin:  # families without rows yet are still declared
        text = admin.get("/metrics").text
    assert "# TYPE vospace_sessions gauge" in text and "# TYPE vospace_uws_jobs gauge" in text
    # the scrape before this one was itself a request of this process
    assert grew(req, service="metrics", endpoint="", method="GET", status="200") == 1


def test_unknown_paths_do_not_make_new_labels(server):
    with server.client() as c:
        for n in range(3):
            assert c.get(f"/no-such-{n}/x").status_code == 404
            assert c.get(f"/vault/no-such-{n}").status_code == 404
    samples = scrape(server)
    assert value(samples, "vospace_requests_total", service="other", endpoint="",
                 method="GET", status="404") >= 3
    assert value(samples, "vospace_requests_total", service="vault", endpoint="other",
                 method="GET", status="404") >= 3
    assert not any("no-such" in str(labels) for _name, labels in samples)


def access_lines(server, wanted: str | None = None) -> list[dict]:
    """The access log so far; with ``wanted``, waits (briefly) for that request id's line,
    which is written once the response has been sent."""
    def lines_so_far() -> list[dict] | None:
        with open(server.log_path) as fh:
            lines = [json.loads(line) for line in fh if line.startswith('{"time"')]
        if wanted is None or any(line["request_id"] == wanted for line in lines):
            return lines
        return None
    return wait_until(lines_so_far, 10, f"the access log line of {wanted}", retry=())


def test_access_log_lines_and_request_ids(server):
    with server.client("alice") as c:
        given = c.get("/vault/nodes/alice", headers={"X-Request-ID": "trace-42.a:b"})
        made = c.get("/vault/nodes/alice")
        refused = c.get("/vault/nodes/alice", headers={"X-Request-ID": "bad id\twith space"})
        put = c.put("/vault/files/alice/logged.bin", content=b"x" * 321,
                    headers={"X-Request-ID": "upload-1"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    assert len(made.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] != "bad id\twith space"
    assert put.status_code == 201
    lines = {line["request_id"]: line for line in access_lines(server, "upload-1")}
    line = lines["trace-42.a:b"]
    assert set(line) == {"time", "request_id", "user", "method", "path", "status", "bytes",
                         "bytes_in", "duration", "pid"}
    assert (line["user"], line["method"], line["path"], line["status"]) == \
        ("alice", "GET", "/vault/nodes/alice", 200)
    assert line["bytes"] == len(given.content) and line["duration"] > 0
    assert line["time"].endswith("+00:00")
    assert line["pid"] == server.proc.pid  # one process: it answered everything
    upload = lines["upload-1"]
    assert (upload["method"], upload["status"], upload["bytes_in"]) == ("PUT", 201, 321)
    assert made.headers["x-request-id"] in lines


def test_preauth_credentials_stay_out_of_the_log(server):
    with server.client("alice") as c:
        c.put("/vault/files/alice/secret.bin", content=b"s" * 10).raise_for_status()
        redirect = c.get("/vault/files/alice/secret.bin")
        assert redirect.status_code == 303
        token = redirect.headers["location"].split("/preauth/")[1].split("/")[0]
        fetched = c.get(redirect.headers["location"])
        assert fetched.status_code == 200
    lines = access_lines(server, fetched.headers["x-request-id"])
    assert any(line["path"] == "/vault/preauth/***/alice/secret.bin" for line in lines)
    with open(server.log_path) as fh:
        assert token not in fh.read()
