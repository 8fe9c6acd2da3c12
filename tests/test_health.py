"""``/healthz`` and ``/readyz`` of a real server: ready while PostgreSQL answers, not ready
(503, naming the database) while it is stopped, ready again once it is back."""
from __future__ import annotations


import httpx
import pytest

from .harness import PostgresCluster, make_server
from .waiting import wait_until


@pytest.fixture()
def pg_outage_server(tmp_path):
    """A server on a PostgreSQL cluster of its own, which the test may stop."""
    cluster = PostgresCluster()
    server = None
    try:
        server = make_server(str(tmp_path), cluster.create_database(), users=())
        yield server, cluster
    finally:
        if server is not None:
            server.stop()
        cluster.stop()


def wait_status(client: httpx.Client, path: str, status: int, timeout: float = 30) -> httpx.Response:
    def answered() -> httpx.Response | None:
        r = client.get(path)
        return r if r.status_code == status else None
    return wait_until(answered, timeout, f"{path} to answer {status}", interval=0.3)


def test_healthz_and_readyz_follow_the_database(pg_outage_server):
    server, cluster = pg_outage_server
    with httpx.Client(base_url=server.url, verify=False, timeout=30) as c:  # no credentials
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"ready": True, "problems": {}}

        cluster.pause()
        try:
            down = wait_status(c, "/readyz", 503)
            assert down.status_code == 503, down.text
            assert down.json()["ready"] is False
            assert list(down.json()["problems"]) == ["database"]
            assert c.get("/healthz").status_code == 200  # alive, only not ready
        finally:
            cluster.resume()
        back = wait_status(c, "/readyz", 200)
        assert back.status_code == 200, back.text
        assert back.json()["ready"] is True


def test_readyz_names_a_blob_store_that_is_gone(tmp_path):
    server = make_server(str(tmp_path), users=())
    try:
        blob_tmp = tmp_path.glob("vospace-*/blobs/tmp")
        folder = next(blob_tmp)
        with httpx.Client(base_url=server.url, verify=False, timeout=30) as c:
            assert c.get("/readyz").status_code == 200
            folder.rename(folder.with_name("moved"))
            r = c.get("/readyz")
            assert r.status_code == 503 and list(r.json()["problems"]) == ["vault blobs"], r.text
            folder.with_name("moved").rename(folder)
            assert c.get("/readyz").status_code == 200
    finally:
        server.stop()
