"""``vospace project|quota`` sub-commands (storage administration; see provisioning.py)."""
from __future__ import annotations

import argparse
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
