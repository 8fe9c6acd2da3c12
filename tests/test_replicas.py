"""Several replicas behind a load balancer (tests/cluster.py: nginx, two `vospace serve`
on one PostgreSQL, one S3 server, one arc directory) behave as one service: what is written
through one is read through the other, pre-authorized URLs, jobs, group changes and session
tickets cross replicas, and a replica killed in the middle of uploads loses nothing and leaves nothing.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from lxml import etree

from .cluster import Cluster
from .harness import CADC_BIN, VOSPACE
from .test_transfers_http import TRANSFER
from .test_uws_jobs import transfer_doc
from .waiting import wait_until

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
HOMES = {"vault": "alice", "arc": "home/alice"}


@pytest.fixture(scope="module")
def cluster(postgres):
    deployment = Cluster(replicas=2, postgres=postgres)
    yield deployment
    deployment.stop()


class Svc:
    """What tests/test_uws_jobs.transfer_doc needs of a service."""

    def __init__(self, name: str) -> None:
        self.name = name

    def uri(self, path: str) -> str:
        return f"vos://localhost~{self.name}/{path}"


def unique(service: str) -> str:
    return f"{HOMES[service]}/r-{uuid.uuid4().hex[:10]}"


def container(service: str, path: str, properties: str = "") -> str:
    return (f'<vos:node xmlns:vos="{VOS_NS}" uri="{Svc(service).uri(path)}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:type="vos:ContainerNode"><vos:properties>{properties}</vos:properties>'
            f'</vos:node>')


def mkdir(c: httpx.Client, service: str, path: str) -> None:
    r = c.put(f"/{service}/nodes/{path}", content=container(service, path),
              headers={"Content-Type": "text/xml"})
    assert r.status_code == 201, r.text


def cadc(cluster: Cluster, via: int, home: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
           "LOCAL_VOSPACE_WEBSERVICE": f"127.0.0.1:{cluster.via[via].port}"}
    result = subprocess.run([str(CADC_BIN / args[0]), "-k", "--token", cluster.tokens["alice"],
                             *args[1:]], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def vcp(cluster: Cluster, via: int, *args: str) -> None:
    env = dict(os.environ, VOSPACE_URL=cluster.via[via].url, VOSPACE_TOKEN=cluster.tokens["alice"],
               VOSPACE_INSECURE="1", HOME=os.environ.get("HOME", "/root"))
    vcp_bin = os.path.join(os.path.dirname(VOSPACE), "vcp")
    result = subprocess.run([vcp_bin, "-q", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("service", ["vault", "arc"])
def test_clients_write_through_one_replica_and_read_through_the_other(cluster, service,
                                                                      tmp_path):
    base = unique(service)
    with cluster.client(via=0) as c:
        mkdir(c, service, base)
    prefix = "vos:" if service == "vault" else "arc:"
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "in.bin").write_bytes(data)
    for home in ("h0", "h1"):
        (tmp_path / home).mkdir()
    cadc(cluster, 0, str(tmp_path / "h0"), "vcp", str(tmp_path / "in.bin"), f"{prefix}{base}/cadc.bin")
    vcp(cluster, 0, str(tmp_path / "in.bin"), f"{prefix}{base}/ours.bin")
    cadc(cluster, 1, str(tmp_path / "h1"), "vcp", f"{prefix}{base}/ours.bin", str(tmp_path / "a"))
    vcp(cluster, 1, f"{prefix}{base}/cadc.bin", str(tmp_path / "b"))
    assert (tmp_path / "a").read_bytes() == data and (tmp_path / "b").read_bytes() == data
    listing = cadc(cluster, 1, str(tmp_path / "h1"), "vls", f"{prefix}{base}").stdout.split()
    assert sorted(listing) == ["cadc.bin", "ours.bin"]


def negotiate(c: httpx.Client, service: str, path: str, direction: str, proto: str) -> str:
    """The pre-authorized endpoint of a sync transfer (the first one offered)."""
    body = TRANSFER.format(target=Svc(service).uri(path), direction=direction, proto=proto,
                           sec="")
    first = c.post(f"/{service}/synctrans", content=body, headers={"Content-Type": "text/xml"})
    assert first.status_code == 303, first.text
    details = c.get(first.headers["location"])
    endpoint = next(etree.fromstring(details.content).iter(f"{{{VOS_NS}}}endpoint")).text
    assert "/preauth/" in endpoint
    return endpoint


def on(cluster: Cluster, via: int, url: str) -> str:
    """``url`` (made through one balancer) sent to the balancer of replica ``via``."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"127.0.0.1:{cluster.via[via].port}").geturl()


