"""Runners: what actually runs a session. ``local`` (bubblewrap sandboxes on this host, the
embedded default) or ``kubernetes`` (a Job per session, at scale); ``session_runner`` picks.

The service decides everything a launch means (ids, resources, command, environment) and
hands it over as a ``LaunchSpec``; a runner only makes it happen and records what happens
in the session's row and events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..catalogue import Image
from ..model import Session


@dataclass(frozen=True)
class LaunchSpec:
    session: Session
    image: Image
    command: list[str]          # argv; for an interactive app, with {socket} filled in
    env: dict[str, str]         # skaha's variables and the user's
    passwd: list[str]           # /etc/passwd and /etc/group lines for the session
    group: list[str]
    hostname: str               # skaha_hostname


class Runner(Protocol):
    name: str

    def check(self, image: Image, session_type: str) -> None:
        """Raise BadRequest if this runner cannot run ``image`` as ``session_type``."""

    def launch(self, spec: LaunchSpec) -> None:
        """Start the session (its row exists, Pending)."""

    def end(self, session: Session, reason: str, forget: bool) -> None:
        """End the session however it is running; ``forget``: delete its row afterwards."""

    def renew(self, session: Session, expiry: float) -> None:
        """The session's row already holds the new expiry; tell the workload."""

    def logs(self, session: Session) -> bytes:
        """The session's output so far."""

    def events(self, session: Session) -> list[str]:
        """Lifecycle events the runner knows beyond the session's rows (may be none)."""

    def app_endpoint(self, session: Session) -> str | None:
        """Where a Running interactive session's app answers, for the session proxy:
        ``unix:<path>`` (local) or ``http://<service>:<port>`` (Kubernetes); else None."""

    def start(self) -> None:
        """Begin supervising (a background thread)."""

    def close(self) -> None:
        """Stop supervising (the local runner also ends the sessions it runs)."""
