"""The image catalogue: which images may be launched, as which types, and how to run them here.

Read from a TOML file (``session_images``; the packaged ``images.toml`` by default). Its
format is described at the top of that file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BadRequest
from .model import SESSION_TYPES

DEFAULT_CATALOGUE = Path(__file__).with_name("images.toml")
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Image:
    id: str
    types: tuple[str, ...]
    digest: str = ""
    requires: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    software: str = ""  # a folder of software (a virtualenv) bound at /run/software


    def json(self) -> dict:
        """skaha's image entry; ``digest`` is required by clients, so an image configured
        without one gets a stable stand-in derived from its id."""
        digest = self.digest or "sha256:" + hashlib.sha256(self.id.encode()).hexdigest()
        return {"id": self.id, "types": list(self.types), "digest": digest}

    def missing_software(self) -> list[str]:
        """The required programs this host lacks (the local runner runs the host's software),
        and the image's software folder if it is not there (``make`` installs the default's)."""
        missing = [p for p in self.requires if shutil.which(p, path=HOST_PATH) is None]
        if self.software and not os.path.isfile(os.path.join(self.software, "bin", "python")):
            missing.append(self.software)
        return missing


@dataclass
class Catalogue:
    repositories: tuple[str, ...]
    images: dict[str, Image] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str = "") -> "Catalogue":
        path = path or str(DEFAULT_CATALOGUE)
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        here = os.path.dirname(os.path.abspath(path))
        catalogue = cls(tuple(data.get("repositories", ())))
        for entry in data.get("image", []):
            image = Image(id=entry["id"], types=tuple(entry["types"]),
                          digest=entry.get("digest", ""),
                          requires=tuple(entry.get("requires", ())),
                          command=tuple(entry.get("command", ())),
                          software=os.path.normpath(os.path.join(here, entry["software"]))
                          if entry.get("software") else "")
            unknown = set(image.types) - set(SESSION_TYPES)
            if unknown:
                raise ValueError(f"image {image.id}: unknown session types {sorted(unknown)}")
            catalogue.images[image.id] = image
        return catalogue

    def listing(self, session_type: str | None = None) -> list[Image]:
        return [i for i in self.images.values() if session_type is None or session_type in i.types]

    def resolve(self, image_id: str, session_type: str | None) -> tuple[Image, str]:
        """The image and the session type to run it as, or skaha's 400 message."""
        if not image_id:
            raise BadRequest("Missing parameter 'image'")
        if not any(image_id.startswith(f"{repo}/") for repo in self.repositories):
            raise BadRequest(f"session image must come from one of [{','.join(self.repositories)}]")
        image = self.images.get(image_id)
        if image is None:
            raise BadRequest(f"image not found or not labelled: {image_id}")
        if session_type is None:
            return image, image.types[0]
        if session_type not in SESSION_TYPES:
            raise BadRequest(f"Illegal session type: {session_type}")
        if session_type not in image.types:
            raise BadRequest(f"image/type mismatch: {image_id}/{session_type}")
        return image, session_type
