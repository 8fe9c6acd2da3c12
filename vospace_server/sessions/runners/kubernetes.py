"""The Kubernetes runner: a Job per session as skaha creates it, a Service for interactive
types and a NetworkPolicy for every session, sent with the official ``kubernetes`` client.

No per-session Ingress: the session proxy (``sessions/proxy.py``) is the only way in, behind
the platform's own Ingress, which routes the platform's host and every session host
(``*.<session_domain>``, sessions/hosts.py) to the server. The NetworkPolicy admits connections to an interactive session's app port only from
the server's pods (``SERVER_POD_LABELS``, in ``k8s_namespace``), and none at all to a
headless session, so neither other sessions nor anything else in the cluster can skip the
proxy's authentication.

The pod runs as the user's uid, gid and supplementary gids, non-root, no privilege
escalation, every capability dropped; the arc volume (a PVC, CephFS in production) at
``/arc``; ``/scratch`` an ``emptyDir`` (node-local, gone with the pod); ``/etc/passwd`` and
``/etc/group`` written by an init container from the posix-mapper lines, as skaha does;
requests and limits from the session's resources; ``activeDeadlineSeconds`` from its expiry
(renew patches it); ``ttlSecondsAfterFinished`` from ``session_finished_ttl``. The cluster
is the truth: a poller (any server process) copies Job and pod states into the rows.

``manifests`` is a pure function, so the manifests of every session type are validated
against the Kubernetes schemas in the tests (``kubernetes-validate``); no cluster runs here.
"""
from __future__ import annotations

import logging
import re
import time

from ...background import BackgroundLoop
from ...config import Settings
from ..catalogue import Image
from ..model import FAILED, RUNNING, SUCCEEDED, Session
from ..store import SessionStore
from . import LaunchSpec

log = logging.getLogger("vospace.sessions")

APP_PORTS = {"notebook": 8888, "desktop": 6080, "carta": 6901, "firefly": 8080,
             "contributed": 5000}
MAX_JOB_NAME = 57      # pod names add up to 6 characters; labels stop at 63
POLL_EVERY = 5.0
LABEL = "canfar-net-"
# The labels of the server's pods (docker/k8s/deployment.yaml's pod template, which says so):
# the only pods a session's NetworkPolicy lets in, and only from the namespace of the session.
SERVER_POD_LABELS = {"app.kubernetes.io/name": "vospace"}
INIT_SCRIPT = ('cp /etc/passwd /etc/group /posix/ && printf "%s\\n" "$POSIX_PASSWD" >> '
               '/posix/passwd && printf "%s\\n" "$POSIX_GROUP" >> /posix/group')


