"""``vospace project|quota`` sub-commands (storage administration; see provisioning.py)."""
from __future__ import annotations

import argparse
import time
from typing import Callable

from .protocol.faults import VOSpaceFault


def _with_deployment(action: Callable[..., int]) -> Callable[[argparse.Namespace], int]:
    """Run ``action(deployment, args)``; protocol faults become command-line errors."""
    def run(args: argparse.Namespace) -> int:
        from .cli import _deployment

        deployment = _deployment(args)
        try:
            return action(deployment, args)
        except VOSpaceFault as fault:
            raise ValueError(f"{fault.fault_name}: {fault.detail}") from None
        finally:
            deployment.close()
    return run


def _project_create(deployment, args) -> int:
    from .provisioning import provision_project
    from .storage.quota import parse_size

    quota = parse_size(args.quota) if args.quota else None
    made = provision_project(deployment, args.name, args.group, quota,
                             args.creator or deployment.settings.admin_user)
    for service, path in made.items():
        print(f"{service}: /{path}")
    return 0


def _quota_set(deployment, args) -> int:
    from .provisioning import describe_quota, parse_location, set_quota
    from .storage.quota import parse_size

    service, path = parse_location(args.location)
    size = None if args.size.lower() == "none" else parse_size(args.size)
    print(describe_quota(set_quota(deployment, service, path, size)))
    return 0


def _quota_show(deployment, args) -> int:
    from .provisioning import describe_quota, parse_location

    service, path = parse_location(args.location)
    print(describe_quota(deployment.services[service].tree.resolve(path)[-1]))
    return 0


def _quota_recount(deployment, args) -> int:
    from .provisioning import parse_location

    locations = [args.location] if args.location else ["arc:", "vault:"]
    for location in locations:
        service, path = parse_location(location)
        total = deployment.services[service].tree.recount(path)
        print(f"{service}: /{path}\t{total} bytes")
    return 0


def _arc(deployment):
    return deployment.services["arc"].tree


def _snapshot_create(deployment, args) -> int:
    store = _arc(deployment).snapshots
    if not (args.all or args.root):
        raise ValueError("give ROOT (home/NAME or projects/NAME) or --all")
    for root in (store.roots() if args.all else [_root(args.root)]):
        print(f"{root}\t{store.create(root)}")
    return 0


def _snapshot_list(deployment, args) -> int:
    store = _arc(deployment).snapshots
    for root in ([_root(args.root)] if args.root else store.roots()):
        for stamp in store.list(root):
            print(f"{root}\t{stamp}")
    return 0


def _snapshot_delete(deployment, args) -> int:
    _arc(deployment).snapshots.delete(_root(args.root), args.stamp)
    return 0


def _snapshot_restore(deployment, args) -> int:
    from .protocol.uris import normalize_path

    tree = _arc(deployment)
    root = _root(args.root)
    restored = tree.restore_snapshot(root, args.stamp, normalize_path(args.path or ""))
    print(f"restored /{restored} from {args.stamp}")
    return 0


def _root(text: str) -> str:
    from .protocol.uris import normalize_path

    return normalize_path(text.removeprefix("arc:"))


def _versions_prune(deployment, args) -> int:
    count = deployment.services["vault"].tree.prune_versions()
    print(f"pruned {count} version(s)")
    return 0


def _copies_status(deployment, args) -> int:
    """The copy queue and the DataNodes with fewer good copies than there are stores."""
    if deployment.copier is None:
        print("blob_copies is not set: vault keeps one copy of each file")
        return 0
    store = deployment.copier.store
    ledger = store.ledger
    print("stores: " + ", ".join(store.names) + f" (primary: {store.primary})")
    backlog = ledger.backlog()
    age = "" if backlog.oldest is None else f", oldest queued {time.time() - backlog.oldest:.0f} s ago"
    print(f"backlog: {backlog.tasks} queued, {backlog.failing} failing{age}")
    total, short = ledger.short_of_copies(len(store.names), args.limit)
    print(f"files with fewer than {len(store.names)} good copies: {total}")
    for path, good in short:
        print(f"  /{path}\t{good} of {len(store.names)}")
    for blob, target, op, attempts, error in ledger.errors(args.limit):
        print(f"failing: {op} {blob} -> {target} after {attempts} attempt(s): {error}")
    return 0


