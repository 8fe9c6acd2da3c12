"""The parameters of ``POST /session``, checked before anything is created.

``cmd``, ``args`` and ``env`` become an argv list and an environment dict that the runners
pass to ``exec`` directly: nothing here or there goes through a shell, so quotes, ``;``,
``$()`` and newlines stay data. ``args`` is split on whitespace as skaha splits it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import BadRequest

NAME = re.compile(r"[A-Za-z0-9\-]+")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_NAME = 63          # a DNS label: the name becomes the sandbox's (or pod's) hostname
MAX_TEXT = 64 * 1024   # cmd, args, each env entry
MAX_ENV = 256
RESERVED_ENV = ("HOME", "PWD", "USER", "LOGNAME", "OMP_NUM_THREADS")


@dataclass
class LaunchRequest:
    name: str
    image: str
    type: str | None
    cores: str | None
    ram: str | None
    gpus: str | None
    cmd: str | None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def has_command(self) -> bool:
        return bool(self.cmd or self.args)


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise BadRequest(f"parameter '{name}' is longer than {MAX_TEXT} characters")
    if "\0" in value:
        raise BadRequest(f"parameter '{name}' contains a NUL character")
    return value


def _env(entries: list[str]) -> dict[str, str]:
    if len(entries) > MAX_ENV:
        raise BadRequest(f"at most {MAX_ENV} 'env' parameters")
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = (_text("env", entry) or "").partition("=")
        if not sep or not ENV_KEY.fullmatch(key):
            raise BadRequest(f"Invalid value for 'env': {entry!r} (expected KEY=VALUE)")
        if key in RESERVED_ENV or key.startswith("skaha_"):
            raise BadRequest(f"Invalid value for 'env': {key} is set by the session service")
        env[key] = value
    return env


def parse_launch(params: dict[str, list[str]]) -> LaunchRequest:
    """From the request's parameters (query and form, each name to all its values)."""
    def one(name: str) -> str | None:
        values = params.get(name) or []
        return _text(name, values[-1]) if values else None

    name = one("name")
    if name is None:
        raise BadRequest("Missing parameter 'name'")
    if not name.strip():
        raise BadRequest("name must have a value")
    if not NAME.fullmatch(name):
        raise BadRequest("name can only contain alpha-numeric chars and '-'")
    if len(name) > MAX_NAME:
        raise BadRequest(f"name can be at most {MAX_NAME} characters")
    cmd = one("cmd")
    if cmd and "=" in cmd:
        raise BadRequest("Invalid value for 'cmd': a program name cannot contain '='")
    args = one("args")
    return LaunchRequest(name=name, image=one("image") or "", type=one("type") or None,
                         cores=one("cores"), ram=one("ram"), gpus=one("gpus"),
                         cmd=cmd or None, args=args.split() if args else [],
                         env=_env(params.get("env") or []))