@pytest.mark.parametrize("service", ["vault", "arc"])
def test_a_preauthorized_url_made_by_one_is_honoured_by_the_other(cluster, service):
    base = unique(service)
    data = os.urandom(100_000)
    with cluster.client(via=0) as c:
        mkdir(c, service, base)
        put_url = negotiate(c, service, f"{base}/f.bin", "pushToVoSpace", "httpsput")
        assert f":{cluster.via[0].port}/" in put_url
    with httpx.Client(verify=False, timeout=60) as anon:
        assert anon.put(on(cluster, 1, put_url), content=data).status_code == 201
    with cluster.client(via=1) as c:
        get_url = negotiate(c, service, f"{base}/f.bin", "pullFromVoSpace", "httpsget")
    with httpx.Client(verify=False, timeout=60, follow_redirects=True) as anon:
        got = anon.get(on(cluster, 0, get_url))
        assert got.status_code == 200 and got.content == data
        assert anon.get(on(cluster, 0, get_url.replace("f.bin", "g.bin"))).status_code == 403


def wait_final(c: httpx.Client, job: str) -> str:
    for _ in range(30):
        phase = c.get(job + "/phase").text
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            return phase
        c.get(job, params={"WAIT": "10"})
    return phase


def test_async_moves_run_exactly_once_across_replicas(cluster):
    """Jobs created on one replica and started on the other: every move runs once (a
    second run would fail with NodeNotFound or move the node again), any replica reports it."""
    service, base = "vault", unique("vault")
    moves = 8
    with cluster.client(via=0) as c0, cluster.client(via=1) as c1:
        mkdir(c0, service, base)
        mkdir(c0, service, f"{base}/dest")
        for i in range(moves):
            assert c0.put(f"/vault/files/{base}/f{i}", content=b"%d" % i).status_code == 201
        jobs = []
        for i in range(moves):
            made, started = (c0, c1) if i % 2 else (c1, c0)
            r = made.post("/vault/transfers", content=transfer_doc(
                Svc(service), f"{base}/f{i}", f"{base}/dest/g{i}", False),
                headers={"Content-Type": "text/xml"})
            assert r.status_code == 303, r.text
            job = urlsplit(r.headers["location"]).path
            assert started.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
            jobs.append(job)
        assert [wait_final(c0, job) for job in jobs] == ["COMPLETED"] * moves
        assert [c1.get(job + "/phase").text for job in jobs] == ["COMPLETED"] * moves
        listing = c1.get(f"/vault/nodes/{base}/dest").text
        for i in range(moves):
            assert f"g{i}<" in listing or f"/g{i}\"" in listing
            assert c1.get(f"/vault/files/{base}/dest/g{i}", follow_redirects=True).content \
                == b"%d" % i
            assert c1.get(f"/vault/nodes/{base}/f{i}").status_code == 404


def test_a_group_change_on_one_replica_applies_on_the_next_request_to_the_other(cluster):
    group = f"g{uuid.uuid4().hex[:8]}"
    base = unique("vault")
    with cluster.client(via=0) as alice0, cluster.client("bob", via=1) as bob1:
        assert alice0.put(f"/ac/groups/{group}").status_code in (200, 201)
        mkdir(alice0, "vault", base)
        body = container("vault", base, '<vos:property uri="ivo://ivoa.net/vospace/core#'
                         f'groupread">{group}</vos:property>')
        r = alice0.post(f"/vault/nodes/{base}", content=body, headers={"Content-Type": "text/xml"})
        assert r.status_code == 200, r.text
        # Readers need read access to every ancestor: alice's home is listable by all.
        home = container("vault", "alice", '<vos:property uri="ivo://ivoa.net/vospace/'
                         'core#ispublic">true</vos:property>')
        assert alice0.post("/vault/nodes/alice", content=home,
                           headers={"Content-Type": "text/xml"}).status_code == 200
        assert bob1.get(f"/vault/nodes/{base}").status_code == 403
        assert alice0.put(f"/ac/groups/{group}/userMembers/bob").status_code in (200, 201, 204)
        assert bob1.get(f"/vault/nodes/{base}").status_code == 200
        assert alice0.delete(f"/ac/groups/{group}/userMembers/bob").status_code in (200, 204)
        assert bob1.get(f"/vault/nodes/{base}").status_code == 403


