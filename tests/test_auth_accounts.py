"""Users, passwords, tokens, login, Basic, session cookie, groups API, OIDC, audit log.

One dedicated server (configured for OIDC with a locally generated RS256 key; no network).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, select

from vospace_server.auth.authenticate import Authenticator
from vospace_server.auth.groups import GroupStore
from vospace_server.auth.store import AuthStore
from vospace_server.auth.throttle import FAILURE_WINDOW_S, login_failures
from vospace_server.migrations import ensure_schema
from vospace_server.protocol.faults import TooManyRequests
from vospace_server.storage.vault.schema import make_engine

from .clock import ManualClock
from .harness import VOSPACE, Server, free_port
from .waiting import wait_until

ISSUER = "https://idp.example.org"
AUDIENCE = "vospace-test"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def keys() -> dict[str, RSAKey]:
    return {"good": RSAKey.generate_key(2048, parameters={"kid": "k1"}),
            "rogue": RSAKey.generate_key(2048, parameters={"kid": "k1"})}


@pytest.fixture(scope="module")
def server(tmp_path_factory, keys):
    data_dir = str(tmp_path_factory.mktemp("acct"))
    jwks = os.path.join(data_dir, "jwks.json")
    with open(jwks, "w") as fh:
        json.dump(KeySet([keys["good"]]).as_dict(private=False), fh)
    env = dict(os.environ, VOSPACE_OIDC_ISSUER=ISSUER, VOSPACE_OIDC_AUDIENCE=AUDIENCE,
               VOSPACE_OIDC_JWKS_FILE=jwks)
    env.pop("VOSPACE_CONFIG", None)
    srv = Server(data_dir=data_dir, port=free_port(), env=env)
    srv.add_user("admin", admin=True)
    for user in ("alice", "bob", "carol"):
        srv.add_user(user)
    create = subprocess.run([VOSPACE, "--data-dir", data_dir, "user", "create", "dora",
                             "--password-stdin"], input=PASSWORD + "\n", env=env,
                            capture_output=True, text=True, timeout=60)
    assert create.returncode == 0, create.stderr
    srv.start()
    yield srv
    srv.stop()


def anon(server: Server, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=server.url, verify=False, timeout=30, **kwargs)


def test_user_create_provisions_homes_and_lists(server: Server) -> None:
    listing = server.vospace("user", "list").stdout
    assert "dora\t-" in listing and "admin\tadmin" in listing
    with anon(server, auth=("dora", PASSWORD)) as c:
        assert c.get("/vault/nodes/dora").status_code == 200
        assert c.get("/arc/nodes/home/dora").status_code == 200
    assert server.vospace("user", "create", "bad name").returncode == 2
    short = subprocess.run([VOSPACE, "--data-dir", server.data_dir, "user", "passwd", "dora",
                            "--password-stdin"], input="short\n", env=server.env,
                           capture_output=True, text=True)
    assert short.returncode == 2 and "at least" in short.stderr


def test_login_returns_token_and_session_cookie(server: Server) -> None:
    with anon(server) as c:
        r = c.post("/ac/login", data={"username": "dora", "password": PASSWORD})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "set-cookie" not in r.headers
        token = r.text
        who = c.get("/ac/whoami", headers={"Authorization": f"Bearer {token}"})
        assert who.text == "dora" and who.headers["X-VO-Authenticated"] == "dora"
        r = c.post("/ac/login", data={"username": "dora", "password": PASSWORD,
                                      "session": "true"})
        cookie = r.headers["set-cookie"]
        for flag in ("__Host-vospace_session=", "HttpOnly", "Secure", "SameSite=lax", "Path=/"):
            assert flag in cookie
        assert "domain" not in cookie.lower()  # a __Host- cookie is host-only
    with anon(server, cookies={"vospace_session": r.text}) as planted:
        # over TLS only the prefixed name counts: the bare one is what a sibling host under
        # the same domain could set for the whole domain (Domain=...), so it is not ours
        assert planted.get("/ac/whoami").text != "dora"
    with anon(server, cookies={"__Host-vospace_session": r.text}) as browser:
        assert browser.get("/ac/whoami").text == "dora"
        forged = browser.post("/ac/logout")  # the cookie alone: a forged request, refused
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert browser.get("/ac/whoami").text == "dora"
        assert browser.post("/ac/logout", headers={"Authorization": f"Bearer {r.text}"}
                            ).status_code == 204
        assert browser.get("/ac/whoami").status_code == 401  # revoked with the logout


def test_login_refusals_challenge_with_login_url(server: Server) -> None:
    with anon(server) as c:
        for form in ({"username": "dora", "password": "wrong password"},
                     {"username": "nobody", "password": PASSWORD}):
            r = c.post("/ac/login", data=form)
            assert r.status_code == 401 and r.text.startswith("NotAuthenticated")
            challenges = r.headers.get_list("www-authenticate")
            assert any(f'login_url="{server.url}/ac/login"' in h for h in challenges)
            assert any(h.startswith("ivoa_bearer ") for h in challenges)
        assert c.post("/ac/login", data={"username": "dora"}).status_code == 400
        assert c.post("/ac/login", content=b"x" * 20000).status_code == 413
        r = c.get("/vault/nodes/dora")
        assert r.status_code == 401 and "www-authenticate" in r.headers


def test_basic_auth(server: Server) -> None:
    with anon(server, auth=("dora", PASSWORD)) as c:
        r = c.get("/vault/nodes/dora")
        assert r.status_code == 200 and r.headers["X-VO-Authenticated"] == "dora"
    with anon(server, auth=("dora", "not the password")) as c:
        assert c.get("/vault/nodes/dora").status_code == 401
    with anon(server, headers={"Authorization": "Basic !!notbase64"}) as c:
        assert c.get("/vault/nodes/dora").status_code == 401


def test_token_list_revoke_and_expiry(server: Server) -> None:
    token = server.vospace("token", "create", "carol", "--label", "laptop").stdout.strip()
    short = server.vospace("token", "create", "carol",
                           "--expires", "2020-01-01T00:00:00Z").stdout.strip()
    listing = server.vospace("token", "list", "carol").stdout
    assert "laptop" in listing and "expired" in listing
    assert token not in listing  # secrets are never shown
    token_id = next(line.split("\t")[0] for line in listing.splitlines() if "laptop" in line)
    with anon(server) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/ac/whoami", headers=auth).text == "carol"
        assert c.get("/ac/whoami", headers={"Authorization": f"Bearer {short}"}).status_code == 401
        assert server.vospace("token", "revoke", token_id).returncode == 0
        assert c.get("/ac/whoami", headers=auth).status_code == 401
        # the CADC client's header works as well as Bearer
        assert c.get("/ac/whoami", headers={
            "X-CADC-DelegationToken": server.tokens["carol"]}).text == "carol"
    assert "revoked" in server.vospace("token", "list", "carol").stdout
    assert server.vospace("token", "revoke", "0123456789ab").returncode == 2


def test_remembered_token_still_expires(tmp_path) -> None:
    """The server remembers a token's caller between requests; its expiry still holds
    (the token store's clock is moved past the expiry instead of waiting for it)."""
    clock = ManualClock(time.time())
    engine = make_engine(f"sqlite:///{tmp_path}/meta.db")
    ensure_schema(engine)
    store = AuthStore(engine, clock=clock)
    authenticator = Authenticator(store, GroupStore(engine, "localhost"))
    store.ensure_user("carol")
    token = store.create_token("carol", lifetime_s=3)
    try:
        assert [authenticator.from_token(token).name for _ in range(3)] == ["carol"] * 3
        clock.advance(3.5)
        assert authenticator.from_token(token) is None
    finally:
        engine.dispose()


def test_wrong_passwords_are_forgotten_after_the_window(tmp_path) -> None:
    """The count lives in the database: a second Authenticator (another process's) sees the
    first's failures; after the window the pair may try again and old rows are gone."""
    clock = ManualClock(time.time())
    engine = make_engine(f"sqlite:///{tmp_path}/meta.db")
    ensure_schema(engine)
    store = AuthStore(engine, clock=clock)
    store.ensure_user("carol")
    store.set_password("carol", PASSWORD)
    here, there = (Authenticator(store, GroupStore(engine, "localhost")) for _ in range(2))
    try:
        for _ in range(10):
            assert here.from_password("carol", "wrong guess", "10.0.0.1") is None
        with pytest.raises(TooManyRequests):
            there.from_password("carol", PASSWORD, "10.0.0.1")
        assert there.from_password("carol", PASSWORD, "10.0.0.2").name == "carol"
        clock.advance(FAILURE_WINDOW_S + 1)
        assert there.from_password("carol", "wrong again", "10.0.0.3") is None
        with engine.connect() as conn:  # only the newest failure is left
            assert conn.execute(select(func.count()).select_from(login_failures)).scalar() == 1
        assert here.from_password("carol", PASSWORD, "10.0.0.1").name == "carol"
    finally:
        engine.dispose()


def test_groups_service(server: Server) -> None:
    g, inner = f"proj-{uuid.uuid4().hex[:6]}", f"core-{uuid.uuid4().hex[:6]}"
    with server.client("alice") as alice, server.client("bob") as bob, \
            server.client("carol") as carol, anon(server) as nobody:
        assert alice.put(f"/ac/groups/{g}").status_code == 201
        assert alice.put(f"/ac/groups/{g}").status_code == 409
        assert bob.put(f"/ac/groups/{g}/userMembers/bob").status_code == 403
        assert alice.put(f"/ac/groups/{g}/userAdmins/bob").status_code == 200
        assert bob.put(f"/ac/groups/{g}/userMembers/carol").status_code == 200
        assert bob.put(f"/ac/groups/{g}/userMembers/nosuchuser").status_code == 404
        assert bob.put(f"/ac/groups/{inner}").status_code == 201
        assert bob.put(f"/ac/groups/{inner}/userMembers/dora").status_code == 200
        assert alice.put(f"/ac/groups/{g}/groupMembers/{inner}"
                         ).status_code == 200
        assert bob.put(f"/ac/groups/{inner}/groupMembers/{g}").status_code == 400  # cycle
        info = alice.get(f"/ac/groups/{g}").json()
        assert info["userMembers"] == ["carol"] and info["groupMembers"] == [inner]
        assert info["userAdmins"] == ["bob"] and info["uri"] == f"ivo://localhost/gms?{g}"
        r = carol.get("/ac/search", params={"group": [g, f"ivo://localhost/gms?{inner}",
                                                       "nosuch"]})
        assert r.headers["content-type"].startswith("text/plain") and r.text == f"{g}\n"
        with anon(server, auth=("dora", PASSWORD)) as dora:  # nested membership
            assert set(dora.get("/ac/search").text.split()) == {
                f"ivo://localhost/gms?{g}", f"ivo://localhost/gms?{inner}"}
        assert carol.get("/ac/users/dora/groups").status_code == 403
        assert server.client("admin").get("/ac/users/carol/groups").text == \
            f"ivo://localhost/gms?{g}\n"
        assert nobody.get("/ac/search", params={"group": g}).status_code == 401
        assert carol.delete(f"/ac/groups/{g}").status_code == 403
        assert alice.delete(f"/ac/groups/{g}/userMembers/carol").status_code == 200
        assert carol.get("/ac/search", params={"group": g}).text == ""
        assert alice.delete(f"/ac/groups/{g}").status_code == 200
        assert alice.get(f"/ac/groups/{g}").status_code == 404
        assert alice.put("/ac/groups/bad%20name").status_code == 400


def test_group_names_normalized_on_input(server: Server) -> None:
    path = f"alice/n-{uuid.uuid4().hex[:6]}"
    body = ('<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'uri="vos://localhost~vault/{path}" xsi:type="vos:ContainerNode"><vos:properties>'
            '<vos:property uri="ivo://ivoa.net/vospace/core#groupread">g1 NONE '
            'ivo://localhost/gms?g2 g1</vos:property></vos:properties></vos:node>')
    with server.client("alice") as c:
        r = c.put(f"/vault/nodes/{path}", content=body)
        assert r.status_code == 201, r.text
        assert ">ivo://localhost/gms?g1 ivo://localhost/gms?g2<" in r.text
        bad = c.put(f"/vault/nodes/{path}-bad", content=body.replace(path, path + "-bad")
                    .replace("g1 NONE", "bad/name"))
        assert bad.status_code == 400 and bad.text.startswith("InvalidArgument")


def _jwt(key: RSAKey, **claims) -> str:
    base = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300,
            "preferred_username": "alice"}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, base | claims, key)