def job_name(session: Session) -> str:
    """skaha's ``skaha-<type>-<user>-<id>``, lower-cased, DNS-safe, at most 57 characters
    (the id, at the end, always survives)."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", f"skaha-{session.type}-{session.owner}".lower())
    return f"{prefix[:MAX_JOB_NAME - len(session.id) - 1].strip('-')}-{session.id}"


def labels(session: Session) -> dict[str, str]:
    return {f"{LABEL}sessionID": session.id, f"{LABEL}sessionType": session.type,
            f"{LABEL}userid": re.sub(r"[^A-Za-z0-9_.-]", "_", session.owner)[:63],
            f"{LABEL}sessionName": session.name.lower()[:63]}


def _resources(session: Session) -> dict:
    requests = {"cpu": str(session.cores_request), "memory": f"{session.ram_request}Gi",
                "ephemeral-storage": "20Gi"}
    limits = {"cpu": str(session.cores_limit), "memory": f"{session.ram_limit}Gi",
              "ephemeral-storage": "200Gi"}
    if session.gpus:
        limits["nvidia.com/gpu"] = str(session.gpus)
    return {"requests": requests, "limits": limits}


def _container(spec: LaunchSpec, settings: Settings) -> dict:
    session = spec.session
    home = f"/arc/home/{session.owner}"
    env = {"HOME": home, "PWD": home, "USER": session.owner, **spec.env}
    container = {
        "name": "session",
        "image": spec.image.id,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": home,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": _resources(session),
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "arc", "mountPath": "/arc", "subPath": settings.k8s_arc_subpath},
            {"name": "scratch", "mountPath": "/scratch", "subPath": session.id},
            {"name": "posix", "mountPath": "/etc/passwd", "subPath": "passwd", "readOnly": True},
            {"name": "posix", "mountPath": "/etc/group", "subPath": "group", "readOnly": True},
        ],
    }
    if session.interactive:
        port = APP_PORTS[session.type]
        container["ports"] = [{"name": "app", "containerPort": port, "protocol": "TCP"}]
        container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 2}
    else:
        container["command"] = spec.command
    return container


def job_manifest(spec: LaunchSpec, settings: Settings) -> dict:
    session = spec.session
    meta = {"name": job_name(session), "labels": labels(session)}
    init = {
        "name": "posix-ids", "image": spec.image.id, "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", INIT_SCRIPT],
        "env": [{"name": "POSIX_PASSWD", "value": "\n".join(spec.passwd)},
                {"name": "POSIX_GROUP", "value": "\n".join(spec.group)}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "posix", "mountPath": "/posix"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
    }
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostname": session.name.lower()[:63],
        "securityContext": {"runAsUser": session.uid, "runAsGroup": session.gid,
                            "supplementalGroups": session.groups, "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [init],
        "containers": [_container(spec, settings)],
        "volumes": [
            {"name": "arc", "persistentVolumeClaim": {"claimName": settings.k8s_arc_claim}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "posix", "emptyDir": {}},
        ],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
        "spec": {
            "activeDeadlineSeconds": max(1, int(session.expiry - session.created)),
            "ttlSecondsAfterFinished": settings.session_finished_ttl,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels(session)}, "spec": pod_spec},
        },
    }


def service_manifest(session: Session) -> dict:
    port = APP_PORTS[session.type]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service_name(session), "labels": labels(session)},
        "spec": {"selector": {f"{LABEL}sessionID": session.id},
                 "ports": [{"name": "app", "port": port, "targetPort": port,
                            "protocol": "TCP"}]},
    }


def service_name(session: Session) -> str:
    return f"skaha-{session.type}-svc-{session.id}"


def network_policy_name(session: Session) -> str:
    return f"skaha-{session.type}-netpol-{session.id}"


def network_policy_manifest(session: Session) -> dict:
    """Ingress to the session's pod: its app port from the server's pods only (the proxy
    connects from there); nothing for a headless session (a policy with no rules)."""
    rules: list[dict] = []
    if session.interactive:
        rules = [{"from": [{"podSelector": {"matchLabels": dict(SERVER_POD_LABELS)}}],
                  "ports": [{"port": APP_PORTS[session.type], "protocol": "TCP"}]}]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": network_policy_name(session), "labels": labels(session)},
        "spec": {"podSelector": {"matchLabels": {f"{LABEL}sessionID": session.id}},
                 "policyTypes": ["Ingress"], "ingress": rules},
    }


def manifests(spec: LaunchSpec, settings: Settings) -> list[dict]:
    """Everything one session creates in the cluster, in creation order: the policy first,
    so the pod is never reachable unguarded."""
    found = [network_policy_manifest(spec.session), job_manifest(spec, settings)]
    if spec.session.interactive:
        found.append(service_manifest(spec.session))
    return found


def pod_status(job_status: dict | None, pod_phase: str | None, ready: bool) -> str | None:
    """A session status from its Job's and pod's state (None: no news)."""
    job_status = job_status or {}
    if job_status.get("succeeded"):
        return SUCCEEDED
    if job_status.get("failed") or any(c.get("type") == "Failed" and c.get("status") == "True"
                                       for c in job_status.get("conditions") or []):
        return FAILED
    if pod_phase == "Running" and ready:
        return RUNNING
    return None


class KubernetesRunner(BackgroundLoop):
    name = "kubernetes"
    thread_name = "session-k8s-poller"

    def __init__(self, store: SessionStore, settings: Settings) -> None:
        super().__init__()
        from kubernetes import client, config  # imported only when this runner is configured

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.store, self.settings = store, settings
        self.namespace = settings.k8s_namespace
        self.batch, self.core = client.BatchV1Api(), client.CoreV1Api()
        self.networking = client.NetworkingV1Api()

    def check(self, image: Image, session_type: str) -> None:
        """The cluster pulls any catalogued image; nothing to check here."""

    def launch(self, spec: LaunchSpec) -> None:
        creators = {"Job": lambda body: self.batch.create_namespaced_job(self.namespace, body),
                    "Service": lambda body: self.core.create_namespaced_service(
                        self.namespace, body),
                    "NetworkPolicy": lambda body: self.networking.create_namespaced_network_policy(
                        self.namespace, body)}
        try:
            for manifest in manifests(spec, self.settings):
                creators[manifest["kind"]](manifest)
        except Exception as exc:
            self.store.update(spec.session.id, event=f"Failed: the cluster refused it: {exc}",
                              status=FAILED, ended=time.time())
            return
        self.store.event(spec.session.id, f"Scheduled: job {job_name(spec.session)} created")

    def end(self, session: Session, reason: str, forget: bool) -> None:
        self._delete_objects(session)
        if forget:
            self.store.delete(session.id)
        else:
            self.store.update(session.id, event=f"Failed: {reason}", status=FAILED,
                              ended=time.time())

    def _delete_objects(self, session: Session) -> None:
        from kubernetes.client.exceptions import ApiException

        deleters = [lambda: self.batch.delete_namespaced_job(
            job_name(session), self.namespace, propagation_policy="Background")]
        if session.interactive:
            deleters.append(lambda: self.core.delete_namespaced_service(
                service_name(session), self.namespace))
        deleters.append(lambda: self.networking.delete_namespaced_network_policy(
            network_policy_name(session), self.namespace))
        for delete in deleters:
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def renew(self, session: Session, expiry: float) -> None:
        self.batch.patch_namespaced_job(job_name(session), self.namespace, {
            "spec": {"activeDeadlineSeconds": int(expiry - session.created)}})

    def app_endpoint(self, session: Session) -> str | None:
        if session.status != RUNNING or not session.interactive:
            return None
        return f"http://{service_name(session)}.{self.namespace}.svc:{APP_PORTS[session.type]}"

    def _pods(self, session: Session) -> list:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL}sessionID={session.id}").items

    def logs(self, session: Session) -> bytes:
        try:
            pods = self._pods(session)
            if not pods:
                return b""
            return self.core.read_namespaced_pod_log(pods[0].metadata.name, self.namespace,
                                                     container="session").encode()
        except Exception as exc:  # the rows still answer; say why the output is missing
            log.warning("session %s: no logs from the cluster: %s", session.id, exc)
            return f"(the cluster did not give this session's output: {exc})\n".encode()

    def events(self, session: Session) -> list[str]:
        try:
            return self._pod_events(session)
        except Exception as exc:
            log.warning("session %s: no events from the cluster: %s", session.id, exc)
            return []

    def _pod_events(self, session: Session) -> list[str]:
        lines = []
        for pod in self._pods(session):
            found = self.core.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={pod.metadata.name}")
            for event in found.items:
                message = " ".join((event.message or "").split())
                lines.append(f"{event.type}  {event.reason}  {message}  "
                             f"{event.first_timestamp}  {event.last_timestamp}")
        return lines

    def close(self) -> None:
        self.stop()

    def _loop(self) -> None:
        """Copy the cluster's Job and pod states into the active sessions' rows."""
        while not self._stop.wait(POLL_EVERY):
            try:
                for session in self.store.active():
                    if session.runner == self.name:
                        self._refresh(session)
            except Exception:
                log.exception("kubernetes session poller")

    def _refresh(self, session: Session) -> None:
        job = self.batch.read_namespaced_job_status(job_name(session), self.namespace)
        pods = self._pods(session)
        phase = pods[0].status.phase if pods else None
        ready = bool(pods) and all(c.ready for c in pods[0].status.container_statuses or [])
        status = pod_status(job.status.to_dict() if job.status else None, phase, ready)
        if status is not None and status != session.status:
            ended = time.time() if status in (SUCCEEDED, FAILED) else None
            self.store.update(session.id, event=f"{status}: pod {phase}", status=status,
                              ended=ended)
