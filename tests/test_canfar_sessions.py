"""CADC's ``canfar`` client (1.5.2, CLI and Python API) drives our /skaha sessions unchanged.

A module server runs sessions with the local runner (bubblewrap sandboxes). The client is the
real one from ``.canfar-venv``, configured as a user does it (``CANFAR_URL``, ``CANFAR_TOKEN``,
``SSL_CERT_FILE``); what it shows is compared with what our API answers. Where canfar itself
decides the outcome (its image-name normalisation, its exit codes) the tests pin that
behaviour down so a client upgrade that changes it is noticed.
"""
from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from .canfar_helpers import Canfar
from .harness import CADC_BIN, CANFAR_BIN, make_server
from .sessions_helpers import (API, FINAL, SOCKET_APP, SOCKET_APP_COMMAND, catalogue,
                               catalogue_image, end_leftovers, session, session_host, text,
                               wait_status)
from .waiting import wait_until

TERMINAL = "skaha/terminal:1.1.2"      # canfar adds images.canfar.net/ itself
PYTHON = "skaha/python:3.11"
CATALOGUE = catalogue(
    ["images.canfar.net"],
    catalogue_image("images.canfar.net/skaha/terminal:1.1.2", ["headless"],
                    ["bash", "-c", "echo no command given"], requires="bash"),
    catalogue_image(SOCKET_APP, ["contributed", "notebook", "desktop", "carta", "firefly"],
                    SOCKET_APP_COMMAND))
