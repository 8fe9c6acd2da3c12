"""``arcfs mount URL MOUNTPOINT``, ``arcfs unmount MOUNTPOINT`` and the ``mount.arcfs``
helper that mount(8) runs for fstab entries of type ``arcfs``::

    https://vospace.example.org  /arc  arcfs  service=arc,token_file=/etc/arcfs.token,_netdev  0 0

Without ``--foreground`` the command starts the filesystem in a detached process and
returns once the mount is live (or reports why it failed), so scripts can use it at once.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import subprocess
import sys
import time

TOKEN_ENV = "ARCFS_TOKEN"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arcfs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mount", help="mount a VOSpace service")
    m.add_argument("url", help="server URL, e.g. https://host:8443")
    m.add_argument("mountpoint")
    m.add_argument("--token", help=f"bearer token (default ${TOKEN_ENV}, then vos-login's)")
    m.add_argument("--token-file", help="read the token from this file")
    m.add_argument("--service", choices=("arc", "vault"), default="arc")
    m.add_argument("--root", default="", help="subtree of the service to mount")
    m.add_argument("--foreground", "-f", action="store_true")
    m.add_argument("--cache-dir", help="where write spools live (default: a temp dir)")
    m.add_argument("--cache-size", type=int, default=0,
                   help="max bytes of spooled (not yet uploaded) data; 0 = no limit")
    m.add_argument("--attr-ttl", type=float, default=1.0, help="attribute cache TTL (s)")
    m.add_argument("--dir-ttl", type=float, default=1.0, help="listing cache TTL (s)")
    m.add_argument("--group", help="group URI that chmod g+r/g+w grants")
    m.add_argument("--timeout", type=float, default=20.0,
                   help="per-request timeout (s); an unreachable server gives EIO")
    m.add_argument("--insecure", "-k", action="store_true", help="skip TLS verification")
    m.add_argument("--allow-other", action="store_true")
    m.add_argument("--debug", action="store_true")
    u = sub.add_parser("unmount", help="unmount (returns at once; the mount's process "
                       "exits once the uploads still pending are done)")
    u.add_argument("mountpoint")
    return parser


def _token(args) -> str | None:
    if args.token_file:
        with open(args.token_file) as fh:
            return fh.read().strip()
    return args.token or os.environ.get(TOKEN_ENV)


def serve(args) -> None:
    """Run the filesystem in this process until unmounted."""
    from vosclient.client import Client

    from .fuse_adapter import mount
    from .logic import ArcFS, Options

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="arcfs %(levelname)s %(message)s")
    client = Client(url=args.url, token=_token(args), verify=False if args.insecure else None,
                    retries=2, backoff=0.25, timeout=args.timeout)
    mountpoint = os.path.abspath(args.mountpoint)
    fs = ArcFS(client, Options(service=args.service, root=args.root, mountpoint=mountpoint,
                               cache_dir=args.cache_dir, attr_ttl=args.attr_ttl,
                               dir_ttl=args.dir_ttl, group=args.group,
                               cache_size=args.cache_size))
    mount(fs, mountpoint, foreground=True, attr_ttl=args.attr_ttl, dir_ttl=args.dir_ttl,
          allow_other=args.allow_other, fsname=f"arcfs:{args.service}")


def _background(args, argv: list[str]) -> int:
    """Start ``arcfs mount --foreground`` detached; wait until the mount is live."""
    env = dict(os.environ)
    token = _token(args)
    if token:
        env[TOKEN_ENV] = token
    argv = [a for i, a in enumerate(argv) if a != "--token" and
            (i == 0 or argv[i - 1] != "--token") and not a.startswith("--token=")]
    log_path = os.path.join(args.cache_dir or "/tmp", f"arcfs-{os.getpid()}.log")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "arcfs", *argv, "--foreground"],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    mountpoint = os.path.abspath(args.mountpoint)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return 0
        if proc.poll() is not None:
            with open(log_path, errors="replace") as fh:
                sys.stderr.write(fh.read()[-2000:])
            print(f"arcfs: mount failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("arcfs: the mount did not come up within 30 s", file=sys.stderr)
    return 1


def unmount(mountpoint: str) -> int:
    result = subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"arcfs: {result.stderr.strip()}", file=sys.stderr)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "unmount":
        return unmount(args.mountpoint)
    if not os.path.isdir(args.mountpoint):
        print(f"arcfs: {args.mountpoint}: not a directory", file=sys.stderr)
        return 2
    if importlib.util.find_spec("mfusepy") is None:  # the client alone was installed
        print("arcfs: mounting needs the FUSE extra: pip install 'vospace-platform[fuse]'",
              file=sys.stderr)
        return 1
    if args.foreground:
        serve(args)
        return 0
    return _background(args, argv)


HELPER_FLAGS = {"foreground", "insecure", "allow_other", "debug"}
HELPER_IGNORED = {"_netdev", "rw", "defaults", "auto", "noauto", "user", "nouser", "nofail",
                  "exec", "noexec", "suid", "nosuid", "dev", "nodev"}


def helper_argv(argv: list[str]) -> list[str]:
    """``mount.arcfs URL DIR [-o a=b,c] [-f]`` (mount(8)'s calling convention) -> the
    equivalent ``arcfs mount`` arguments."""
    positional, options, extra = [], [], []
    it = iter(argv)
    for arg in it:
        if arg == "-o":
            options.extend(next(it, "").split(","))
        elif arg.startswith("-o"):
            options.extend(arg[2:].split(","))
        elif arg in ("-f", "--foreground"):
            extra.append("--foreground")
        elif arg in ("-n", "-s", "-v"):        # mount(8): no mtab, sloppy, verbose
            continue
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise SystemExit("usage: mount.arcfs URL MOUNTPOINT [-o option[,option...]]")
    out = ["mount", *positional, *extra]
    for option in filter(None, options):
        key, sep, value = option.partition("=")
        if key in HELPER_IGNORED:
            continue
        flag = "--" + key.replace("_", "-")
        if not sep:
            if key not in HELPER_FLAGS:
                raise SystemExit(f"mount.arcfs: option {key} needs a value")
            out.append(flag)
        else:
            out.extend([flag, value])
    return out


def mount_helper() -> int:
    return main(helper_argv(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
