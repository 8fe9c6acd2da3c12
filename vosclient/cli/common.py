"""What every tool shares: the CADC-compatible common flags, building the client from
flags/config/environment, and turning failures into one ``ERROR::`` line plus a fixed exit
status (tracebacks only with ``-d``)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from importlib import metadata
from typing import Callable

from .. import errors
from ..client import Client
from ..config import load

EPILOG = (errors.EXIT_CODES + "\n\nThe service URL and token come from `vos-login` "
          "(~/.config/vosclient/config.toml),\noverridden by VOSPACE_URL, VOSPACE_TOKEN, "
          "VOSPACE_INSECURE=1 and --token.\nNames: vos:path (vault), arc:path (arc), "
          "vos://authority~service/path.")


def version() -> str:
    try:
        return metadata.version("vospace-platform")
    except metadata.PackageNotFoundError:
        return "unknown"


def parser(prog: str, description: str, human_flag: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the flags every CADC tool accepts (``vls`` frees ``-h`` for
    ``--human``, as CADC's does)."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EPILOG,
                                add_help=not human_flag,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if human_flag:
        p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("--token", help="bearer token (default: from vos-login or VOSPACE_TOKEN)")
    p.add_argument("--certfile", help="accepted for compatibility; X.509 is not used")
    p.add_argument("--url", help="service base URL, e.g. https://host:8443")
    p.add_argument("-k", "--insecure", action="store_true",
                   help="do not verify the server's TLS certificate")
    p.add_argument("-d", "--debug", action="store_true", help="print debug details")
    p.add_argument("--vos-debug", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true", help="print progress messages")
    p.add_argument("-w", "--warning", action="store_true", help="print warnings only")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return p


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else \
        logging.WARNING if args.warning else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(message)s", stream=sys.stderr)
    if not args.debug:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)


def client_from(args: argparse.Namespace, **kwargs) -> Client:
    settings = load()
    if args.url:
        settings.url = args.url.rstrip("/")
    if args.token:
        settings.token = args.token
    if args.insecure:
        settings.verify = False
    client = Client(settings=settings, **kwargs)
    _clients.append(client)
    return client


_clients: list[Client] = []


def error(message: str) -> None:
    print(f"ERROR:: {message}", file=sys.stderr, flush=True)


def run(body: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> None:
    """Run a tool's body and exit with its status; expected failures print one line."""
    setup_logging(args)
    try:
        code = body(args) or 0
        if code == 0:   # on failure the error line already says what to do
            for notice in dict.fromkeys(n for c in _clients for n in c.transport.notices):
                print(f"WARNING:: {notice}", file=sys.stderr)
    except errors.VOSError as exc:
        if args.debug:
            traceback.print_exc()
        error(exc.line())
        code = exc.exit_code
    except KeyboardInterrupt:
        error("interrupted (run the same command again to resume)")
        sys.stdout.flush()
        os._exit(130)   # without waiting for transfer threads still blocked on the network
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except OSError as exc:  # local files: missing, unreadable, disk full
        if args.debug:
            traceback.print_exc()
        error(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
        code = {2: 2, 13: 13, 17: 17, 20: 20, 21: 21, 28: 28}.get(exc.errno or 0, 1)
    except Exception as exc:  # a bug: say so, with details on request
        if args.debug:
            traceback.print_exc()
        error(f"unexpected {exc.__class__.__name__}: {exc} (run with -d for details and "
              f"please report it)")
        code = 1
    sys.stdout.flush()
    sys.exit(code)
