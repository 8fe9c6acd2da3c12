"""vsync: make the destination hold the same files as the sources, transferring only files
that differ (MD5 by default, size only with --ignore-checksum), in parallel. Works in both
directions (local -> VOSpace as the CADC vsync, and VOSpace -> local)."""
from __future__ import annotations

from . import common
from .cp import add_transfer_flags, copy


def body(args) -> int:
    return copy(args, args.files, recursive=args.recursive, checksum=not args.ignore_checksum,
                skip_identical=not args.overwrite)


def main() -> None:
    p = common.parser("vsync", "A script for sending files to (or fetching them from) "
                      "VOSpace via multiple connection streams.\n\nRun it again until no "
                      "errors are reported: identical files are skipped.")
    p.add_argument("files", nargs="+", help="files or directories to synchronise")
    p.add_argument("destination", help="VOSpace (or local) destination")
    p.add_argument("-r", "--recursive", action="store_true", help="descend into directories")
    p.add_argument("--ignore-checksum", action="store_true",
                   help="compare sizes only, not MD5 checksums")
    p.add_argument("--overwrite", action="store_true", help="transfer even identical files")
    p.add_argument("--cache_nodes", action="store_true", help="accepted for compatibility")
    p.add_argument("--cache_filename", help="accepted for compatibility")
    p.add_argument("--load_test", action="store_true", help="accepted for compatibility")
    add_transfer_flags(p)
    common.run(body, p.parse_args())
