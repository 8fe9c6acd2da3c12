"""UWS jobs as rows in the SQL database the vault metadata lives in.

Every server process shares the table, so any of them can run any job: a process takes a
job with an atomic ``UPDATE ... WHERE phase = 'QUEUED'`` (a claim), which only one process
can win. A claimed job records who runs it (``host:pid:nonce``) and a heartbeat, so a
restarted process can tell jobs orphaned by a dead process (same host, pid gone, or no
heartbeat for ``STALE_AFTER`` seconds) and resume or fail them (see ``JobStore.orphans``).

Synchronous transfers (``/synctrans``) are stored here too, as jobs of kind ``sync`` that
are born COMPLETED (or ERROR) with their negotiated transfer document in ``details``; the
``/transfers/{id}/...`` endpoints serve both kinds the same way.

This module knows no HTTP and no XML: requests and results are opaque text/JSON.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import ContextManager

from sqlalchemy import (Column, Float, Index, Integer, MetaData, String, Table, Text, and_, delete,
                        func, insert, select, update)
from sqlalchemy.engine import Connection, Engine, Row

from .transactions import transaction

# Tables change only through a migration (README, "Schema migrations").
metadata = MetaData()

jobs = Table(
    "uws_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),          # transfer | delete | setprops | sync | package
    Column("service", String(32), nullable=False),       # vault | arc
    Column("owner", Text, nullable=True),
    Column("caller", Text, nullable=False, default="{}"),  # identity snapshot for the ACL
    Column("phase", String(16), nullable=False),
    Column("created", Float, nullable=False),
    Column("started", Float, nullable=True),
    Column("ended", Float, nullable=True),
    Column("duration", Integer, nullable=False, default=0),  # executionDuration, s; 0 = none
    Column("destruction", Float, nullable=True),
    Column("request", Text, nullable=False, default=""),     # the POSTed document
    Column("params", Text, nullable=False, default="{}"),    # JSON: parsed parameters
    Column("results", Text, nullable=False, default="{}"),   # JSON: result id -> href
    Column("details", Text, nullable=True),                  # transfer document with endpoints
    Column("error_code", Text, nullable=True),               # what /error answers
    Column("error_message", Text, nullable=True),            # errorSummary/message
    Column("runner", Text, nullable=True),                   # host:pid:nonce of the claimant
    Column("heartbeat", Float, nullable=True),
    Index("ix_uws_jobs_phase", "phase"),
    Index("ix_uws_jobs_owner", "owner", "service", "created"),
)

PENDING, QUEUED, EXECUTING = "PENDING", "QUEUED", "EXECUTING"
COMPLETED, ERROR, ABORTED = "COMPLETED", "ERROR", "ABORTED"
ACTIVE = frozenset({PENDING, QUEUED, EXECUTING, "HELD", "SUSPENDED"})
FINAL = frozenset({COMPLETED, ERROR, ABORTED, "ARCHIVED"})
STALE_AFTER = 60.0            # seconds without heartbeat before another host takes over
DEFAULT_LIFETIME = 7 * 86400  # jobs are destroyed a week after creation unless changed


class Kind(str, Enum):
    TRANSFER = "transfer"
    DELETE = "delete"
    SETPROPS = "setprops"
    SYNC = "sync"
    PACKAGE = "package"  # a package download (services/packages.py), served by GET /pkg/{id}


@dataclass
class Job:
    id: str
    kind: str
    service: str
    owner: str | None
    caller: dict
    phase: str
    created: float
    started: float | None = None
    ended: float | None = None
    duration: int = 0
    destruction: float | None = None
    request: str = ""
    params: dict = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    details: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    runner: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> "Job":
        return cls(id=row.id, kind=row.kind, service=row.service, owner=row.owner,
                   caller=json.loads(row.caller or "{}"), phase=row.phase, created=row.created,
                   started=row.started, ended=row.ended, duration=row.duration or 0,
                   destruction=row.destruction, request=row.request or "",
                   params=json.loads(row.params or "{}"), results=json.loads(row.results or "{}"),
                   details=row.details, error_code=row.error_code,
                   error_message=row.error_message, runner=row.runner)


def runner_identity() -> str:
    """``host:pid:nonce``; the nonce tells a recycled pid from the process that claimed."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runner_dead(runner: str | None, me: str) -> bool:
    """Whether the process ``runner`` (a ``runner_identity``) is known to be gone: it ran on
    this host and its pid is gone, or it is our pid with another nonce (a previous life of
    this process id). A process on another host is never known dead here."""
    if runner == me:
        return False
    host, my_pid = me.split(":")[:2]
    r_host, _, rest = (runner or "::").partition(":")
    r_pid = rest.partition(":")[0]
    return (r_host == host and r_pid.isdigit()
            and (r_pid == my_pid or not _pid_alive(int(r_pid))))


