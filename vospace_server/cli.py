"""The ``vospace`` administration command: serve, and manage users and tokens."""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from .config import Settings, load_settings

USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in ("data_dir", "host", "port", "tls")}
    return load_settings(overrides)


def _admin_token_file(settings: Settings) -> str:
    return os.path.join(settings.data_dir, "admin-token")


def _write_secret(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def _welcome(settings: Settings, token_file: str) -> str:
    scheme = "https" if settings.tls else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"{scheme}://{host}:{settings.port}"
    lines = [
        f"VOSpace server on {url}",
        f"  vault:    {url}/vault/nodes/      arc: {url}/arc/nodes/",
        f"  registry: {url}/reg/resource-caps",
        f"  admin token: {token_file}",
        "Try:",
        f"  curl {'-k ' if settings.tls else ''}-H \"Authorization: Bearer $(cat {token_file})\" "
        f"'{url}/vault/nodes/?limit=10'",
    ]
    if settings.tls:
        lines += [
            "With the CADC client (pip install vos):",
            f"  export LOCAL_VOSPACE_WEBSERVICE={host}:{settings.port}",
            f"  vls -k -l --token \"$(cat {token_file})\" vos:",
        ]
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .deployment import Deployment
    from .tls import ensure_self_signed

    settings = _settings(args)
    first_start = not os.path.exists(os.path.join(settings.data_dir, "admin-token"))
    deployment = Deployment(settings)
    token_file = _admin_token_file(settings)
    if first_start:
        token = deployment.auth.create_token(settings.admin_user, label="first start")
        _write_secret(token_file, token)
        deployment.provision_user(settings.admin_user)
    ssl: dict[str, str] = {}
    if settings.tls:
        cert, key = ensure_self_signed(settings.data_dir, [settings.host])
        ssl = {"ssl_certfile": cert, "ssl_keyfile": key}
    print(_welcome(settings, token_file), flush=True)
    uvicorn.run(create_app(settings, deployment), host=settings.host, port=settings.port,
                loop="uvloop", http="httptools", log_level=args.log_level, server_header=False,
                timeout_keep_alive=30, **ssl)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from .deployment import Deployment

    if not USER_NAME.match(args.user):
        print(f"ERROR:: invalid user name {args.user!r}", file=sys.stderr)
        return 2
    settings = _settings(args)
    deployment = Deployment(settings)
    deployment.provision_user(args.user)
    if args.admin:
        deployment.auth.ensure_user(args.user, is_admin=True)
    lifetime = args.days * 86400 if args.days else None
    print(deployment.auth.create_token(args.user, lifetime_s=lifetime, label=args.label or ""))
    deployment.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vospace", description=__doc__)
    parser.add_argument("--data-dir", help="data directory (default ~/.local/share/vospace)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--tls", action="store_true", default=None,
                       help="serve https with a generated self-signed certificate")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="manage bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token for USER (creating the user)")
    create.add_argument("user")
    create.add_argument("--days", type=float, help="lifetime in days (default: no expiry)")
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    create.add_argument("--label")
    create.set_defaults(func=cmd_token_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"ERROR:: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
