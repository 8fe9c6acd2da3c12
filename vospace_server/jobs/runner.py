"""Runs queued UWS jobs: inline for a short budget, then in this process's worker threads.

Every server process has one JobRunner. A background thread claims QUEUED jobs from the
shared table (any process may win a job, see ``storage.jobs``), keeps a heartbeat on the
jobs it runs, aborts jobs past their executionDuration, destroys expired ones, and on start
(and every ``SWEEP`` seconds) deals with jobs orphaned by a dead process: recursive
delete/setprops are idempotent and go back to the queue; a move/copy/push/pull is failed
with ``TransferFailed``, because whether its effect happened is for the user to check.

``run_now`` is what makes fast jobs finish before the client's first poll: the POST that
sets PHASE=RUN claims the job itself and waits up to a budget for it before answering.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..auth.groups import normalize_group_properties
from ..protocol import uris
from ..protocol.faults import DuplicateNode, VOSpaceFault
from ..protocol.transfer import parse_transfer
from ..storage.jobs import (ABORTED, COMPLETED, ERROR, Job, JobStore, Kind, runner_identity)
from . import actions

if TYPE_CHECKING:
    from ..deployment import Deployment

log = logging.getLogger("vospace.jobs")
SWEEP = 10.0
INTERRUPTED = ("TransferFailed",
               "TransferFailed: the server process running this job stopped before it "
               "finished; check the destination before running it again")


def error_of(fault: VOSpaceFault) -> tuple[str, str]:
    """(text of /error, errorSummary message). /error is the bare fault name, which the
    CADC client maps to an errno by exact match; it expects ``DuplicateNode.`` with a dot."""
    code = fault.fault_name + ("." if isinstance(fault, DuplicateNode) else "")
    return code, fault.body().strip()


class JobRunner:
    def __init__(self, deployment: "Deployment", threads: int = 4,
                 poll_interval: float = 0.5) -> None:
        self.deployment = deployment
        self.store: JobStore = deployment.jobs
        self.me = runner_identity()
        self.threads = threads
        self.poll_interval = poll_interval
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="uws-job")
        self._busy = threading.Semaphore(threads)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self.sweep()
        self._thread = threading.Thread(target=self._loop, name="uws-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; running jobs stop at their next check and are handed back
        (``_release``), so a shutdown never waits for a long copy."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stop.wait(self.poll_interval):
            try:
                self.store.heartbeat(self.me)
                if time.monotonic() - last_sweep > SWEEP:
                    self.sweep()
                    last_sweep = time.monotonic()
                while self._busy.acquire(blocking=False):
                    job = self.store.claim(self.me)
                    if job is None:
                        self._busy.release()
                        break
                    self._submit(job, counted=True)
            except Exception:  # keep the loop alive through a database hiccup
                log.exception("job runner loop")

    def sweep(self) -> None:
        """Recover orphaned jobs, abort overdue ones, destroy expired ones."""
        for job in self.store.orphans(self.me):
            self._release(job, f"orphaned by {job.runner}")
        for job in self.store.overdue():
            self.store.abort(job.id)
        self.store.destroy_expired()

    def _release(self, job: Job, why: str) -> None:
        """An EXECUTING job whose runner is gone or stopping: recursive delete/setprops are
        idempotent and go back to the queue; a transfer is failed (TransferFailed)."""
        if job.kind in (Kind.DELETE.value, Kind.SETPROPS.value):
            if self.store.requeue(job):
                log.warning("job %s %s: queued again", job.id, why)
        elif self.store.fail_orphan(job, INTERRUPTED):
            log.warning("job %s %s: failed", job.id, why)

    # -- running ------------------------------------------------------------------------
    def _submit(self, job: Job, counted: bool) -> Future:
        """Run a claimed job on the pool; ``counted``: it holds a ``_busy`` slot."""
        def task() -> None:
            try:
                self.execute(job)
            finally:
                if counted:
                    self._busy.release()
        return self.pool.submit(task)

    async def run_now(self, job_id: str, budget: float) -> None:
        """Claim ``job_id`` and run it, waiting up to ``budget`` seconds for it to end."""
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(None, self.store.claim, self.me, job_id)
        if job is None:
            return  # another process took it, or it was aborted
        # not counted against the background slots: behind a full pool it simply waits
        future = asyncio.wrap_future(self._submit(job, counted=False))
        try:
            await asyncio.wait_for(asyncio.shield(future), budget)
        except asyncio.TimeoutError:
            pass

    def execute(self, job: Job) -> None:
        """Run one claimed job to a final phase (never raises)."""
        progress = actions.Progress(
            lambda: self._stop.is_set() or self.store.phase(job.id) == ABORTED)
        try:
            results = self._perform(job, progress)
        except actions.Aborted:
            if self._stop.is_set() and self.store.phase(job.id) != ABORTED:
                self._release(job, "interrupted by a server shutdown")
            elif job.kind in (Kind.DELETE.value, Kind.SETPROPS.value):
                self.store.record_results(job.id, progress.results())  # what was done
            return
        except VOSpaceFault as fault:
            self.store.finish(job.id, ERROR, error=error_of(fault))
            return
        except Exception:
            log.exception("job %s failed", job.id)
            self.store.finish(job.id, ERROR, error=("InternalFault",
                              "InternalFault: unexpected server error; see the server log"))
            return
        self.store.finish(job.id, COMPLETED, results=results)

    def _perform(self, job: Job, progress: actions.Progress) -> dict[str, str]:
        service = self.deployment.services[job.service]
        caller = actions.caller_from(job.caller)
        authorities = self.deployment.settings.accepted_authorities
        if job.kind == Kind.DELETE.value:
            path = uris.path_in_service(job.params["target"], service.name, authorities)
            actions.recursive_delete(service.tree, caller, path, progress)
            return progress.results()
        if job.kind == Kind.SETPROPS.value:
            path = uris.path_in_service(job.params["target"], service.name, authorities)
            changes = normalize_group_properties(job.params["properties"], service.authority)
            actions.recursive_set_properties(service.tree, caller, path, changes, progress)
            return progress.results()
        transfer = parse_transfer(job.request.encode())
        final = actions.node_transfer(service.tree, service.name, caller, transfer, authorities,
                                      progress)
        return {"destination": f"{service.base_uri}/{uris.normalize_path(final)}"}
