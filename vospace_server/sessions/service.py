"""What each skaha request means, apart from HTTP: launch, list, renew, delete, logs, events.

Access goes through the one policy (``auth.policy.require_session_access``): a session is
seen, renewed or deleted only by its owner or an administrator; to anyone else it does not
exist (404), as skaha only looks among the caller's own sessions.
"""
from __future__ import annotations

import os
import secrets
import string
import time

from sqlalchemy.exc import IntegrityError

from ..auth import policy
from ..auth.groups import resolve_group
from ..auth.identity import Caller
from ..deployment import Deployment
from ..protocol import properties as props
from ..protocol.faults import DuplicateNode, InvalidArgument
from ..protocol.nodes import Node, NodeType
from .catalogue import Catalogue, Image
from .context import ResourceContext
from .hosts import SessionHosts
from .errors import BadRequest, NotFound
from .launch import LaunchRequest
from .model import (ACTIVE, EVENT_HEADER, HEADLESS, PENDING, RUNNING, Session, event_line,
                    iso)
from .runners import LaunchSpec, Runner
from .store import LimitReached, SessionStore
from .tickets import Tickets

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 8  # skaha's: also the VNC password length limit


def new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def make_runner(deployment: Deployment, store: SessionStore) -> Runner:
    settings = deployment.settings
    if settings.session_runner == "kubernetes":
        from .runners.kubernetes import KubernetesRunner  # loads the kubernetes client

        return KubernetesRunner(store, settings)
    if settings.session_runner != "local":
        raise ValueError(f"session_runner must be local or kubernetes, "
                         f"not {settings.session_runner!r}")
    from .runners.local import LocalRunner

    return LocalRunner(store, settings)


