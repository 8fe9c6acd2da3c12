"""vos-login: store the service URL and a token (file mode 0600) for the tools and library."""
from __future__ import annotations

import argparse
import getpass
import sys

from .. import errors
from ..client import Client
from ..config import Settings, config_path, load, save
from . import common


def body(args) -> int:
    current = load()
    if args.show:
        print(f"config: {config_path()}")
        print(f"url:    {current.url}")
        print(f"token:  {'set' if current.token else 'not set'}")
        print(f"verify: {current.verify}")
        return 0
    url = (args.url or current.url).rstrip("/")
    token = args.token
    if token is None:
        if sys.stdin.isatty():
            token = getpass.getpass("token (from `vospace token create` or the web login): ")
        else:
            token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise errors.InvalidArgument("no token given", "pass --token or type it when asked")
    settings = Settings(url=url, token=token, verify=not args.insecure)
    if not args.no_check:
        with Client(settings=settings) as client:
            client.transport.anonymous = False
            client.base_uri("vault")          # the service answers at this URL
            if client.transport.anonymous:
                raise errors.NotAuthenticated(f"{url} refused the token")
    path = save(settings)
    print(f"saved {url} and the token in {path} (mode 0600)")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(
        prog="vos-login", description="Store the VOSpace service URL and your token in "
        f"{config_path()} (mode 0600).\nEnvironment variables VOSPACE_URL, VOSPACE_TOKEN and "
        "VOSPACE_INSECURE=1 override it.", epilog=common.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="service base URL, e.g. https://vospace.example.org")
    p.add_argument("--token", help="the token (default: read from the terminal or stdin)")
    p.add_argument("-k", "--insecure", action="store_true",
                   help="do not verify the server's TLS certificate (test servers)")
    p.add_argument("--no-check", action="store_true", help="store without contacting the server")
    p.add_argument("--show", action="store_true", help="print the current settings")
    p.add_argument("-d", "--debug", action="store_true", help="print debug details")
    args = p.parse_args()
    args.verbose = args.warning = False
    common.run(body, args)