def test_a_password_change_applies_on_the_next_request_to_every_replica(cluster):
    """Replicas remember good Basic passwords for a while (argon2 is costly), but never past
    a change: the old password is refused at once everywhere, the new one accepted."""
    old, new = "first-password-1", "second-password-2"
    assert cluster.vospace("user", "passwd", "bob", "--password-stdin",
                           stdin=old + "\n").returncode == 0

    def whoami(via: int, password: str) -> int:
        with httpx.Client(base_url=cluster.via[via].url, verify=False, timeout=60) as c:
            return c.get("/ac/whoami", auth=("bob", password)).status_code

    assert [whoami(0, old), whoami(1, old)] == [200, 200]
    assert cluster.vospace("user", "passwd", "bob", "--password-stdin",
                           stdin=new + "\n").returncode == 0
    assert [whoami(0, old), whoami(1, old)] == [401, 401]
    assert [whoami(0, new), whoami(1, new)] == [200, 200]


def test_a_session_ticket_made_by_one_replica_works_once_through_the_other(cluster):
    """Session hosts through nginx: the ticket one replica issues the other redeems, once;
    the pass it buys opens the session through either; app paths on the platform redirect."""
    with cluster.client("alice", via=0) as one:
        r = one.post("/skaha/v1/session", data={"name": "tickets", "type": "desktop",
                                                "image": "images.canfar.net/skaha/desktop:1.0"})
        assert r.status_code == 200, r.text
        sid = r.text.strip()
        try:
            location = httpx.URL(one.get(f"/session-ticket/{sid}").headers["location"])
            assert (location.host, location.port) == (f"{sid}.sessions.localhost",
                                                      cluster.via[0].port)
            passes = []
            for via, expected in ((1, 303), (0, 403)):
                balancer = cluster.via[via]
                with httpx.Client(base_url=balancer.url, verify=False, headers={
                        "Host": f"{sid}.sessions.localhost:{balancer.port}"}) as host:
                    r = host.get(location.raw_path.decode())
                    assert r.status_code == expected, r.text
                    passes += [(k, v) for k, v in host.cookies.items()
                               if k.removeprefix("__Host-") == "vospace_session_pass"]
            assert len(passes) == 1
            with httpx.Client(base_url=cluster.via[0].url, verify=False, headers={
                    "Host": f"{sid}.sessions.localhost:{cluster.via[0].port}",
                    "Cookie": "=".join(passes[0])}) as host:
                assert host.get(f"/session/desktop/{sid}/").status_code in (200, 503)
            with cluster.client("alice") as balanced:
                r = balanced.get(f"/session/desktop/{sid}/")
                assert r.status_code == 307
                assert r.headers["location"] == (f"https://{sid}.sessions.localhost:"
                                                 f"{cluster.balancer.port}/session/desktop/{sid}/")
        finally:
            one.delete(f"/skaha/v1/session/{sid}")


def test_sigterm_hands_a_running_job_to_the_other_replica(cluster):
    """A recursive delete running on a replica told to stop goes back to the queue (it is
    idempotent) and the other replica finishes it."""
    base = unique("arc")
    folder = os.path.join(cluster.env["VOSPACE_ARC_ROOT"], base, "big")
    os.makedirs(folder)
    # written on disk, as a session would; enough files that the delete outlasts the
    # PHASE=RUN inline budget even on an idle machine (20,000 did not)
    for i in range(120_000):
        os.close(os.open(os.path.join(folder, f"f{i:06d}"), os.O_CREAT | os.O_WRONLY, 0o644))
    with cluster.client(via=0) as c0:
        r = c0.post("/arc/async-delete", data={"target": Svc("arc").uri(f"{base}/big")})
        job = urlsplit(r.headers["location"]).path
        assert c0.post(job + "/phase", data={"PHASE": "RUN"}).status_code == 303
        assert c0.get(job + "/phase").text == "EXECUTING"  # past the inline budget
    cluster.replicas[0].proc.send_signal(signal.SIGTERM)
    assert cluster.replicas[0].proc.wait(60) in (0, -signal.SIGTERM)
    log = Path(cluster.replicas[0].log_path).read_text()
    assert f"job {job.rsplit('/', 1)[1]} interrupted by a server shutdown: queued again" in log
    with cluster.client(via=1) as c1:
        assert wait_final(c1, job) == "COMPLETED"
        assert c1.get(f"/arc/nodes/{base}/big").status_code == 404
    assert not os.path.exists(folder)
    cluster.replicas[0].start()


