"""Several groups per node with the real CADC client, on vault and arc.

``vchmod g+r node "G1 G2"`` sends ``ivo://cadc.nrc.ca/gms?G1 ivo://cadc.nrc.ca/gms?G2``; the
server stores every group, grants access for membership of any of them (resolving the
client's spelling to its own groups), and gives the URIs back as sent, so ``vls -l``/``-g``
(which strip exactly CADC's prefix) print bare names as on CADC's services.
"""
from __future__ import annotations

import pytest

from .test_cadc_client_inherit import new_group, shared_folder
from .test_cadc_client_nodes import CORE, CadcClient, ok

CADC_GMS = "ivo://cadc.nrc.ca/gms?"


@pytest.fixture(params=["vault", "arc"])
def shared(request, sqlite_server, tmp_path) -> CadcClient:
    if "carol" not in sqlite_server.tokens:
        sqlite_server.add_user("carol")
    return shared_folder(sqlite_server, request.param, tmp_path)


def columns(cadc: CadcClient, flag: str, folder: str, name: str) -> list[str]:
    listing = ok(cadc.run("vls", flag, cadc.short(folder))).stdout.splitlines()
    return next(line.split() for line in listing if line.split()[-1] == name)


def test_two_read_groups_stored_as_sent_and_listed_bare(shared):
    cadc = shared
    g1, g2 = new_group(cadc, ["bob"]), new_group(cadc, [])
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), f"{g1} {g2}"))
    assert cadc.props(cadc.base)[CORE + "groupread"] == f"{CADC_GMS}{g1} {CADC_GMS}{g2}"
    folder, name = cadc.base.rpartition("/")[::2]
    long = columns(cadc, "-l", folder, name)
    assert long[:5] == ["drw-r-----", "alice", g1, g2, "NONE"]
    assert columns(cadc, "-g", folder, name)[1:4] == [g1, g2, "NONE"]
    assert ok(cadc.run("vls", cadc.short(cadc.base), user="bob")).returncode == 0  # via g1
    refused = cadc.run("vls", cadc.short(cadc.base), user="carol")
    assert refused.returncode != 0 and "PermissionDenied" in refused.stderr


def test_membership_of_any_group_grants_access(shared):
    cadc = shared
    g1, g2, g3 = new_group(cadc, []), new_group(cadc, []), new_group(cadc, ["bob"])
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), f"{g1} {g2} {g3}"))
    assert cadc.props(cadc.base)[CORE + "groupread"].split() == [
        CADC_GMS + g for g in (g1, g2, g3)]
    ok(cadc.run("vls", cadc.short(cadc.base), user="bob"))  # bob is only in the third
    w1, w2 = new_group(cadc, []), new_group(cadc, ["carol"])
    ok(cadc.run("vchmod", "g+w", cadc.short(cadc.base), f"{w1} {w2}"))
    ok(cadc.run("vmkdir", cadc.short(f"{cadc.base}/by-carol"), user="carol"))
    assert columns(cadc, "-l", cadc.base, "by-carol")[1] == "carol"
    refused = cadc.run("vmkdir", cadc.short(f"{cadc.base}/by-bob"), user="bob")
    assert refused.returncode != 0  # bob may read (g3) but is in no write group
    folder, name = cadc.base.rpartition("/")[::2]
    line = columns(cadc, "-l", folder, name)
    assert line[0] == "drw-rw----" and line[2:7] == [g1, g2, g3, w1, w2]


def test_removing_the_groups_takes_access_away(shared):
    cadc = shared
    g1, g2 = new_group(cadc, []), new_group(cadc, ["bob"])
    ok(cadc.run("vchmod", "g+r", cadc.short(cadc.base), f"{g1} {g2}"))
    ok(cadc.run("vls", cadc.short(cadc.base), user="bob"))
    ok(cadc.run("vchmod", "g-r", cadc.short(cadc.base)))
    assert cadc.props(cadc.base).get(CORE + "groupread", "NONE") in ("", "NONE")
    assert cadc.run("vls", cadc.short(cadc.base), user="bob").returncode != 0
    too_many = cadc.run("vchmod", "g+r", cadc.short(cadc.base), "a b c d e")
    assert too_many.returncode != 0  # the CADC tool's own limit