class SessionService:
    def __init__(self, deployment: Deployment) -> None:
        settings = deployment.settings
        self.deployment = deployment
        self.settings = settings
        self.store = SessionStore(deployment.services["vault"].tree.engine)
        self.catalogue = Catalogue.load(settings.session_images)
        self.context = ResourceContext.from_settings(settings)
        self.runner = make_runner(deployment, self.store)
        self.hosts = SessionHosts(settings)
        self.tickets = Tickets(self.store.engine, deployment.secret)
        deployment.metrics.add_gauges("vospace_sessions", "Sessions by type and status",
                                      ["type", "status"],
                                      lambda: self.store.count_by_type_status().items())

    # -- launching ------------------------------------------------------------------------
    def launch(self, caller: Caller, request: LaunchRequest, hostname: str) -> Session:
        policy.require_authenticated(caller, "launch sessions")
        user = caller.name or ""
        image, session_type = self.catalogue.resolve(request.image, request.type)
        resources = self.context.resources(request.cores, request.ram, request.gpus)
        if session_type == HEADLESS:
            command = ([request.cmd] if request.cmd else list(image.command)) + request.args
            if not command:
                raise BadRequest("Missing parameter 'cmd': the image has no default command")
        elif request.has_command:
            raise BadRequest("cmd and args are only for headless sessions")
        else:
            command = list(image.command)
        self.runner.check(image, session_type)
        posix = self.deployment.posix
        uid = posix.uid(user)
        groups = sorted({posix.gid(uri) for uri in caller.groups})
        self.ensure_home(user)
        now = time.time()
        lifetime = (self.settings.session_headless_expiry if session_type == HEADLESS
                    else self.settings.session_expiry)
        session = Session(
            id=new_id(), owner=user, name=request.name, image=image.id, type=session_type,
            status=PENDING, uid=uid, gid=uid, groups=groups,
            cores_request=resources.cores_request, cores_limit=resources.cores_limit,
            ram_request=resources.ram_request, ram_limit=resources.ram_limit,
            gpus=resources.gpus, fixed=resources.fixed, created=now, expiry=now + lifetime,
            command=command, env=request.env, runner=self.runner.name)
        self._insert(session)
        env = {"skaha_sessionid": session.id, "skaha_username": user,
               "skaha_hostname": hostname, "skaha_sessionname": session.name,
               "skaha_sessiontype": session_type,
               "OMP_NUM_THREADS": str(resources.cores_request), **request.env}
        self.runner.launch(LaunchSpec(session, image, command, env, posix.passwd(),
                                      posix.group(), hostname))
        return self.store.get(session.id) or session

    def _insert(self, session: Session) -> None:
        for _ in range(5):
            try:
                self.store.create(session, self.context.max_interactive)
                return
            except LimitReached as limit:
                raise BadRequest(f"User {session.owner} has reached the maximum of "
                                 f"{limit.limit} active sessions.") from None
            except IntegrityError:  # an id collision: draw another
                session.id = new_id()
        raise RuntimeError("could not allocate a session id")

    def ensure_home(self, user: str) -> None:
        """A first launch creates ``/arc/home/<user>`` with the default quota (as skaha
        asks cavern to); an existing home is left as it is."""
        quota = str(self.settings.session_home_quota_gb * 10**9)
        try:
            self.deployment.services["arc"].tree.create(
                Node(f"home/{user}", NodeType.CONTAINER, properties={props.QUOTA: quota}),
                owner=user)
        except DuplicateNode:
            pass

    # -- reading --------------------------------------------------------------------------
    def offered_images(self, session_type: str | None) -> list[Image]:
        """The catalogue's images this runner can start (locally: their software is
        installed), so that nothing is offered that a launch would refuse."""
        offered = []
        for image in self.catalogue.listing(session_type):
            try:
                self.runner.check(image, session_type or image.types[0])
            except BadRequest:
                continue
            offered.append(image)
        return offered

    def get(self, caller: Caller, session_id: str) -> Session:
        policy.require_authenticated(caller, "see sessions")
        session = self.store.get(session_id)
        if session is None or not policy.may_see_session(caller, session.owner):
            raise NotFound(f"session {session_id} not found")
        return session

    def list(self, caller: Caller, session_type: str | None, status: str | None,
             everyone: bool = False) -> list[Session]:
        policy.require_authenticated(caller, "list sessions")
        return self.store.list(owner=None if everyone else caller.name,
                               types=(session_type,) if session_type else (),
                               statuses=(status,) if status else ())

    def events(self, caller: Caller, session_id: str) -> str:
        session = self.get(caller, session_id)
        lines = [EVENT_HEADER] + [event_line(when, text)
                                  for when, text in self.store.events(session.id)]
        lines += self.runner.events(session)
        return "".join(line + "\n" for line in lines)

    def logs(self, caller: Caller, session_id: str) -> bytes:
        return self.runner.logs(self.get(caller, session_id))

    def stats(self, caller: Caller) -> dict:
        policy.require_authenticated(caller, "see session statistics")
        active = self.store.list(statuses=(PENDING, RUNNING))
        cores = os.cpu_count() or 1
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**30
        headless = sum(1 for s in active if s.type == HEADLESS)
        return {
            "instances": {"session": len(active) - headless, "desktopApp": 0,
                          "headless": headless, "total": len(active)},
            "cores": {"requestedCPUCores": sum(s.cores_request for s in active),
                      "cpuCoresAvailable": cores,
                      "maxCores": {"cores": cores, "withRam": f"{ram_gb}G"}},
            "ram": {"requestedRAM": f"{sum(s.ram_request for s in active)}G",
                    "ramAvailable": f"{ram_gb}G",
                    "maxRAM": {"ram": f"{ram_gb}G", "withCores": cores}},
        }

    # -- changing -------------------------------------------------------------------------
    def renew(self, caller: Caller, session_id: str) -> Session:
        """skaha's rule: only when less than a full lifetime remains, to now + a lifetime."""
        session = self.get(caller, session_id)
        if session.status not in ACTIVE:
            raise BadRequest(f"No active job for user {caller.name} with session {session_id}")
        lifetime = (self.settings.session_headless_expiry if session.type == HEADLESS
                    else self.settings.session_expiry)
        now = time.time()
        if session.expiry - now < lifetime:
            expiry = now + lifetime
            if self.store.update(session.id, event=f"Renewed: expires {iso(expiry)}",
                                 expiry=expiry):
                self.runner.renew(session, expiry)
        return self.store.get(session.id) or session

    def share(self, caller: Caller, session_id: str, group: str | None) -> Session:
        """Let the members of ``group`` (a name or group URI; None: nobody) use the session's
        app with its owner: only the owner or an administrator decides, and only for an
        interactive session (a headless one has no app to share)."""
        session = self.get(caller, session_id)
        if not session.interactive:
            raise BadRequest("only interactive sessions can be shared")
        uri = None
        if group:
            try:
                uri = resolve_group(group, self.deployment.groups.authority)
            except InvalidArgument as bad:
                raise BadRequest(bad.detail) from None
        event = f"Shared: with group {uri}" if uri else "Unshared: only the owner"
        if not self.store.update(session.id, event=event, shared_group=uri):
            raise BadRequest(f"No active job for user {caller.name} with session {session_id}")
        return self.store.get(session.id) or session

    def delete(self, caller: Caller, session_id: str) -> None:
        session = self.get(caller, session_id)
        self.runner.end(session, f"deleted by {caller.name}", forget=True)
