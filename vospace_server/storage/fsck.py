"""Consistency check of stored bytes against metadata (``vospace fsck [--repair]``).

Vault: blobs no node refers to (left by a crash between publishing a blob and committing
the row, or before deleting a replaced blob), node rows whose blob is missing, and temp
files of unfinished uploads. Arc: temp files of unfinished uploads anywhere in the tree.
Repair deletes orphan blobs and temp files and turns a node whose blob is gone into an
empty DataNode. On a live server, ``min_age`` spares files younger than that many seconds
(an upload may be between publishing its blob and committing its row).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .arc.tree import ArcTree
from .streams import TEMP_PREFIX, older_than
from .vault.tree import VaultTree


@dataclass(frozen=True)
class Finding:
    service: str
    problem: str   # "orphan blob", "missing blob", "temp debris"
    where: str     # blob key, node path or file path

    def __str__(self) -> str:
        return f"{self.service}: {self.problem}: {self.where}"


def check_vault(tree: VaultTree, repair: bool = False, min_age: float = 0) -> list[Finding]:
    blobs = tree.blobs
    debris = blobs.debris(min_age)
    on_disk = list(blobs.keys(min_age))
    refs = tree.blob_references()  # read after listing: a blob committed meanwhile is kept
    kept = set(refs) | set(tree.version_references())
    found = [Finding("vault", "orphan blob", k) for k in on_disk if k not in kept]
    present = set(blobs.keys())
    found += [Finding("vault", "missing blob", path) for key, path in sorted(refs.items())
              if key not in present]
    found += [Finding("vault", "temp debris", n) for n in debris]
    if repair:
        for f in found:
            if f.problem == "orphan blob":
                blobs.delete(f.where)
            elif f.problem == "missing blob":
                tree.forget_blob(f.where)
            else:
                blobs.remove_debris(f.where)
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
