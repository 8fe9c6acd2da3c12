"""Rules about stored properties that both backends apply identically."""
from __future__ import annotations

from ..protocol import properties as props
from ..protocol.faults import InvalidArgument


def storable_properties(changes: dict[str, str | None]) -> dict[str, str | None]:
    """Drop the read-only (computed) properties and normalize booleans.

    Read-only properties are dropped silently rather than refused: the CADC client re-posts
    every property of a node it fetched, and CADC's own services ignore them the same way.
    """
    kept: dict[str, str | None] = {}
    for uri, value in changes.items():
        uri = props.canonical_uri(uri)
        if uri in props.READ_ONLY:
            continue
        if value is not None and uri in props.BOOLEAN:
            value = props.normalize_boolean(value)
        if value is not None and uri == props.QUOTA:
            if not value.strip().isdigit():
                raise InvalidArgument(f"quota must be a whole number of bytes, got {value!r}")
            value = value.strip()
        kept[uri] = value
    return kept


def with_defaults(properties: dict[str, str | None]) -> dict[str, str | None]:
    """Properties every listed node carries even when never set (vls -l reads them)."""
    properties.setdefault(props.ISPUBLIC, "false")
    return properties


def apply_changes(current: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    merged = dict(current)
    for uri, value in changes.items():
        if value is None:
            merged.pop(uri, None)
        else:
            merged[uri] = value
    return merged


INHERITED = (props.ISPUBLIC, props.GROUPREAD, props.GROUPWRITE)


def inherits(parent: dict[str, str | None]) -> bool:
    return parent.get(props.INHERIT_PERMISSIONS) == "true"


def inherited(parent: dict[str, str | None], given: dict[str, str | None],
              is_container: bool = False) -> dict[str, str | None]:
    """A new node's permissions: under a folder with ``inheritPermissions``, the
    ``ispublic``/``groupread``/``groupwrite`` the node does not set itself come from the
    folder, and a new folder inherits too (CADC's behaviour; on arc the same as a POSIX
    default ACL, which a subdirectory also takes over)."""
    if not inherits(parent):
        return given
    result = dict(given)
    for uri in INHERITED:
        if result.get(uri) is None and parent.get(uri) is not None:
            result[uri] = parent[uri]
    if is_container and result.get(props.INHERIT_PERMISSIONS) is None:
        result[props.INHERIT_PERMISSIONS] = "true"
    return result


def imposed(parent: dict[str, str | None], is_container: bool) -> dict[str, str | None]:
    """The permission changes a node moved or copied into folder ``parent`` takes (and
    everything below it): none unless the folder has ``inheritPermissions``; then exactly
    the folder's, replacing its own, as if it had been created there."""
    if not inherits(parent):
        return {}
    changes = {uri: parent.get(uri) for uri in INHERITED}
    if is_container:
        changes[props.INHERIT_PERMISSIONS] = "true"
    return changes