def _posix_passwd(deployment, args) -> int:
    print("\n".join(deployment.posix.passwd()))
    return 0


def _posix_group(deployment, args) -> int:
    print("\n".join(deployment.posix.group()))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    project = sub.add_parser("project", help="manage projects (/projects/NAME on arc and vault)")
    project_sub = project.add_subparsers(dest="project_command", required=True)
    pcreate = project_sub.add_parser("create", help="create project NAME shared with group G")
    pcreate.add_argument("name")
    pcreate.add_argument("--group", required=True, help="the project group (created if missing)")
    pcreate.add_argument("--quota", help="size limit, e.g. 10G")
    pcreate.add_argument("--creator", help="owner of the project folders (default: admin)")
    pcreate.set_defaults(func=_with_deployment(_project_create))

    quota = sub.add_parser("quota", help="quotas of homes and projects")
    quota_sub = quota.add_subparsers(dest="quota_command", required=True)
    qset = quota_sub.add_parser("set", help="set the quota of SERVICE:PATH (e.g. arc:projects/p)")
    qset.add_argument("location")
    qset.add_argument("size", help="e.g. 10G, 500M, 1000; 'none' removes the quota")
    qset.set_defaults(func=_with_deployment(_quota_set))
    qshow = quota_sub.add_parser("show", help="quota, usage and room left of SERVICE:PATH")
    qshow.add_argument("location")
    qshow.set_defaults(func=_with_deployment(_quota_show))
    qrecount = quota_sub.add_parser("recount",
                                    help="recompute usage from what is stored (after direct "
                                         "disk changes); default: everything")
    qrecount.add_argument("location", nargs="?")
    qrecount.set_defaults(func=_with_deployment(_quota_recount))

    snap = sub.add_parser("snapshot", help="arc snapshots of homes and projects "
                                           "(shown read-only under ROOT/.snapshots/)")
    snap_sub = snap.add_subparsers(dest="snapshot_command", required=True)
    screate = snap_sub.add_parser("create", help="snapshot ROOT (home/NAME or projects/NAME)")
    screate.add_argument("root", nargs="?")
    screate.add_argument("--all", action="store_true", help="every home and project")
    screate.set_defaults(func=_with_deployment(_snapshot_create))
    slist = snap_sub.add_parser("list", help="snapshots of ROOT (default: all roots)")
    slist.add_argument("root", nargs="?")
    slist.set_defaults(func=_with_deployment(_snapshot_list))
    sdelete = snap_sub.add_parser("delete", help="delete snapshot STAMP of ROOT")
    sdelete.add_argument("root")
    sdelete.add_argument("stamp")
    sdelete.set_defaults(func=_with_deployment(_snapshot_delete))
    srestore = snap_sub.add_parser("restore", help="put PATH (default: everything) of snapshot "
                                                   "STAMP back into ROOT, replacing it")
    srestore.add_argument("root")
    srestore.add_argument("stamp")
    srestore.add_argument("path", nargs="?", help="relative to ROOT")
    srestore.set_defaults(func=_with_deployment(_snapshot_restore))

    versions = sub.add_parser("versions", help="vault versions")
    versions_sub = versions.add_subparsers(dest="versions_command", required=True)
    versions_sub.add_parser("prune", help="apply version_keep and version_max_age_days to "
                                          "every node now").set_defaults(
        func=_with_deployment(_versions_prune))

    copies = sub.add_parser("copies", help="vault copies in several blob stores (blob_copies)")
    copies_sub = copies.add_subparsers(dest="copies_command", required=True)
    cstatus = copies_sub.add_parser("status", help="the copy backlog and files with fewer "
                                                   "copies than configured")
    cstatus.add_argument("--limit", type=int, default=50, help="files and failures listed")
    cstatus.set_defaults(func=_with_deployment(_copies_status))

    posix = sub.add_parser("posix", help="POSIX ids of users and groups (posix-mapper)")
    posix_sub = posix.add_subparsers(dest="posix_command", required=True)
    posix_sub.add_parser("passwd", help="/etc/passwd lines for every user").set_defaults(
        func=_with_deployment(_posix_passwd))
    posix_sub.add_parser("group", help="/etc/group lines for every group").set_defaults(
        func=_with_deployment(_posix_group))
