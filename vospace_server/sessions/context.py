"""The resource context (``GET /context``) and how a launch's cores/ram/gpus are checked.

Flexible sessions (neither ``cores`` nor ``ram`` given) request the context's defaults and
may burst to its default limits; fixed ones (either given) get request == limit, the value
not given taking its default, as skaha does.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from .errors import BadRequest


def _options(text: str) -> tuple[int, ...]:
    return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))


@dataclass(frozen=True)
class Resources:
    cores_request: int
    cores_limit: int
    ram_request: int   # GB
    ram_limit: int
    gpus: int
    fixed: bool


@dataclass(frozen=True)
class ResourceContext:
    cores: tuple[int, ...]
    ram: tuple[int, ...]
    gpus: tuple[int, ...]
    default_cores: int
    default_ram: int
    limit_cores: int
    limit_ram: int
    max_interactive: int

    @classmethod
    def from_settings(cls, s: Settings) -> "ResourceContext":
        return cls(_options(s.session_cores), _options(s.session_ram), _options(s.session_gpus),
                   s.session_default_cores, s.session_default_ram, s.session_limit_cores,
                   s.session_limit_ram, s.session_max_interactive)

    def json(self) -> dict:
        return {
            "cores": {"default": self.default_cores, "defaultRequest": self.default_cores,
                      "defaultLimit": self.limit_cores, "options": list(self.cores)},
            "memoryGB": {"default": self.default_ram, "defaultRequest": self.default_ram,
                         "defaultLimit": self.limit_ram, "options": list(self.ram)},
            "gpus": {"options": list(self.gpus)},
            "maxInteractiveSessions": self.max_interactive,
        }

    def resources(self, cores: str | None, ram: str | None, gpus: str | None) -> Resources:
        core_count = _choice("cores", cores, self.cores)
        ram_gb = _choice("ram", ram, self.ram)
        gpu_count = _choice("gpus", gpus, self.gpus) or 0
        if core_count is None and ram_gb is None:
            return Resources(self.default_cores, self.limit_cores, self.default_ram,
                             self.limit_ram, gpu_count, fixed=False)
        core_count = core_count or self.default_cores
        ram_gb = ram_gb or self.default_ram
        return Resources(core_count, core_count, ram_gb, ram_gb, gpu_count, fixed=True)


def _choice(name: str, value: str | None, options: tuple[int, ...]) -> int | None:
    """``value`` as one of ``options``, or skaha's message (it reports both an unparsable
    and an unavailable value as invalid)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number not in options:
        raise BadRequest(f"Invalid value for '{name}': {value}")
    return number
