"""Where the tools find the service URL and token.

Order (later wins): the config file written by ``vos-login`` (TOML, mode 0600), then the
environment (``VOSPACE_URL``, ``VOSPACE_TOKEN``, ``VOSPACE_INSECURE``; ``LOCAL_VOSPACE_WEBSERVICE``
``host:port`` as the CADC client reads it), then command-line flags.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "https://127.0.0.1:8443"


def config_path() -> Path:
    explicit = os.environ.get("VOSCLIENT_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "vosclient" / "config.toml"


@dataclass
class Settings:
    url: str = DEFAULT_URL
    token: str | None = None
    verify: bool = True


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def load(path: Path | None = None) -> Settings:
    """Settings from the config file then the environment."""
    settings = Settings()
    path = path or config_path()
    if path.is_file():
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        settings.url = data.get("url", settings.url)
        settings.token = data.get("token") or None
        settings.verify = not data.get("insecure", False)
    env = os.environ
    if env.get("LOCAL_VOSPACE_WEBSERVICE"):
        settings.url = "https://" + env["LOCAL_VOSPACE_WEBSERVICE"].strip().rstrip("/")
    if env.get("VOSPACE_URL"):
        settings.url = env["VOSPACE_URL"].strip()
    if env.get("VOSPACE_TOKEN"):
        settings.token = env["VOSPACE_TOKEN"].strip()
    if env.get("VOSPACE_INSECURE"):
        settings.verify = not _truthy(env["VOSPACE_INSECURE"])
    settings.url = settings.url.rstrip("/")
    return settings


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write the config file with mode 0600 (it holds a credential) from the first byte."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"url = {_quote(settings.url)}"]
    if settings.token:
        lines.append(f"token = {_quote(settings.token)}")
    lines.append(f"insecure = {'false' if settings.verify else 'true'}")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
