"""The Node model shared by every layer: what a node is, independent of how it is stored."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from . import properties as props


class NodeType(str, Enum):
    CONTAINER = "ContainerNode"
    DATA = "DataNode"
    LINK = "LinkNode"


class Detail(str, Enum):
    """How much a GET /nodes answer carries (the ``detail`` parameter)."""

    MIN = "min"
    MAX = "max"
    PROPERTIES = "properties"


@dataclass
class Node:
    """A node with its properties keyed by URI.

    In documents received from clients a property value of ``None`` means "delete it"
    (``xsi:nil="true"``). Nodes returned by storage carry only string values, computed
    ones (length, date, MD5, creator) included.
    """

    path: str
    type: NodeType
    properties: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    busy: bool = False
    children: list["Node"] | None = None

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def owner(self) -> str | None:
        return self.properties.get(props.CREATOR)

    @property
    def is_container(self) -> bool:
        return self.type is NodeType.CONTAINER

    @property
    def is_link(self) -> bool:
        return self.type is NodeType.LINK

    def flag(self, uri: str) -> bool:
        return (self.properties.get(uri) or "").lower() == "true"

    def group_uris(self, uri: str) -> list[str]:
        """The space-separated group URIs of ``groupread``/``groupwrite``."""
        value = self.properties.get(uri) or ""
        return [g for g in value.split() if g.upper() != "NONE"]
