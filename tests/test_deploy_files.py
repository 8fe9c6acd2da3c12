"""docker/: the image, the Compose file and the Kubernetes base are checked without Docker
or a cluster (neither can run here): the kustomize base is rendered in Python and validated
against the Kubernetes schemas (kubernetes-validate), compose.yaml against the Compose
specification's schema (the one Debian's docker-compose ships) and by `docker-compose
config`, and every name they give the server is one the server reads (config.py).
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import fields
from urllib.parse import urlsplit
from pathlib import Path

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from vospace_server.cli import build_parser
from vospace_server.config import Settings
from vospace_server.sessions.runners.kubernetes import SERVER_POD_LABELS

from .harness import REPO, VOSPACE, free_port, wait_for

DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
# The Compose specification's JSON schema, from Debian's docker-compose package
# (compose/config/compose_spec.json; upstream: the compose-spec project's schema/).
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
SETTINGS = {f.name for f in fields(Settings)}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources"}


def render_kustomize(folder: Path) -> list[dict]:
    """What `kubectl kustomize` makes of a base that uses only namespace, labels and plain
    resources (refusing anything else, so the rendering stays faithful)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= KUSTOMIZE_FIELDS, set(kustomization) - KUSTOMIZE_FIELDS
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        assert set(entry) == {"pairs"}, "includeSelectors/includeTemplates are not rendered"
        labels.update(entry["pairs"])
    namespace = kustomization.get("namespace")
    rendered = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((folder / resource).read_text()):
            doc = copy.deepcopy(doc)
            meta = doc["metadata"]
            meta["labels"] = {**meta.get("labels", {}), **labels}
            if namespace and doc["kind"] not in CLUSTER_SCOPED:
                meta["namespace"] = namespace
            for subject in doc.get("subjects", []):
                if subject["kind"] == "ServiceAccount" and namespace:
                    subject["namespace"] = namespace
            rendered.append(doc)
    return rendered


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kustomize_base_validates_against_the_kubernetes_schemas(version):
    docs = render_kustomize(K8S)
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap",
                            "Secret", "PersistentVolumeClaim", "Deployment", "Service",
                            "Ingress"])
    (ingress,) = by_kind(docs, "Ingress")  # the platform's host and every session host
    (config,) = by_kind(docs, "ConfigMap")
    sessions = f"*.{config['data']['VOSPACE_SESSION_DOMAIN']}"
    platform = urlsplit(config["data"]["VOSPACE_PUBLIC_URL"]).hostname
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [platform, sessions]
    assert [tls["hosts"] for tls in ingress["spec"]["tls"]] == [[platform], [sessions]]
    assert not sessions.endswith("." + platform.partition(".")[2])  # not the platform's site
    for rule in ingress["spec"]["rules"]:
        path, *data_paths = rule["http"]["paths"]  # the platform's: then the data port's
        assert path["path"] == "/" and path["pathType"] == "Prefix"
        assert bool(data_paths) == (rule["host"] == platform)
        for route in (path, *data_paths):
            assert route["backend"]["service"]["name"] == by_kind(docs, "Service")[0]["metadata"]["name"]


