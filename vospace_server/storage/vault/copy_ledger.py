"""Which copies of each vault blob exist, and the queue of copies still to make.

Two tables in the metadata database, shared by every server process:

- ``blob_copies``: one row per (blob, store) copy known to exist, with its MD5 and length
  (the MD5 of the bytes as last read, filled in when a background copy or fsck read them)
  and its state: ``ok``, or ``missing``/``corrupt`` once a read or fsck found it so.
- ``copy_queue``: what the background copier (copy_worker.py) still has to do: ``copy`` a
  blob into a store, or ``delete`` it from a store that was unreachable at delete time. Any
  process takes a task with an atomic conditional ``UPDATE`` (a claim, as UWS jobs are
  taken); a failed attempt goes back with a later ``due`` time (exponential backoff); a
  task whose runner died (same host and pid gone, or no heartbeat for ``STALE_AFTER``
  seconds) is claimed again, so a killed server loses nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import (BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text,
                        and_, delete, func, insert, or_, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from ..jobs import STALE_AFTER, runner_dead
from ..transactions import transaction
from .schema import Id, nodes

metadata = MetaData()

OK, MISSING, CORRUPT = "ok", "missing", "corrupt"
COPY, DELETE = "copy", "delete"
BACKOFF_BASE = 2.0     # seconds before the first retry; doubles per failed attempt
BACKOFF_MAX = 600.0

blob_copies = Table(
    "blob_copies", metadata,
    Column("blob", Text, primary_key=True),
    Column("store", Text, primary_key=True),
    Column("md5", String(32), nullable=True),
    Column("length", BigInteger, nullable=True),
    Column("state", String(16), nullable=False),
    Column("checked", Float, nullable=False),
)

copy_queue = Table(
    "copy_queue", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("blob", Text, nullable=False),
    Column("store", Text, nullable=False),           # the store to copy into / delete from
    Column("op", String(8), nullable=False),         # copy | delete
    Column("md5", String(32), nullable=True),        # expected bytes, when known
    Column("attempts", Integer, nullable=False, default=0),
    Column("due", Float, nullable=False),
    Column("runner", Text, nullable=True),           # host:pid:nonce of the claimant
    Column("heartbeat", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created", Float, nullable=False),
    Index("ix_copy_queue_blob_store", "blob", "store", unique=True),
    Index("ix_copy_queue_due", "due"),
)


@dataclass(frozen=True)
class Task:
    id: int
    blob: str
    store: str
    op: str
    md5: str | None
    attempts: int
    runner: str


@dataclass(frozen=True)
class Backlog:
    tasks: int       # queued copies and deletes
    failing: int     # of which at least one attempt failed
    oldest: float | None  # creation time of the oldest task


def backoff(attempts: int) -> float:
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


class CopyLedger:
    """The two tables; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # tables made by the migrations (0003)

    def _tx(self):
        return transaction(self.engine)

    # -- recording copies ---------------------------------------------------------------
    def published(self, blob: str, store: str, length: int, others: Iterable[str]) -> None:
        """A new blob is durable in ``store``; queue its copies into ``others``."""
        now = time.time()
        with self._tx() as conn:
            conn.execute(insert(blob_copies).values(blob=blob, store=store, md5=None,
                                                    length=length, state=OK, checked=now))
            rows = [dict(blob=blob, store=s, op=COPY, md5=None, attempts=0, due=now,
                         created=now) for s in others]
            if rows:
                conn.execute(insert(copy_queue), rows)

    def record(self, blob: str, store: str, md5: str | None, length: int | None,
               state: str = OK) -> None:
        """What a read, a copy or fsck found about one copy (insert or update)."""
        values = dict(md5=md5, length=length, state=state, checked=time.time())
        with self._tx() as conn:
            self._upsert(conn, blob, store, values)

    @staticmethod
    def _upsert(conn, blob: str, store: str, values: dict) -> None:
        where = and_(blob_copies.c.blob == blob, blob_copies.c.store == store)
        if conn.execute(update(blob_copies).where(where).values(**values)).rowcount == 0:
            conn.execute(insert(blob_copies).values(blob=blob, store=store, **values))

    def copies(self, blob: str) -> dict[str, tuple[str, str | None]]:
        """store -> (state, md5) of every copy recorded for ``blob``."""
        query = select(blob_copies.c.store, blob_copies.c.state, blob_copies.c.md5).where(
            blob_copies.c.blob == blob)
        with self.engine.connect() as conn:
            return {r.store: (r.state, r.md5) for r in conn.execute(query)}

    def report(self, blob: str, store: str, problem: str, md5: str | None = None) -> bool:
        """Copy ``store`` of ``blob`` is missing or corrupt: mark it and queue it to be made
        again (expecting ``md5``). False when the ledger never had that copy (a copy not
        made yet, or a blob deleted meanwhile): nothing to report then."""
        now = time.time()
        where = and_(blob_copies.c.blob == blob, blob_copies.c.store == store)
        with self._tx() as conn:
            if conn.execute(update(blob_copies).where(where, blob_copies.c.state == OK)
                            .values(state=problem, checked=now)).rowcount == 0:
                return False
            self._enqueue(conn, blob, store, COPY, md5, now)
        return True

    @staticmethod
    def _enqueue(conn, blob: str, store: str, op: str, md5: str | None, now: float) -> None:
        """Queue ``op``, replacing any task of the same blob and store not running now."""
        same = and_(copy_queue.c.blob == blob, copy_queue.c.store == store)
        conn.execute(delete(copy_queue).where(same, copy_queue.c.runner.is_(None)))
        try:
            with conn.begin_nested():
                conn.execute(insert(copy_queue).values(blob=blob, store=store, op=op, md5=md5,
                                                       attempts=0, due=now, created=now))
        except IntegrityError:  # a runner has it now; that one will do
            pass

    def enqueue(self, blob: str, stores: Iterable[str], op: str,
                md5: str | None = None) -> None:
        now = time.time()
        with self._tx() as conn:
            for store in stores:
                self._enqueue(conn, blob, store, op, md5, now)

    def forget(self, blob: str) -> None:
        """The blob is being deleted: no copies to keep or make any more."""
        with self._tx() as conn:
            conn.execute(delete(blob_copies).where(blob_copies.c.blob == blob))
            conn.execute(delete(copy_queue).where(copy_queue.c.blob == blob))

    # -- the queue ------------------------------------------------------------------------
    def claim(self, runner: str) -> Task | None:
        """Take the next due task (or one whose runner died) for ``runner``."""
        now = time.time()
        for row in self._candidates(runner, now):
            with self._tx() as conn:
                won = conn.execute(update(copy_queue).where(
                    copy_queue.c.id == row.id, or_(copy_queue.c.runner.is_(None),
                                                   copy_queue.c.runner == row.runner))
                    .values(runner=runner, heartbeat=now)).rowcount == 1
            if won:
                return Task(row.id, row.blob, row.store, row.op, row.md5, row.attempts, runner)
        return None

    def _candidates(self, me: str, now: float, limit: int = 8) -> list:
        query = (select(copy_queue).where(copy_queue.c.due <= now, or_(
            copy_queue.c.runner.is_(None), copy_queue.c.runner != me))
            .order_by(copy_queue.c.due).limit(limit * 4))
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        return [r for r in rows if r.runner is None or runner_dead(r.runner, me)
                or r.heartbeat is None or now - r.heartbeat > STALE_AFTER][:limit]

    def heartbeat(self, task: Task) -> None:
        with self._tx() as conn:
            conn.execute(update(copy_queue).where(copy_queue.c.id == task.id,
                                                  copy_queue.c.runner == task.runner)
                         .values(heartbeat=time.time()))

    def finish_copy(self, task: Task, md5: str, length: int, source: str) -> bool:
        """The copy is durable in ``task.store`` (read from ``source``): record both copies
        and drop the task. False if the task is no longer ours: the blob was deleted
        meanwhile (its copies are then forgotten too), or another process took it over."""
        now = time.time()
        with self._tx() as conn:
            if conn.execute(delete(copy_queue).where(copy_queue.c.id == task.id,
                                                     copy_queue.c.runner == task.runner)
                            ).rowcount == 0:
                return False
            for store in (task.store, source):
                self._upsert(conn, task.blob, store,
                             dict(md5=md5, length=length, state=OK, checked=now))
        return True

    def finish(self, task: Task) -> None:
        with self._tx() as conn:
            conn.execute(delete(copy_queue).where(copy_queue.c.id == task.id,
                                                  copy_queue.c.runner == task.runner))

    def retry_later(self, task: Task, error: str) -> None:
        attempts = task.attempts + 1
        with self._tx() as conn:
            conn.execute(update(copy_queue).where(copy_queue.c.id == task.id,
                                                  copy_queue.c.runner == task.runner)
                         .values(runner=None, heartbeat=None, attempts=attempts,
                                 due=time.time() + backoff(attempts), error=error[:500]))

    def release(self, task: Task) -> None:
        """Hand an unfinished task back untouched (shutdown)."""
        with self._tx() as conn:
            conn.execute(update(copy_queue).where(copy_queue.c.id == task.id,
                                                  copy_queue.c.runner == task.runner)
                         .values(runner=None, heartbeat=None))

    def queued_copies(self) -> set[tuple[str, str]]:
        """(blob, store) of every copy still queued to be made."""
        query = select(copy_queue.c.blob, copy_queue.c.store).where(copy_queue.c.op == COPY)
        with self.engine.connect() as conn:
            return {(blob, store) for blob, store in conn.execute(query)}

    # -- reporting ------------------------------------------------------------------------
    def backlog(self) -> Backlog:
        query = select(func.count(), func.count().filter(copy_queue.c.attempts > 0),
                       func.min(copy_queue.c.created))
        with self.engine.connect() as conn:
            tasks, failing, oldest = conn.execute(query).one()
        return Backlog(tasks, failing, oldest)

    def errors(self, limit: int = 20) -> list[tuple[str, str, str, int, str | None]]:
        """(blob, store, op, attempts, last error) of failing tasks, most tried first."""
        query = (select(copy_queue.c.blob, copy_queue.c.store, copy_queue.c.op,
                        copy_queue.c.attempts, copy_queue.c.error)
                 .where(copy_queue.c.attempts > 0)
                 .order_by(copy_queue.c.attempts.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def short_of_copies(self, wanted: int, limit: int = 50) -> tuple[int, list[tuple[str, int]]]:
        """DataNodes whose blob has fewer than ``wanted`` good copies: how many, and the
        first ``limit`` as (path, good copies)."""
        good = (select(blob_copies.c.blob, func.count().label("n"))
                .where(blob_copies.c.state == OK).group_by(blob_copies.c.blob).subquery())
        n = func.coalesce(good.c.n, 0)
        where = and_(nodes.c.blob.isnot(None), n < wanted)
        joined = nodes.outerjoin(good, good.c.blob == nodes.c.blob)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(joined).where(where)).scalar()
            rows = conn.execute(select(nodes.c.path, n).select_from(joined).where(where)
                                .order_by(nodes.c.path).limit(limit)).all()
        return total or 0, [(path, count) for path, count in rows]
