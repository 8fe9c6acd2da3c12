"""Provisioning of projects and quota administration (what ``vospace project|quota`` do).

A project ``P`` is ``/projects/P`` on arc and on vault, created by an administrator (its
creator) and shared with one group: ``groupread`` and ``groupwrite`` are that group's URI,
so every member reads and writes it. Quotas are the ``quota`` property of such roots
(and of homes); see ``storage/quota.py`` for how usage is kept.
"""
from __future__ import annotations

from .auth.groups import group_uri
from .deployment import Deployment
from .protocol import properties as props
from .protocol.faults import DuplicateNode, InvalidArgument, NodeNotFound
from .protocol.nodes import Node, NodeType
from .protocol.uris import normalize_path, parent_of

SERVICES = ("arc", "vault")


def project_path(name: str) -> str:
    """Projects live at the same path on both services."""
    return f"projects/{name}"


def _ensure_container(deployment: Deployment, service: str, path: str, owner: str,
                      properties: dict[str, str]) -> None:
    tree = deployment.services[service].tree
    try:
        tree.create(Node(path, NodeType.CONTAINER, properties=dict(properties)), owner=owner)
    except DuplicateNode:
        if properties:
            tree.update_properties(path, dict(properties))


def provision_project(deployment: Deployment, name: str, group: str, quota: int | None,
                      creator: str) -> dict[str, str]:
    """Create (or update) project ``name`` on both services; returns service -> path.

    The group is created (owned by ``creator``) if it does not exist yet."""
    normalize_path(name)
    if "/" in name:
        raise InvalidArgument(f"a project name is one path component, not {name!r}")
    try:
        deployment.groups.get(group)
    except NodeNotFound:
        deployment.groups.create(group, creator)
    uri = group_uri(deployment.settings.authority, group)
    # inheritPermissions: what members create inside is shared with the group too.
    properties = {props.GROUPREAD: uri, props.GROUPWRITE: uri, props.INHERIT_PERMISSIONS: "true"}
    if quota is not None:
        properties[props.QUOTA] = str(quota)
    made = {}
    for service in SERVICES:
        path = project_path(name)
        if service == "vault":  # vault has no projects/ folder until the first project
            _ensure_container(deployment, service, parent_of(path), creator,
                              {props.ISPUBLIC: "true"})
        _ensure_container(deployment, service, path, creator, properties)
        made[service] = path
    return made


def set_home_quotas(deployment: Deployment, user: str, quota: int) -> None:
    """The same quota on the user's vault home ``/<user>`` and arc home ``/home/<user>``."""
    for service, path in (("vault", user), ("arc", f"home/{user}")):
        set_quota(deployment, service, path, quota)


def parse_location(text: str) -> tuple[str, str]:
    """``arc:projects/p`` or ``vault:/alice`` -> (service, normalized path)."""
    service, sep, path = text.partition(":")
    if not sep or service not in SERVICES:
        raise InvalidArgument(f"give SERVICE:PATH with SERVICE one of {', '.join(SERVICES)}, "
                              f"not {text!r}")
    return service, normalize_path(path)


def set_quota(deployment: Deployment, service: str, path: str, quota: int | None) -> Node:
    tree = deployment.services[service].tree
    node = tree.resolve(path)[-1]
    if not node.is_container:
        raise InvalidArgument(f"/{path} is not a container; quotas apply to containers")
    return tree.update_properties(path, {props.QUOTA: None if quota is None else str(quota)})


def describe_quota(node: Node) -> str:
    quota = node.properties.get(props.QUOTA)
    used = node.properties.get(props.LENGTH, "0")
    free = node.properties.get(props.AVAILABLE_SPACE)
    return f"/{node.path}\tquota {quota or 'none'}\tused {used}\tavailable {free or '-'}"
