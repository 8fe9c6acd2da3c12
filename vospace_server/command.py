"""The ``vospace`` command's entry point, in front of ``cli``.

The base install is the client: it has this command but not the server's dependencies,
which come with the ``[server]`` extra. Without them the command says so in one line
instead of a traceback.
"""
from __future__ import annotations

import sys

OUR_PACKAGES = {"vospace_server", "vosclient", "arcfs"}


def main() -> int:
    try:
        from .cli import main as run

        return run()
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in OUR_PACKAGES:
            raise
        print(f"ERROR:: {exc}: the server needs pip install 'vospace-platform[server]'",
              file=sys.stderr)
        return 1