class SlowUpload:
    """The body of one upload attempt, sent in small chunks with pauses, so that a replica
    can be killed while bodies are in flight; records how far it got."""

    CHUNK = 64 * 1024

    def __init__(self, data: bytes, pause: float) -> None:
        self.data, self.pause = data, pause
        self.sent = 0
        self.done_sending = False
        self.answered = False

    def __iter__(self):
        for start in range(0, len(self.data), self.CHUNK):
            yield self.data[start:start + self.CHUNK]
            self.sent = start + self.CHUNK
            time.sleep(self.pause)
        self.done_sending = True


def test_a_replica_killed_during_uploads_loses_nothing_and_leaves_nothing(cluster):
    """20 uploads through the balancer, 4 at a time; replica 0 is SIGKILLed while several
    bodies are half sent (none waiting for its answer). Each upload is retried by its client
    on a failure and completes through the other replica; fsck then finds nothing."""
    base = unique("vault")
    with cluster.client() as c:
        mkdir(c, "vault", base)
    contents = {f"{base}/u{i:02d}": os.urandom(2 * 1024 * 1024 + i) for i in range(20)}
    attempts: list[SlowUpload] = []
    lock = threading.Lock()
    failures: dict[str, int] = {}
    results: dict[str, int] = {}

    def upload(path: str) -> None:
        with cluster.client() as c:
            for _ in range(5):
                body = SlowUpload(contents[path], pause=0.02)
                with lock:
                    attempts.append(body)
                try:
                    r = c.put(f"/vault/files/{path}", content=body)
                    if r.status_code == 201:
                        results[path] = r.status_code
                        return
                    failures[path] = r.status_code
                except httpx.TransportError:
                    failures[path] = -1
                finally:
                    body.answered = True
                time.sleep(0.5)  # a client's pause before it tries again

    queue = list(contents)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop(0)
            upload(path)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    def uploads_half_sent() -> bool:
        with lock:
            active = [a for a in attempts if a.sent and not a.done_sending]
            waiting = [a for a in attempts if a.done_sending and not a.answered]
            halfway = [a for a in active if 0.2 < a.sent / len(a.data) < 0.8]
        return len(halfway) >= 3 and len(active) == len(halfway) and not waiting and \
            len(results) >= 2
    try:
        killed = wait_until(uploads_half_sent, 60, "uploads half sent", interval=0.005,
                            retry=())
        cluster.kill(0)
    except TimeoutError:
        killed = False
    for w in workers:
        w.join(300)
    assert killed, "never found uploads half sent to kill under"
    assert set(results) == set(contents), f"failed: {failures}"
    assert failures, "no upload was interrupted by the kill"
    with cluster.client(via=1) as c:
        for path, data in contents.items():
            r = c.get(f"/vault/files/{path}", follow_redirects=True)
            assert r.status_code == 200 and hashlib.md5(r.content).digest() == \
                hashlib.md5(data).digest()
    fsck = cluster.vospace("fsck")
    assert fsck.returncode == 0 and fsck.stdout.strip().endswith("fsck: 0 problem(s)"), \
        fsck.stdout
    cluster.replicas[0].start()


def test_sigterm_lets_an_upload_in_flight_finish(cluster):
    """A replica told to stop (rolling update, scale-down) takes no new requests but
    finishes the upload it is receiving; the balancer sends the next requests elsewhere."""
    path = f"{unique('vault')}.bin"
    data = os.urandom(1024 * 1024)
    body = SlowUpload(data, pause=0.05)  # about 0.8 s of body
    answer: list[httpx.Response] = []
    with cluster.client(via=0) as c0:
        sender = threading.Thread(target=lambda: answer.append(
            c0.put(f"/vault/files/{path}", content=body)))
        sender.start()
        wait_until(lambda: body.sent >= len(data) // 4, 60, "a quarter of the body sent",
                   interval=0.01, retry=())
        cluster.replicas[0].proc.send_signal(signal.SIGTERM)
        sender.join(60)
    assert answer and answer[0].status_code == 201, answer and answer[0].text
    assert cluster.replicas[0].proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises it
    with cluster.client() as c:  # the balancer: replica 1 only now
        got = c.get(f"/vault/files/{path}", follow_redirects=True)
        assert got.status_code == 200 and got.content == data
    cluster.replicas[0].start()
