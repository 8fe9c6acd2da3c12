"""Consistency check of stored bytes against metadata (``vospace fsck [--repair]``).

Vault: blobs no node refers to (left by a crash between publishing a blob and committing
the row, or before deleting a replaced blob), node rows whose blob is missing, and temp
files of unfinished uploads. Arc: temp files of unfinished uploads anywhere in the tree.
Repair deletes orphan blobs and temp files and turns a node whose blob is gone into an
empty DataNode. With several vault blob stores (``blob_copies``), orphans and temp files
are looked for in every store, a blob is "missing" only when no store has it, and every
copy of every blob a node or version refers to is read in full: a copy whose size or MD5
is wrong (``corrupt copy``), or that is absent while not queued to be made (``missing
copy``), is repaired by copying a good one over it. On a live server, ``min_age`` spares files younger than that many seconds
(an upload may be between publishing its blob and committing its row).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from .arc.tree import ArcTree
from .streams import CHUNK, TEMP_PREFIX, older_than
from .vault.blobs import BlobStore
from .vault.copies import STORE_ERRORS, ReplicatedBlobStore, copy_blob
from .vault.copy_ledger import CORRUPT, MISSING, OK
from .vault.schema import nodes
from .vault.tree import VaultTree
from .vault.versions import versions


@dataclass(frozen=True)
class Finding:
    service: str
    problem: str   # "orphan blob", "missing blob", "temp debris", "missing/corrupt copy"
    where: str     # blob key, node path or file path

    def __str__(self) -> str:
        return f"{self.service}: {self.problem}: {self.where}"


def check_vault(tree: VaultTree, repair: bool = False, min_age: float = 0) -> list[Finding]:
    blobs = tree.blobs
    found = []
    if isinstance(blobs, ReplicatedBlobStore):  # first, so a repaired copy is not "missing"
        found += check_copies(tree.engine, blobs, repair)
    debris = blobs.debris(min_age)
    on_disk = list(blobs.keys(min_age))
    refs = tree.blob_references()  # read after listing: a blob committed meanwhile is kept
    kept = set(refs) | set(tree.version_references())
    found += [Finding("vault", "orphan blob", k) for k in on_disk if k not in kept]
    present = set(blobs.keys())
    found += [Finding("vault", "missing blob", path) for key, path in sorted(refs.items())
              if key not in present]
    found += [Finding("vault", "temp debris", n) for n in debris]
    if repair:
        for f in found:
            if f.problem.endswith(" copy"):
                continue  # repaired by check_copies
            if f.problem == "orphan blob":
                blobs.delete(f.where)
            elif f.problem == "missing blob":
                tree.forget_blob(f.where)
            else:
                blobs.remove_debris(f.where)
    return found


def referenced_blobs(engine: Engine) -> dict[str, tuple[str, str | None, int]]:
    """blob key -> (node path, or path@vN of a version; MD5; length) of every blob in use."""
    by_node = select(nodes.c.blob, nodes.c.path, nodes.c.md5, nodes.c.length).where(
        nodes.c.blob.isnot(None))
    by_version = select(versions.c.blob, nodes.c.path, versions.c.number, versions.c.md5,
                        versions.c.length).join(nodes, nodes.c.id == versions.c.node_id)
    with engine.connect() as conn:
        found = {r.blob: (f"{r.path}@v{r.number}", r.md5, r.length)
                 for r in conn.execute(by_version)}
        found.update({r.blob: (r.path, r.md5, r.length) for r in conn.execute(by_node)})
    return found


def verify_copy(store: BlobStore, key: str, md5: str | None, length: int) -> str:
    """``ok``, ``missing`` or ``corrupt`` (size or MD5 differ), reading the whole copy."""
    try:
        handle = store.open(key, md5, 0)
    except FileNotFoundError:
        return MISSING
    try:
        digest = hashlib.md5()
        for offset in range(0, handle.size, CHUNK):
            digest.update(handle.read(offset, CHUNK))
    finally:
        handle.close()
    good = handle.size == length and (md5 is None or digest.hexdigest() == md5)
    return OK if good else CORRUPT


def check_copies(engine: Engine, blobs: ReplicatedBlobStore, repair: bool) -> list[Finding]:
    """Every copy of every blob in use, in full; repair copies a good one over a bad one.
    Copies still queued (a fresh upload) are not problems; unreachable stores are."""
    found = []
    queued = blobs.ledger.queued_copies()
    for key, (where, md5, length) in sorted(referenced_blobs(engine).items()):
        states = {}
        for name, store in blobs.stores.items():
            if (key, name) in queued:
                continue
            try:
                states[name] = verify_copy(store, key, md5, length)
            except STORE_ERRORS as exc:
                found.append(Finding("vault", "unreachable copy", f"{name}:/{where} ({exc})"))
                continue
            blobs.ledger.record(key, name, md5, length, states[name])
        good = [n for n, state in states.items() if state == OK]
        for name, state in states.items():
            if state == OK:
                continue
            found.append(Finding("vault", f"{state} copy", f"{name}:/{where}"))
            if repair and good and copy_blob(blobs.stores[good[0]], blobs.stores[name], key,
                                             md5, lambda: None):
                blobs.ledger.record(key, name, md5, length, OK)
    return found


def check_arc(tree: ArcTree, repair: bool = False, min_age: float = 0) -> list[Finding]:
    found = []
    for folder, dirs, files in os.walk(tree.root):  # os.walk never follows symlinks here
        for name in files + dirs:
            full = os.path.join(folder, name)
            if name.startswith(TEMP_PREFIX) and older_than(full, min_age):
                found.append(Finding("arc", "temp debris", full))
    if repair:
        for f in found:
            try:
                os.unlink(f.where)
            except FileNotFoundError:
                pass
    return found
