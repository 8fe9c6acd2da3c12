"""The ``vospace`` administration command: serve, and manage users and tokens."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .cli_storage import add_commands as storage_commands
from .config import Settings, load_settings
from .migrations import SchemaOutdated

if TYPE_CHECKING:
    from .deployment import Deployment

USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None)
                 for k in ("data_dir", "host", "port", "tls", "data_port", "workers")}
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
    workers = f" ({settings.workers} worker processes)" if settings.workers > 1 else ""
    lines = [
        f"VOSpace server on {url}{workers}",
        f"  vault:    {url}/vault/nodes/      arc: {url}/arc/nodes/",
        f"  registry: {url}/reg/resource-caps",
        f"  sessions: {url}/science-portal (each app on its own host, "
        f"{scheme}://<id>.{settings.session_domain}:{settings.port})",
        *([f"  data port: {scheme}://{host}:{settings.data_port} (pre-authorized transfers)"]
          if settings.data_port else []),
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


def _first_start(settings: Settings, deployment: "Deployment") -> str:
    """The admin token file, written (with the admin's homes) on the first start of the
    deployment, not of this replica: replicas share the database, and each new pod of a
    Deployment would otherwise add an admin token."""
    token_file = _admin_token_file(settings)
    if not os.path.exists(token_file) and not deployment.auth.list_tokens(settings.admin_user):
        token = deployment.auth.create_token(settings.admin_user, label="first start")
        _write_secret(token_file, token)
        deployment.provision_user(settings.admin_user)
    return token_file


def _certificate(settings: Settings) -> tuple[str, str] | None:
    from .tls import ensure_self_signed

    if not settings.tls:
        return None
    return ensure_self_signed(settings.data_dir, [settings.host, f"*.{settings.session_domain}"])


def _serve_args(args: argparse.Namespace) -> list[str]:
    """This command's arguments as a worker needs them (the rest comes from the same
    environment and configuration file)."""
    argv = ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["serve", "--log-level", args.log_level]
    for option in ("host", "port", "data_port"):
        if getattr(args, option) is not None:
            argv += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    return argv + (["--tls"] if args.tls else [])


def cmd_serve(args: argparse.Namespace) -> int:
    from .deployment import Deployment
    from .workers import Supervisor

    settings = _settings(args)
    if settings.workers < 1:
        raise ValueError(f"workers must be at least 1, not {settings.workers}")
    if settings.workers == 1 or args.listen_fds:
        return _serve_here(args, settings)
    supervisor = Supervisor(settings, _serve_args(args))  # binds: a port in use stops here
    # The first start's work (schema, admin token, certificate) once, before the workers.
    deployment = Deployment(settings)
    token_file = _first_start(settings, deployment)
    deployment.close()
    _certificate(settings)
    print(_welcome(settings, token_file), flush=True)
    return supervisor.run()


def _serve_here(args: argparse.Namespace, settings: Settings) -> int:
    """Serve in this process: alone, or as one worker of ``--workers`` (``--listen-fds``)."""
    import uvicorn

    from .app import create_app
    from .dataport import start_data_server
    from .dataport.main_server import MainServer
    from .deployment import Deployment
    from .http_guard import GuardedHttpToolsProtocol
    from .services.audit import configure_access_log
    from .tls_suites import prefer_aes128
    from .uvicorn_tuning import raise_body_high_water
    from .workers import board_of, end_with_supervisor, inherited

    main_socket, data_socket = inherited(args.listen_fds) if args.listen_fds else (None, None)
    if args.listen_fds:
        end_with_supervisor(args.supervisor)
    deployment = Deployment(settings, board_of(args.worker_board) if args.worker_board else None)
    token_file = _first_start(settings, deployment)
    cert = _certificate(settings)
    ssl = {"ssl_certfile": cert[0], "ssl_keyfile": cert[1]} if cert else {}
    data_server = start_data_server(settings, deployment, cert, data_socket)
    if not args.listen_fds:
        print(_welcome(settings, token_file), flush=True)
    http = GuardedHttpToolsProtocol.configured(settings.header_timeout, settings.max_header_bytes)
    raise_body_high_water()
    configure_access_log(settings.access_log)
    config = uvicorn.Config(create_app(settings, deployment), host=settings.host,
                            port=settings.port, loop="uvloop", http=http,
                            log_level=args.log_level, server_header=False,
                            timeout_keep_alive=30, access_log=False,
                            timeout_graceful_shutdown=settings.shutdown_timeout, **ssl)
    config.load()  # uvicorn's TLS context made now, to order its suites as the data port's
    if config.ssl is not None:
        prefer_aes128(config.ssl)
    try:
        MainServer(config, data_server, settings.shutdown_timeout).run(
            sockets=[main_socket] if main_socket else None)
    finally:
        if data_server is not None:  # at once when uvicorn ended without a signal
            data_server.stop(0)
    return 0


def _deployment(args: argparse.Namespace) -> "Deployment":
    from .deployment import Deployment

    return Deployment(_settings(args))


def _check_user_name(name: str) -> None:
    if not USER_NAME.match(name):
        raise ValueError(f"invalid user name {name!r}")


def _read_password(args: argparse.Namespace) -> str | None:
    """The new password from stdin (--password-stdin) or a prompt (--password), else None."""
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    elif getattr(args, "password", False):
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ValueError("the passwords differ")
    else:
        return None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")
    return password


def cmd_user_create(args: argparse.Namespace) -> int:
    """Create (or update) a user, provision the vault and arc homes, optionally set a password."""
    _check_user_name(args.user)
    password = _read_password(args)
    deployment = _deployment(args)
    deployment.provision_user(args.user)
    if args.admin:
        deployment.auth.ensure_user(args.user, is_admin=True)
    if password is not None:
        deployment.auth.set_password(args.user, password)
    if args.quota:
        from .provisioning import set_home_quotas
        from .storage.quota import parse_size

        set_home_quotas(deployment, args.user, parse_size(args.quota))
    deployment.close()
    print(f"user {args.user} ready")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    password = _read_password(args)
    if password is None:
        raise ValueError("give --password or --password-stdin")
    deployment = _deployment(args)
    try:
        if deployment.auth.account(args.user) is None:
            raise ValueError(f"no user {args.user}")
        deployment.auth.set_password(args.user, password)
    finally:
        deployment.close()
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    for account in deployment.auth.list_users():
        flags = [f for f, on in (("admin", account.is_admin), ("disabled", account.disabled)) if on]
        print(f"{account.name}\t{','.join(flags) or '-'}")
    deployment.close()
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    try:
        if not deployment.auth.set_disabled(args.user, not args.enable):
            raise ValueError(f"no user {args.user}")
    finally:
        deployment.close()
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    _check_user_name(args.user)
    deployment = _deployment(args)
    deployment.provision_user(args.user)
    if args.admin:
        deployment.auth.ensure_user(args.user, is_admin=True)
    lifetime = args.days * 86400 if args.days is not None else None
    if args.expires is not None:
        lifetime = args.expires - time.time()
    print(deployment.auth.create_token(args.user, lifetime_s=lifetime, label=args.label or ""))
    deployment.close()
    return 0


def _utc_time(text: str) -> float:
    """``--expires``: an ISO 8601 time (UTC unless it names its zone) as a Unix time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def cmd_token_list(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    for info in deployment.auth.list_tokens(args.user):
        print(f"{info.id}\t{info.user}\t{info.state}\tcreated {_when(info.created)}\t"
              f"expires {_when(info.expires)}\t{info.label}")
    deployment.close()
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    deployment = _deployment(args)
    count = deployment.auth.revoke_token(args.token)
    deployment.close()
    if count == 0:
        raise ValueError(f"no token {args.token}")
    print(f"revoked {count} token(s)")
    return 0


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password", action="store_true", help="prompt for a password")
    group.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin")


def cmd_fsck(args: argparse.Namespace) -> int:
    """Report (and with --repair fix) bytes and metadata that disagree; 1 if any found."""
    from .deployment import Deployment
    from .storage.fsck import check_arc, check_vault

    deployment = Deployment(_settings(args))
    services = deployment.services
    found = check_vault(services["vault"].tree, args.repair, args.min_age) + \
        check_arc(services["arc"].tree, args.repair, args.min_age)
    deployment.close()
    for finding in found:
        print(f"{'repaired' if args.repair else 'found'} {finding}")
    print(f"fsck: {len(found)} problem(s){' repaired' if args.repair and found else ''}")
    return 1 if found and not args.repair else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Upgrade the metadata database to this version's schema; --check only compares."""
    from . import migrations
    from .storage.vault.schema import make_engine

    settings = _settings(args)
    os.makedirs(settings.data_dir, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        if args.check:
            with engine.connect() as conn:
                found = migrations.current(conn)
            print(f"schema at revision {found or 'none'}, this server's is {migrations.head()}")
            return 0 if found == migrations.head() else 1
        before, after = migrations.upgrade(engine)
    finally:
        engine.dispose()
    print(f"schema at revision {after}" + ("" if before == after else
                                           f" (upgraded from {before or 'nothing'})"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vospace", description=__doc__)
    parser.add_argument("--data-dir", help="data directory (default ~/.local/share/vospace)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-port", type=int,
                       help="also serve the bulk bytes on this port (README: the data port)")
    serve.add_argument("--tls", action="store_true", default=None,
                       help="serve https with a generated self-signed certificate")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--workers", type=int,
                       help="server processes sharing the ports (default 1; README: Workers)")
    serve.add_argument("--listen-fds", help=argparse.SUPPRESS)  # a worker's, from workers.py
    serve.add_argument("--supervisor", type=int, help=argparse.SUPPRESS)  # the same
    serve.add_argument("--worker-board", help=argparse.SUPPRESS)  # the same
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    ucreate = user_sub.add_parser("create", help="create USER with vault and arc homes")
    ucreate.add_argument("user")
    ucreate.add_argument("--admin", action="store_true", help="make the user an administrator")
    ucreate.add_argument("--quota", help="quota of both homes, e.g. 10G (vospace quota set "
                                         "changes one later)")
    _password_options(ucreate)
    ucreate.set_defaults(func=cmd_user_create)
    passwd = user_sub.add_parser("passwd", help="set USER's password (for /ac/login and Basic)")
    passwd.add_argument("user")
    _password_options(passwd)
    passwd.set_defaults(func=cmd_user_passwd)
    user_sub.add_parser("list", help="list users").set_defaults(func=cmd_user_list)
    disable = user_sub.add_parser("disable", help="refuse every credential of USER at once")
    disable.add_argument("user")
    disable.add_argument("--enable", action="store_true", help="re-enable instead")
    disable.set_defaults(func=cmd_user_disable)

    fsck = sub.add_parser("fsck", help="check stored bytes against metadata")
    fsck.add_argument("--repair", action="store_true",
                      help="delete orphan blobs and temp files; empty nodes whose blob is gone")
    fsck.add_argument("--min-age", type=float, default=0,
                      help="ignore files younger than this many seconds (on a live server)")
    fsck.set_defaults(func=cmd_fsck)

    migrate = sub.add_parser("migrate", help="upgrade the metadata database's schema")
    migrate.add_argument("--check", action="store_true",
                         help="only compare: exit 1 when the schema is not this version's")
    migrate.set_defaults(func=cmd_migrate)

    storage_commands(sub)

    token = sub.add_parser("token", help="manage bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token for USER (creating the user)")
    create.add_argument("user")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--days", type=float, help="lifetime in days (default: no expiry)")
    expiry.add_argument("--expires", type=_utc_time, metavar="TIME",
                        help="expiry as an ISO 8601 time, e.g. 2027-03-31T00:00:00Z "
                             "(UTC unless a zone is given; a past time makes the token "
                             "expired from the start)")
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    create.add_argument("--label")
    create.set_defaults(func=cmd_token_create)
    tlist = token_sub.add_parser("list", help="list tokens (ids, never the secrets)")
    tlist.add_argument("user", nargs="?")
    tlist.set_defaults(func=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token by its id or the token itself")
    revoke.add_argument("token")
    revoke.set_defaults(func=cmd_token_revoke)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, SchemaOutdated) as exc:
        print(f"ERROR:: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
