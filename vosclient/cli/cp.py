"""vcp: copy files and trees between the local disk and VOSpace (vault or arc), or between
nodes (a server-side copy). Identical files are skipped (size, then MD5) in both directions;
downloads resume from ``<file>.part``; many files go in parallel; failures are summarized."""
from __future__ import annotations

import sys

from .. import errors
from . import common
from .copying import Copier, Options, patterns


def add_transfer_flags(p) -> None:
    p.add_argument("--exclude", action="append",
                   help="skip files whose name matches (comma-separated globs/substrings)")
    p.add_argument("--include", action="append",
                   help="copy only files whose name matches (comma-separated)")
    p.add_argument("-L", "--follow-links", action="store_true",
                   help="follow local symbolic links (default: skip them)")
    p.add_argument("-j", "--jobs", "-n", "--nstreams", type=int, default=8, dest="jobs",
                   help="parallel transfers (default 8, at most 32)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true",
                   help="show the progress bar even when stderr is not a terminal")


def options_from(args, **overrides) -> Options:
    return Options(include=patterns(args.include), exclude=patterns(args.exclude),
                   follow_links=args.follow_links, jobs=args.jobs,
                   progress=False if args.quiet else (True if args.progress else None),
                   **overrides)


def copy(args, sources: list[str], **overrides) -> int:
    """Plan, run and summarize (shared by vcp and vsync)."""
    copier = Copier(common.client_from(args), options_from(args, **overrides))
    copier.plan(sources, args.destination)
    copier.execute()
    return copier.finish()


def body(args) -> int:
    if args.head:
        raise errors.InvalidArgument("--head (FITS header extraction) is not supported")
    return copy(args, args.source, skip_identical=not args.no_skip,
                resume=not args.no_resume, interrogate=args.interrogate)


def main() -> None:
    p = common.parser("vcp", "Copy files to and from VOSpace. Always recursive.\n\n"
                      "  vcp file.fits vos:alice/          upload into a container\n"
                      "  vcp -r dir arc:home/alice/        upload a tree\n"
                      "  vcp 'vos:alice/run/*.fits' .      download matches\n"
                      "  vcp vos:alice/a vos:alice/b       server-side copy")
    p.add_argument("source", nargs="+", help="file/directory/node to copy from")
    p.add_argument("destination", help="file/directory/node to copy to")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="copy directories (always on, as in the CADC vcp)")
    p.add_argument("-i", "--interrogate", action="store_true",
                   help="ask before overwriting existing files")
    p.add_argument("--no-skip", action="store_true",
                   help="transfer even files that are identical at the destination")
    p.add_argument("--no-resume", action="store_true",
                   help="restart downloads from zero instead of resuming a .part file")
    p.add_argument("--overwrite", action="store_true", help="accepted for compatibility")
    p.add_argument("--quick", action="store_true", help="accepted for compatibility")
    p.add_argument("--ignore", action="store_true",
                   help="accepted for compatibility (vcp always continues past failures "
                        "and summarizes them)")
    p.add_argument("--head", action="store_true", help="not supported")
    add_transfer_flags(p)
    args = p.parse_args()
    if len(args.source) < 1:
        p.error("source and destination are required")
    common.run(body, args)


if __name__ == "__main__":
    sys.exit(main())
