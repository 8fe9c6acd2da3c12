"""The Kubernetes runner's manifests, for every session type, against the Kubernetes schemas
(``kubernetes-validate``, strict: unknown fields are errors); and the runner driving the real
``kubernetes`` client from a server, where the cluster it is pointed at cannot be reached.
No cluster can run on these machines (README, "Sessions")."""
from __future__ import annotations

import time
from dataclasses import replace

import kubernetes_validate
import pytest

from vospace_server.config import Settings
from vospace_server.sessions.catalogue import Image
from vospace_server.sessions.hosts import SessionHosts
from vospace_server.sessions.model import SESSION_TYPES, Session, connect_url
from vospace_server.sessions.runners import LaunchSpec
from vospace_server.sessions.runners.kubernetes import (APP_PORTS, SERVER_POD_LABELS, job_name,
                                                        manifests, pod_status)

from .harness import free_port, make_server
from .sessions_helpers import API, FINAL, launch, text, wait_status

K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())


def spec_for(session_type: str, fixed: bool = True, owner: str = "alice") -> LaunchSpec:
    now = time.time()
    session = Session(
        id="ab12cd34", owner=owner, name="My-Session", image="images.canfar.net/skaha/x:1",
        type=session_type, status="Pending", uid=10001, gid=10001, groups=[20001, 20002],
        cores_request=2 if fixed else 1, cores_limit=2, ram_request=4 if fixed else 2,
        ram_limit=4, gpus=0, fixed=fixed, created=now, expiry=now + 345600,
        command=["python3", "-c", "print('a; $(b)')"] if session_type == "headless" else [])
    image = Image(session.image, (session_type,))
    env = {"skaha_sessionid": session.id, "skaha_username": owner,
           "skaha_hostname": "sp.example.org", "OMP_NUM_THREADS": "2", "REPLICA_ID": "1"}
    return LaunchSpec(session, image, session.command, env,
                      [f"{owner}:x:10001:10001::/arc/home/{owner}:/bin/bash"],
                      [f"{owner}:x:10001:{owner}", "proj:x:20001:alice"], "sp.example.org")


SETTINGS = Settings(data_dir="/nonexistent", public_url="https://sp.example.org",
                    session_domain="sessions.example.org")


@pytest.mark.parametrize("session_type", SESSION_TYPES)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_session_types_manifests_validate(session_type, version):
    spec = spec_for(session_type)
    found = manifests(spec, SETTINGS)
    kinds = [m["kind"] for m in found]
    assert kinds == (["NetworkPolicy", "Job"] if session_type == "headless"
                     else ["NetworkPolicy", "Job", "Service"])  # no Ingress: the proxy only
    job = found[1]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": job["metadata"]["name"] + "-x1y2z",
                        **job["spec"]["template"]["metadata"]},
           "spec": job["spec"]["template"]["spec"]}
    for manifest in found + [pod]:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("session_type", SESSION_TYPES)
def test_manifests_say_what_skaha_says(session_type):
    spec = spec_for(session_type)
    policy, job, *rest = manifests(spec, SETTINGS)
    assert job["spec"]["activeDeadlineSeconds"] == 345600
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600 and job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"runAsUser": 10001, "runAsGroup": 10001,
                                      "supplementalGroups": [20001, 20002],
                                      "runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]
    assert container["resources"]["limits"]["memory"] == "4Gi"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/arc"]["subPath"] == "cavern" and mounts["/scratch"]["subPath"] == "ab12cd34"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["arc"]["persistentVolumeClaim"]["claimName"] == "cavern-volume-claim"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HOME"] == "/arc/home/alice" and env["skaha_sessionid"] == "ab12cd34"
    assert container["workingDir"] == "/arc/home/alice"
    init_env = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
    assert "proj:x:20001:alice" in init_env["POSIX_GROUP"]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert selected.items() <= pod_labels.items() and "canfar-net-sessionID" in selected
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
    if session_type == "headless":
        assert container["command"] == ["python3", "-c", "print('a; $(b)')"] and rest == []
        assert policy["spec"]["ingress"] == []  # nothing may connect to a batch job
        return
    assert "command" not in container  # the image's own app
    port = APP_PORTS[session_type]
    assert container["readinessProbe"] == {"tcpSocket": {"port": port}, "periodSeconds": 2}
    (service,) = rest
    assert service["spec"]["selector"] == {"canfar-net-sessionID": "ab12cd34"}
    # the only way in: the app port, from the server's pods (where the session proxy runs)
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": SERVER_POD_LABELS}}]
    assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    assert service["spec"]["ports"][0]["targetPort"] == port
    # ... which the connect URL reaches through the session's own host and the proxy
    origin = SessionHosts(SETTINGS).origin(SETTINGS.public_url, spec.session.id)
    url = connect_url(replace(spec.session, status="Running"), origin)
    assert url.startswith("https://ab12cd34.sessions.example.org/session/")


def test_flexible_sessions_request_less_than_their_limit_and_names_stay_short():
    spec = spec_for("headless", fixed=False, owner="a" * 64)
    job = manifests(spec, SETTINGS)[1]
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "1" and resources["limits"]["cpu"] == "2"
    assert resources["requests"]["memory"] == "2Gi" and resources["limits"]["memory"] == "4Gi"
    name = job_name(spec.session)
    assert len(name) <= 57 and name.endswith("-ab12cd34") and name.startswith("skaha-headless-")
    kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


def test_pod_states_become_skahas_statuses():
    assert pod_status({"succeeded": 1}, "Succeeded", False) == "Succeeded"
    assert pod_status({"failed": 1}, "Failed", False) == "Failed"
    assert pod_status({"conditions": [{"type": "Failed", "status": "True"}]}, None,
                      False) == "Failed"  # DeadlineExceeded: the expiry passed
    assert pod_status({"active": 1}, "Running", True) == "Running"
    assert pod_status({"active": 1}, "Running", False) is None  # the app does not answer yet
    assert pod_status({"active": 1}, "Pending", False) is None


def test_the_runner_reports_a_cluster_it_cannot_reach(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:{free_port()}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: skaha-workload}}}}]
current-context: x
""")
    server = make_server(str(tmp_path), extra_env={"VOSPACE_SESSION_RUNNER": "kubernetes",
                                                   "KUBECONFIG": str(kubeconfig)})
    try:
        with server.client("alice") as c:
            sid = launch(c, "far-away", cmd="true")
            found = wait_status(c, sid, FINAL)
            assert found["status"] == "Failed"
            assert "the cluster refused it" in text(c, sid, "events")
            assert c.get(f"{API}/session").json()[0]["id"] == sid
    finally:
        server.stop()