def test_oidc_tokens(server: Server, keys) -> None:
    def whoami(token: str) -> httpx.Response:
        with anon(server, headers={"Authorization": f"Bearer {token}"}) as c:
            return c.get("/ac/whoami")

    good = whoami(_jwt(keys["good"]))
    assert good.status_code == 200 and good.text == "alice"
    for bad in (_jwt(keys["rogue"]), _jwt(keys["good"], iss="https://evil.example.org"),
                _jwt(keys["good"], aud="someone-else"), _jwt(keys["good"], exp=1000),
                _jwt(keys["good"], preferred_username="nosuchuser")):
        assert whoami(bad).status_code == 401


def test_writes_and_denials_are_logged(server: Server) -> None:
    path = f"bob/audited-{uuid.uuid4().hex[:6]}"
    body = ('<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'uri="vos://localhost~vault/{path}" xsi:type="vos:ContainerNode"/>')
    with server.client("bob") as bob, server.client("carol") as carol:
        assert bob.put(f"/vault/nodes/{path}", content=body).status_code == 201
        assert carol.delete(f"/vault/nodes/{path}").status_code == 403
        created = bob.get(f"/vault/nodes/{path}").text
    assert "#creator\" readOnly=\"true\">bob<" in created

    def both_logged() -> list[dict]:  # the lines are written once the answers were sent
        with open(server.log_path) as fh:
            records = [json.loads(line.split("vospace.audit: ", 1)[1])
                       for line in fh if "vospace.audit: " in line]
        statuses = {r["status"] for r in records if r["path"] == f"/vault/nodes/{path}"}
        return records if {201, 403} <= statuses else []
    records = wait_until(both_logged, 10, "the audit lines of the write and the denial")
    assert all(len(r.pop("request_id")) == 32 for r in records)  # made: clients sent none
    assert {"event": "write", "caller": "bob", "method": "PUT", "path": f"/vault/nodes/{path}",
            "status": 201} in records
    assert any(r["event"] == "denied" and r["caller"] == "carol" and r["method"] == "DELETE"
               and r["path"] == f"/vault/nodes/{path}" and r["status"] == 403 for r in records)


def test_password_guessing_is_throttled_per_user_and_client(server: Server) -> None:
    with anon(server) as c:
        for _ in range(10):
            r = c.post("/ac/login", data={"username": "guessed", "password": "wrong guess"})
            assert r.status_code == 401
        r = c.post("/ac/login", data={"username": "guessed", "password": "wrong guess"})
        assert r.status_code == 429 and r.headers["Retry-After"] == "60"
        with anon(server, auth=("guessed", "again")) as basic:
            assert basic.get("/ac/whoami").status_code == 429
        # other users are not locked out by someone guessing at "guessed"
        r = c.post("/ac/login", data={"username": "dora", "password": PASSWORD})
        assert r.status_code == 200