def test_kubernetes_base_is_consistent():
    docs = render_kustomize(K8S)
    (deployment,), (pvc,), (config,), (secret,) = (by_kind(docs, k) for k in (
        "Deployment", "PersistentVolumeClaim", "ConfigMap", "Secret"))
    assert deployment["spec"]["replicas"] >= 2
    # the sessions' NetworkPolicies admit the pods with these labels: this Deployment's
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert SERVER_POD_LABELS.items() <= template_labels.items()
    assert SERVER_POD_LABELS.items() <= deployment["spec"]["selector"]["matchLabels"].items()
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(dockerfile_env()["VOSPACE_PORT"]),
                     "data": int(dockerfile_env()["VOSPACE_DATA_PORT"])}
    (service,), (ingress,) = by_kind(docs, "Service"), by_kind(docs, "Ingress")
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    routes = {p["path"]: p["backend"]["service"]["port"]["name"]
              for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert routes == {"/": "http", "/vault/preauth": "data", "/arc/preauth": "data"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] > int(config["data"]["VOSPACE_SHUTDOWN_TIMEOUT"])
    # the arc claim the sessions runner mounts is this PVC, the sessions' namespace ours
    assert config["data"]["VOSPACE_K8S_ARC_CLAIM"] == pvc["metadata"]["name"]
    assert config["data"]["VOSPACE_K8S_NAMESPACE"] == deployment["metadata"]["namespace"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret_dir = mounts["secrets"]
    for name, value in config["data"].items():
        assert setting_of(name), name
        if name.endswith("_FILE"):
            folder, _, key = value.rpartition("/")
            assert folder == secret_dir and key in secret["stringData"], name
    arc_root = dockerfile_env()["VOSPACE_ARC_ROOT"]
    assert arc_root == f"{mounts['arc']}/{config['data']['VOSPACE_K8S_ARC_SUBPATH']}"


RESOURCES = {"job": ("batch", "jobs"), "job_status": ("batch", "jobs/status"),
             "pod": ("", "pods"), "pod_log": ("", "pods/log"), "event": ("", "events"),
             "service": ("", "services"),
             "network_policy": ("networking.k8s.io", "networkpolicies")}
VERBS = {"create": "create", "delete": "delete", "patch": "patch", "list": "list",
         "read": "get"}


def test_role_grants_exactly_what_the_sessions_runner_calls():
    source = (REPO / "vospace_server/sessions/runners/kubernetes.py").read_text()
    calls = set(re.findall(r"\.(create|delete|patch|list|read)_namespaced_(\w+)\(", source))
    needed = {(*RESOURCES[res], VERBS[verb]) for verb, res in calls}
    (role,) = by_kind(render_kustomize(K8S), "Role")
    granted = {(group, res, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for res in rule["resources"] for verb in rule["verbs"]}
    assert needed and granted == needed


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_compose_file_validates_against_the_compose_specification():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose())
    broken = compose()
    broken["services"]["nginx"]["portz"] = ["443:443"]
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict
        jsonschema.Draft201909Validator(schema).validate(broken)
    checked = subprocess.run(["docker-compose", "-f", str(DOCKER / "compose.yaml"), "config",
                              "-q"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_compose_replicas_get_what_the_server_and_nginx_read():
    spec = compose()
    replicas = [s for name, s in spec["services"].items() if name.startswith("vospace-")]
    assert len(replicas) == 2
    for service in replicas:
        for name, value in service["environment"].items():
            assert setting_of(name), name
            if name.endswith("_FILE"):
                assert value.removeprefix("/run/secrets/") in service["secrets"], name
        assert service["stop_grace_period"].rstrip("s").isdigit()
        assert int(service["stop_grace_period"].rstrip("s")) > \
            int(service["environment"]["VOSPACE_SHUTDOWN_TIMEOUT"])
    template = (DOCKER / "nginx" / "vospace.conf.template").read_text()
    wanted = set(re.findall(r"\$\{(\w+)\}", template))
    assert set(spec["services"]["nginx"]["environment"]) == wanted
    for upstream, setting in (("UPSTREAM_SERVERS", "VOSPACE_PORT"),
                              ("DATA_UPSTREAM_SERVERS", "VOSPACE_DATA_PORT")):
        servers = spec["services"]["nginx"]["environment"][upstream]
        port = dockerfile_env()[setting]
        assert re.findall(r"server (vospace-\d):(\d+)", servers) == \
            [("vospace-1", port), ("vospace-2", port)]
        assert all(s["environment"].get(setting, port) == port for s in replicas)


def setting_of(env_name: str) -> str | None:
    """The Settings field an environment variable sets (VOSPACE_X or VOSPACE_X_FILE)."""
    if not env_name.startswith("VOSPACE_"):
        return None
    name = env_name.removeprefix("VOSPACE_").lower()
    if name in SETTINGS:
        return name
    base = name.removesuffix("_file")
    return base if name.endswith("_file") and base in SETTINGS else None


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    final = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return [tuple(line.split(None, 1)) for line in lines[final:]]  # type: ignore[misc]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def test_dockerfile_matches_the_server_configuration(sqlite_server):
    steps = dict(dockerfile_instructions())
    env = dockerfile_env()
    vospace_env = {k: v for k, v in env.items() if k.startswith("VOSPACE_")}
    assert all(setting_of(k) for k in vospace_env), vospace_env
    command = json.loads(steps["CMD"])
    assert command[0] == "vospace" and build_parser().parse_args(command[1:]).command == "serve"
    assert steps["EXPOSE"].split() == [env["VOSPACE_PORT"], env["VOSPACE_DATA_PORT"]]
    assert steps["USER"] not in ("root", "0")
    assert env["VOSPACE_HOST"] == "0.0.0.0"
    health = steps["HEALTHCHECK"]
    assert "/healthz" in health and "VOSPACE_PORT" in health
    with sqlite_server.client() as c:  # the path the health check asks for answers
        assert c.get("/healthz").status_code == 200
    for source in re.findall(r"COPY (?!--from)(.+)", (DOCKER / "Dockerfile").read_text()):
        for path in source.split()[:-1]:
            assert (REPO / path).exists(), path
    extras = re.search(r"pip install [^\n]*'\.\[(\w+)\]'", (DOCKER / "Dockerfile").read_text())
    assert extras and f"\n{extras.group(1)} = [" in (REPO / "pyproject.toml").read_text()


def test_the_image_command_serves_as_a_non_root_user_with_the_image_environment():
    """What the container runs, outside a container: the Dockerfile's CMD and HEALTHCHECK
    with its ENV (paths moved into a scratch folder, the host kept on loopback) as the
    image's uid 10001: it starts, answers the health check, and stores vault and arc bytes."""
    steps = dict(dockerfile_instructions())
    scratch = tempfile.mkdtemp(prefix="vospace-image-")
    env = dict(os.environ, **dockerfile_env())
    env["PATH"] = f"{Path(VOSPACE).parent}:{os.environ['PATH']}"
    port = free_port()
    env.update(VOSPACE_HOST="127.0.0.1", VOSPACE_PORT=str(port),
               VOSPACE_DATA_DIR=f"{scratch}/var/lib/vospace",
               VOSPACE_ARC_ROOT=f"{scratch}{env['VOSPACE_ARC_ROOT']}",
               VOSPACE_SNAPSHOT_DIR=f"{scratch}{env['VOSPACE_SNAPSHOT_DIR']}")
    env.pop("VOSPACE_CONFIG", None)
    as_user = ["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups"]
    if os.geteuid() != 0 or subprocess.run(as_user + [sys.executable, "-c", "pass"],
                                           capture_output=True).returncode != 0:
        as_user = []  # not root, or a checkout uid 10001 cannot read: run as we are
    else:
        os.chown(scratch, 10001, 10001)
    server = subprocess.Popen(as_user + json.loads(steps["CMD"]), env=env, cwd=scratch,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc=server)
        health = json.loads(steps["HEALTHCHECK"].split("CMD", 1)[1])
        assert subprocess.run(as_user + health, env=env, timeout=30).returncode == 0
        token = subprocess.run(as_user + ["vospace", "token", "create", "alice"], env=env,
                               capture_output=True, text=True, timeout=120, check=True)
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                          timeout=60, follow_redirects=True) as c:
            for path in ("/vault/files/alice/x.bin", "/arc/files/home/alice/x.bin"):
                assert c.put(path, content=b"bytes").status_code == 201
                assert c.get(path).content == b"bytes"
        if as_user:
            assert os.stat(f"{env['VOSPACE_ARC_ROOT']}/home/alice/x.bin").st_uid == 10001
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