FAILED_CREATE = "Failed to create session(s)."
URL_PATHS = {"notebook": "notebook", "desktop": "desktop", "carta": "carta",
             "firefly": "firefly", "contributed": "contrib"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("canfar-sessions")
    images_file = root / "images.toml"
    images_file.write_text(CATALOGUE)
    srv = make_server(str(root), extra_env={"VOSPACE_SESSION_IMAGES": str(images_file)})
    yield srv
    srv.stop()
    assert end_leftovers(srv) == []


@pytest.fixture
def canfar(server, tmp_path) -> Canfar:
    return Canfar(server, str(tmp_path))


def tag() -> str:
    return uuid.uuid4().hex[:8]


def created(result) -> list[str]:
    """The ids in canfar's human ``create`` output (one session, or a list for replicas)."""
    one = re.findall(r"\(ID: (\w+)\)", result.stdout)
    return one or re.findall(r"^\s+- (\w+)$", result.stdout, re.M)


def succeeded(canfar: Canfar, *session_ids: str) -> list[dict]:
    """Wait for the sessions to end; each must have succeeded (else its logs explain why)."""
    with canfar.server.client(canfar.user) as http:
        finals = [wait_status(http, sid, FINAL, timeout=120) for sid in session_ids]
        for final in finals:
            assert final["status"] == "Succeeded", (final, text(http, final["id"], "logs"))
    return finals


def api_session(canfar: Canfar, session_id: str) -> dict:
    with canfar.server.client(canfar.user) as http:
        return session(http, session_id)


def api_names(canfar: Canfar) -> dict[str, str]:
    """name -> id of every session of the user the API lists."""
    with canfar.server.client(canfar.user) as http:
        return {s["name"]: s["id"] for s in http.get(f"{API}/session").json()}


def gone(canfar: Canfar, session_id: str, timeout: float = 60) -> bool:
    """A deleted session leaves the listing (skaha forgets deleted sessions)."""
    with canfar.server.client(canfar.user) as http:
        try:
            return wait_until(lambda: http.get(f"{API}/session/{session_id}").status_code == 404,
                              timeout, f"session {session_id} to be forgotten", interval=0.2)
        except TimeoutError:
            return False


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


def test_headless_job_writes_arc_home_and_vcp_reads_its_output(canfar, tmp_path):
    t = tag()
    script = tmp_path / "job.sh"
    script.write_text(f'echo "job $skaha_sessionid of $(id -un), replica $REPLICA_ID/$REPLICA_COUNT"\n'
                      f'echo "result for $skaha_username" > /arc/home/alice/out-{t}.txt\n')
    assert canfar.vcp(str(script), f"arc:home/alice/job-{t}.sh").returncode == 0

    made = canfar.ok("create", "--name", f"job-{t}", "headless", TERMINAL,
                     "--", "bash", f"/arc/home/alice/job-{t}.sh")
    [session_id] = created(made)
    assert f"Successfully created session 'job-{t}'" in made.stdout
    [final] = succeeded(canfar, session_id)
    assert final["image"] == "images.canfar.net/skaha/terminal:1.1.2"

    logs = canfar.ok("logs", session_id).stdout
    assert f"Logs for session {session_id}" in logs
    assert f"job {session_id} of alice, replica 1/1" in logs
    out = tmp_path / "out.txt"
    fetched = canfar.vcp(f"arc:home/alice/out-{t}.txt", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert out.read_text() == "result for alice\n"
    with canfar.server.client("alice") as http:
        node = http.get(f"/arc/nodes/home/alice/out-{t}.txt").text
    assert ">alice<" in node  # creator: the file belongs to the session's user

    events = canfar.ok("events", session_id).stdout
    assert f"Server events for {session_id}" in events
    assert re.search(r"Normal\s+\S+", events), events


def test_ps_json_info_renew_and_delete_agree_with_the_api(canfar):
    t = tag()
    made = canfar.ok("create", "-o", "json", "-n", f"long-{t}", "--cpu", "2", "--memory", "4",
                     "headless", TERMINAL, "--", "sleep", "300")
    [session_id] = json.loads(made.stdout)
    with canfar.server.client("alice") as http:
        wait_status(http, session_id, ("Running",))

    listed = json.loads(canfar.ok("ps", "--all", "-o", "json").stdout)
    [mine] = [s for s in listed if s["id"] == session_id]
    api = api_session(canfar, session_id)
    for key, value in api.items():
        if key in ("startTime", "expiryTime"):
            assert datetime.fromisoformat(mine[key].replace("Z", "+00:00")) == \
                datetime.fromisoformat(value.replace("Z", "+00:00")), key
        elif key not in ("ramInUse", "cpuCoresInUse"):  # measured anew on each request
            assert mine[key] == value, key
    assert isinstance(mine["ramInUse"], str) and isinstance(mine["cpuCoresInUse"], str)
    assert (mine["name"], mine["type"], mine["status"], mine["userid"]) == \
        (f"long-{t}", "headless", "Running", "alice")
    assert (mine["requestedCPUCores"], mine["requestedRAM"], mine["isFixedResources"]) == \
        ("2", "4G", True)

    table = canfar.ok("ps").stdout
    assert "CANFAR Sessions" in table and session_id in table and f"long-{t}" in table
    def quiet(*args: str) -> list[str]:
        return canfar.ok("ps", "-q", *args).stdout.split()
    assert session_id in quiet()
    assert session_id in quiet("--kind", "headless", "--status", "Running")
    assert session_id not in quiet("--kind", "notebook")
    assert session_id not in quiet("--all", "--status", "Succeeded")

    info = canfar.ok("info", session_id).stdout
    assert f"CANFAR Session Info for {session_id}" in info
    for shown in (f"long-{t}", "Running", "headless", "alice",
                  "images.canfar.net/skaha/terminal:1.1.2", "of 2 core(s)"):
        assert shown in info, shown

    bob = Canfar(canfar.server, canfar.home, user="bob")  # another user sees nothing of it
    assert session_id not in bob.ok("ps", "--all", "-q").stdout.split()
    assert "No information found" in bob.ok("info", session_id).stderr
    assert f"{{'{session_id}': False}}" in bob.ok("delete", "--force", session_id).stdout
    assert api_session(canfar, session_id)["status"] == "Running"

    renewed = canfar.ok("renew", session_id)
    assert "Successfully renewed 1 session(s)." in renewed.stdout
    assert api_session(canfar, session_id)["expiryTime"] >= api["expiryTime"]

    deleted = canfar.ok("delete", "--force", session_id)
    assert f"Successfully deleted {{'{session_id}': True}} session(s)." in deleted.stdout
    assert gone(canfar, session_id)
    assert session_id not in canfar.ok("ps", "--all", "-q").stdout.split()


def test_three_replicas_each_see_their_replica_id_then_prune(canfar):
    t = tag()
    code = (f"e=__import__('os').environ;open('/arc/home/alice/rep-{t}-'+e['REPLICA_ID'],'w')"
            f".write(e['REPLICA_ID']+'/'+e['REPLICA_COUNT']+':'+e['skaha_sessionid'])")
    made = canfar.ok("create", "--replicas", "3", "--name", f"rep-{t}", "headless", PYTHON,
                     "--", "python3", "-c", code)
    assert f"Successfully created 3 sessions named 'rep-{t}'" in made.stdout
    ids = created(made)
    assert len(set(ids)) == 3
    finals = succeeded(canfar, *ids)
    assert sorted(s["name"] for s in finals) == [f"rep-{t}-1", f"rep-{t}-2", f"rep-{t}-3"]
    with canfar.server.client("alice") as http:
        for s in finals:
            replica = s["name"].rsplit("-", 1)[1]
            written = http.get(f"/arc/files/home/alice/rep-{t}-{replica}")
            assert written.text == f"{replica}/3:{s['id']}"

    keep = created(canfar.ok("create", "--name", f"keep-{t}", "headless", TERMINAL,
                             "--", "true"))
    succeeded(canfar, *keep)
    pruned = canfar.ok("prune", f"rep-{t}")  # default kind headless, status Succeeded
    assert "Deleted 3 sessions." in pruned.stdout
    assert all(gone(canfar, sid) for sid in ids)
    assert api_names(canfar).get(f"keep-{t}") == keep[0]
    canfar.ok("delete", "--force", *keep)


def test_create_options_env_dry_run_and_what_canfar_refuses_itself(canfar):
    t = tag()
    made = canfar.ok("create", "-n", f"env-{t}", "-e", "FOO=bar=baz", "-e", "SPACED=a b",
                     "headless", TERMINAL, "--", "printenv", "FOO", "SPACED", "REPLICA_COUNT")
    [session_id] = created(made)
    succeeded(canfar, session_id)
    assert "bar=baz\na b\n1" in canfar.ok("logs", session_id).stdout
    flexible = api_session(canfar, session_id)
    assert flexible["isFixedResources"] is False

    dry = canfar.ok("create", "--dry-run", "-n", f"dry-{t}", "--cpu", "2", "--memory", "4",
                    "-e", "A=1", "headless", PYTHON, "--", "echo", "hi")
    assert "Dry run complete." in dry.stdout and "Command: echo" in dry.stdout
    assert f"dry-{t}" not in api_names(canfar)

    # canfar 1.5.2 has no `launch`/`run` aliases, refuses >256 cores and one-part image names
    for alias in ("launch", "run"):
        missing = canfar.run(alias, "headless", PYTHON)
        assert missing.returncode == 2 and "No such command" in missing.stderr
    too_many = canfar.run("create", "--cpu", "300", "headless", PYTHON)
    assert too_many.returncode == 2 and "not in the range" in too_many.stderr
    one_part = canfar.run("create", "-n", f"bare-{t}", "headless", "python")
    assert one_part.returncode == 1 and "invalid image container reference" in one_part.stderr
    assert f"bare-{t}" not in api_names(canfar)


@pytest.mark.parametrize("args", [
    pytest.param(["headless", "images.example.org/evil/miner:1"], id="untrusted-repository"),
    pytest.param(["headless", "skaha/no-such-image:1"], id="unknown-image"),
    pytest.param(["--cpu", "64", "--memory", "4", "headless", PYTHON], id="too-many-cores"),
    pytest.param(["--gpu", "1", "headless", PYTHON], id="no-gpus-here"),
    pytest.param(["notebook", PYTHON], id="image-type-mismatch"),
])
def test_refused_launch_is_canfars_error_and_exit_1(canfar, args):
    name = f"bad-{tag()}"
    refused = canfar.run("create", "-n", name, *args)
    assert refused.returncode == 1
    assert FAILED_CREATE in refused.stderr
    no_traceback(refused)
    assert name not in api_names(canfar)
    machine = canfar.run("create", "-o", "json", "-n", name, *args)
    assert machine.returncode == 1
    assert json.loads(machine.stderr)["code"] == "transport.failure"


def test_missing_session_is_canfars_message_without_a_traceback(canfar):
    # canfar 1.5.2 reports these on stderr but exits 0 (it swallows HTTP errors here); the
    # 404 itself is checked through the Python API below.
    expected = {
        ("info",): "No information found for the specified session(s).",
        ("logs",): "No logs found for the specified session(s).",
        ("events",): "No events found for the specified session(s).",
        ("renew",): "Failed to renew 1 session(s): nosuch12",
        ("open",): "No information found for the specified session(s).",
    }
    for command, message in expected.items():
        result = canfar.run(*command, "nosuch12")
        assert message in result.stderr, (command, result.stderr)
        assert result.returncode == 0
        no_traceback(result)
    deleted = canfar.run("delete", "--force", "nosuch12")
    assert "{'nosuch12': False}" in deleted.stdout
    no_traceback(deleted)


def test_older_v0_prefix_and_a_bad_token(canfar):
    t = tag()
    [job] = created(canfar.ok("create", "-n", f"v0-{t}", "headless", TERMINAL, "--", "true",
                              CANFAR_URL=f"{canfar.server.url}/skaha/v0"))
    succeeded(canfar, job)
    v0 = json.loads(canfar.ok("ps", "--all", "-o", "json",
                              CANFAR_URL=f"{canfar.server.url}/skaha/v0").stdout)
    v1 = json.loads(canfar.ok("ps", "--all", "-o", "json").stdout)
    assert job in {s["id"] for s in v0} and {s["id"] for s in v0} == {s["id"] for s in v1}

    refused = canfar.run("ps", CANFAR_TOKEN="vst_not-a-token")
    assert refused.returncode == 1 and "Unable to list sessions." in refused.stderr
    no_traceback(refused)
    canfar.ok("delete", "--force", job)


def test_python_api_create_fetch_logs_events_renew_destroy_and_errors(canfar):
    t = tag()
    result = canfar.api(f"""
        import time
        from canfar.sessions import Session
        from canfar.exceptions.session import SessionRequestError
        s = Session()
        ids = s.create(name="api-{t}", image="{TERMINAL}", cmd="printenv",
                       args="GREETING REPLICA_ID REPLICA_COUNT", env={{"GREETING": "hello"}},
                       replicas=2)
        while any(i["status"] not in ("Succeeded", "Failed") for i in s.info(ids)):
            time.sleep(0.3)
        [long] = s.create(name="api-long-{t}", image="{TERMINAL}", cmd="sleep", args="300")
        while s.info(long)[0]["status"] != "Running":
            time.sleep(0.3)
        def failure(call):
            try:
                call(Session(errors="raise"))
            except SessionRequestError as e:
                error = next(iter(e.errors.values()))
                return [error.response.status_code, error.response.text]
        errors = {{"info": failure(lambda r: r.info("nosuch12")),
                   "create": failure(lambda r: r.create(name="api-bad-{t}", image="{PYTHON}",
                                                        cores=64, ram=4))}}
        result = {{"ids": ids, "info": s.info(ids), "logs": s.logs(ids), "events": s.events(ids),
                  "fetched": [x["id"] for x in s.fetch(kind="headless")],
                  "running": [x["id"] for x in s.fetch(kind="headless", status="Running")],
                  "renew": s.renew(long), "destroy": s.destroy([long, "nosuch12"]),
                  "errors": errors, "long": long}}
    """)
    ids = result["ids"]
    assert len(ids) == 2
    assert [i["name"] for i in result["info"]] == [f"api-{t}-1", f"api-{t}-2"]
    assert {i["status"] for i in result["info"]} == {"Succeeded"}
    events = {sid: text for entry in result["events"] for sid, text in entry.items()}
    for replica, sid in enumerate(ids, start=1):
        assert result["logs"][sid] == f"hello\n{replica}\n2\n"
        assert events[sid].startswith("TYPE")
        assert sid in result["fetched"] and sid not in result["running"]
    assert result["long"] in result["running"]
    assert result["renew"] == {result["long"]: True}
    assert result["destroy"] == {result["long"]: True, "nosuch12": False}
    assert gone(canfar, result["long"])
    status, text = result["errors"]["info"]
    assert status == 404 and "nosuch12" in text
    status, text = result["errors"]["create"]
    assert status == 400 and "cores" in text and text.count("\n") == 1


def test_open_gives_the_connect_url_of_a_running_interactive_session(canfar, tmp_path):
    t = tag()
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    [app] = created(canfar.ok("create", "-n", f"app-{t}", "contributed", SOCKET_APP))
    with canfar.server.client("alice") as http:
        running = wait_status(http, app, ("Running",), timeout=120)
    shown = canfar.ok("open", app, BROWSER=str(browser))
    assert f"Opening session {app} in a new tab." in shown.stdout
    wait_until(opened.exists, 10, "the browser to be started")
    assert opened.read_text().strip() == running["connectURL"]
    assert running["connectURL"] == (f"https://{session_host(canfar.server, app)}"
                                     f"/session/contrib/{app}/")

    [job] = created(canfar.ok("create", "-n", f"job-{t}", "headless", TERMINAL, "--", "true"))
    succeeded(canfar, job)
    headless = canfar.ok("open", job, BROWSER=str(browser))
    assert f"No connectURL found for session {job}." in headless.stderr
    canfar.ok("delete", "--force", app, job)
    assert gone(canfar, app)


@pytest.mark.parametrize("kind", sorted(URL_PATHS))
def test_every_interactive_kind_runs_and_lists_its_connect_url(canfar, kind):
    name = f"{kind}-{tag()}"
    [app] = created(canfar.ok("create", "-n", name, kind, SOCKET_APP))
    with canfar.server.client("alice") as http:
        running = wait_status(http, app, ("Running",), timeout=120)
    [listed] = json.loads(canfar.ok("ps", "--kind", kind, "-o", "json").stdout)
    assert (listed["id"], listed["name"], listed["type"]) == (app, name, kind)
    assert listed["connectURL"] == running["connectURL"]
    assert listed["connectURL"].startswith(
        f"https://{session_host(canfar.server, app)}/session/{URL_PATHS[kind]}/{app}/")
    canfar.ok("delete", "--force", app)
    assert gone(canfar, app)


def test_stats_and_image_listing(canfar):
    with canfar.server.client("alice") as http:
        stats = http.get(f"{API}/session", params={"view": "stats"}).json()
    table = canfar.ok("stats").stdout
    assert "CANFAR Platform Load" in table
    usage = re.findall(r"Usage\s*│\s*(\S+)", table)
    total = re.findall(r"Total\s*│\s*(\S+)", table)
    assert total == [str(stats["cores"]["cpuCoresAvailable"]), stats["ram"]["ramAvailable"]]
    assert usage[0].isdigit() and usage[1].endswith("G")

    images = canfar.ok("image", "ls").stdout
    assert "CANFAR Registry Server: images.canfar.net" in images
    for image in ("skaha/python:3.11", "skaha/terminal:1.1.2", "test/socket-app:1.0"):
        assert image in images
    contributed = canfar.ok("image", "ls", "--kind", "contributed").stdout
    assert "test/socket-app:1.0" in contributed and "skaha/python" not in contributed


def readme_ci_step() -> str:
    """The bash block of the README's "CI example" section, run here as a user's pipeline would."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### CI example", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0]


def test_the_readme_ci_step_launches_waits_and_fetches_the_output(canfar, tmp_path):
    (tmp_path / "analysis.py").write_text(
        "import statistics, sys\n"
        "print('analysis running')\n"
        "open(sys.argv[1], 'w').write(f'mean={statistics.mean([1, 2, 3, 4])}\\n')\n")
    env = canfar.env(PATH=f"{CANFAR_BIN}:{CADC_BIN}:{canfar.env()['PATH']}", CANFAR_USER="alice",
                     LOCAL_VOSPACE_WEBSERVICE=f"127.0.0.1:{canfar.server.port}",
                     VOS_OPTS="-k", CI_JOB_ID=tag())  # the test server's certificate is self-signed
    step = subprocess.run(["bash", "-c", readme_ci_step()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert step.returncode == 0, step.stdout + step.stderr
    assert "analysis running" in step.stdout
    assert (tmp_path / "result.txt").read_text() == "mean=2.5\n"