class JobStore:
    """Create, read, claim and finish jobs. Each method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _tx(self) -> ContextManager[Connection]:
        return transaction(self.engine)

    # -- creating and reading -----------------------------------------------------------
    def create(self, kind: Kind | str, service: str, owner: str | None, caller: dict,
               request: str, params: dict | None = None, phase: str = PENDING,
               results: dict[str, str] | None = None, details: str | None = None,
               error: tuple[str, str] | None = None) -> Job:
        """A new job. Sync transfers pass ``phase=COMPLETED`` (or ERROR with ``error``)."""
        now = time.time()
        final = phase in FINAL
        values = dict(
            id=secrets.token_hex(12), kind=Kind(kind).value, service=service, owner=owner,
            caller=json.dumps(caller), phase=phase, created=now,
            started=now if final else None, ended=now if final else None, duration=0,
            destruction=now + DEFAULT_LIFETIME, request=request,
            params=json.dumps(params or {}), results=json.dumps(results or {}),
            details=details, error_code=error[0] if error else None,
            error_message=error[1] if error else None)
        with self._tx() as conn:
            conn.execute(insert(jobs).values(**values))
        return self.get(values["id"])  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row else None

    def phase(self, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(jobs.c.phase).where(jobs.c.id == job_id)).scalar()

    def list(self, service: str, owner: str | None, kinds: tuple[str, ...],
             phases: list[str] | None = None, after: float | None = None,
             last: int | None = None) -> list[Job]:
        """Jobs of ``kinds`` and ``owner`` (all owners if None) newest first, as UWS 1.1
        filters them."""
        query = select(jobs).where(jobs.c.service == service, jobs.c.kind.in_(kinds))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if phases:
            query = query.where(jobs.c.phase.in_(phases))
        else:
            query = query.where(jobs.c.phase != "ARCHIVED")
        if after is not None:
            query = query.where(jobs.c.created > after)
        query = query.order_by(jobs.c.created.desc())
        if last is not None:
            query = query.limit(last)
        with self.engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query)]

    # -- changing -----------------------------------------------------------------------
    def _set(self, job_id: str, where_phases: frozenset[str] | None, **values) -> bool:
        cond = jobs.c.id == job_id
        if where_phases is not None:
            cond = and_(cond, jobs.c.phase.in_(sorted(where_phases)))
        with self._tx() as conn:
            return conn.execute(update(jobs).where(cond).values(**values)).rowcount == 1

    def queue(self, job_id: str) -> bool:
        """PENDING -> QUEUED (PHASE=RUN); False if the job is past PENDING already."""
        return self._set(job_id, frozenset({PENDING}), phase=QUEUED)

    def abort(self, job_id: str) -> bool:
        return self._set(job_id, ACTIVE, phase=ABORTED, ended=time.time())

    def set_duration(self, job_id: str, seconds: int) -> bool:
        return self._set(job_id, frozenset({PENDING}), duration=seconds)

    def set_destruction(self, job_id: str, when: float) -> bool:
        return self._set(job_id, None, destruction=when)

    def delete(self, job_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute(delete(jobs).where(jobs.c.id == job_id)).rowcount == 1

    def claim(self, runner: str, job_id: str | None = None,
              from_phase: str = QUEUED) -> Job | None:
        """Take one QUEUED job (``job_id``, or the oldest) for ``runner``; None if none won.

        ``from_phase=PENDING`` starts a job that is run right here and must never be
        picked from the queue by a background runner (push/pull negotiation needs the
        request that started it)."""
        for candidate in ([job_id] if job_id else self._queued_ids()):
            now = time.time()
            with self._tx() as conn:
                won = conn.execute(update(jobs).where(
                    jobs.c.id == candidate, jobs.c.phase == from_phase).values(
                    phase=EXECUTING, runner=runner, heartbeat=now,
                    started=now)).rowcount == 1
            if won:
                return self.get(candidate)
        return None

    def _queued_ids(self, limit: int = 8) -> list[str]:
        query = (select(jobs.c.id).where(jobs.c.phase == QUEUED)
                 .order_by(jobs.c.created).limit(limit))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def count_by_phase(self) -> dict[tuple[str, str], int]:
        """(kind, phase) -> number of jobs, for the metrics."""
        query = select(jobs.c.kind, jobs.c.phase, func.count()).group_by(jobs.c.kind, jobs.c.phase)
        with self.engine.connect() as conn:
            return {(kind, phase): n for kind, phase, n in conn.execute(query)}

    def heartbeat(self, runner: str) -> None:
        with self._tx() as conn:
            conn.execute(update(jobs).where(jobs.c.runner == runner, jobs.c.phase == EXECUTING)
                         .values(heartbeat=time.time()))

    def finish(self, job_id: str, phase: str, results: dict[str, str] | None = None,
               details: str | None = None, error: tuple[str, str] | None = None) -> bool:
        """EXECUTING -> a final phase; does nothing if the job was aborted meanwhile."""
        values: dict = {"phase": phase, "ended": time.time(), "runner": None}
        if results is not None:
            values["results"] = json.dumps(results)
        if details is not None:
            values["details"] = details
        if error is not None:
            values["error_code"], values["error_message"] = error
        return self._set(job_id, frozenset({EXECUTING}), **values)

    def record_results(self, job_id: str, results: dict[str, str]) -> None:
        """Results so far (kept when the job is aborted part-way)."""
        self._set(job_id, None, results=json.dumps(results))

    # -- recovery and housekeeping ------------------------------------------------------
    def orphans(self, me: str) -> list[Job]:
        """EXECUTING jobs whose runner is dead: on this host with its pid gone (or our pid
        with another nonce, i.e. a previous life of this process id), or silent too long."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(jobs).where(jobs.c.phase == EXECUTING)))
        found = []
        for row in rows:
            if row.runner == me:
                continue
            silent = row.heartbeat is None or now - row.heartbeat > STALE_AFTER
            if runner_dead(row.runner, me) or silent:
                found.append(Job.from_row(row))
        return found

    def requeue(self, job: Job) -> bool:
        """Put an orphaned job back in the queue, if nobody else did first."""
        with self._tx() as conn:
            return conn.execute(update(jobs).where(
                jobs.c.id == job.id, jobs.c.phase == EXECUTING,
                jobs.c.runner == job.runner).values(phase=QUEUED, runner=None)).rowcount == 1

    def fail_orphan(self, job: Job, error: tuple[str, str]) -> bool:
        with self._tx() as conn:
            return conn.execute(update(jobs).where(
                jobs.c.id == job.id, jobs.c.phase == EXECUTING,
                jobs.c.runner == job.runner).values(
                phase=ERROR, runner=None, ended=time.time(), error_code=error[0],
                error_message=error[1])).rowcount == 1

    def overdue(self) -> list[Job]:
        """EXECUTING jobs past their executionDuration."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.phase == EXECUTING, jobs.c.duration > 0))
            return [Job.from_row(r) for r in rows if (r.started or now) + r.duration < now]

    def destroy_expired(self) -> int:
        with self._tx() as conn:
            return conn.execute(delete(jobs).where(jobs.c.destruction < time.time())).rowcount
