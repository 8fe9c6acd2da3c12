"""vls: list nodes, with the CADC tool's flags and ``-l`` column layout, plus ``-R``."""
from __future__ import annotations

import math
import re
import sys
import time

from .. import errors, uris
from ..client import Client
from ..nodes import Node
from . import common

GMS_PREFIX = re.compile(r"ivo://[^ ]*?/gms[?#]")


def permissions(node: Node) -> str:
    """``drw-r-----`` as CADC prints it: owner rw always, group r/w when a group is set,
    other r when public."""
    perm = list("-rw-------")
    if node.isdir:
        perm[0] = "d"
    elif node.islink:
        perm[0] = "l"
    if node.ispublic:
        perm[7] = "r"
    if node.groupwrite != "NONE":
        perm[5] = "w"
    if node.groupread != "NONE":
        perm[4] = "r"
    return "".join(perm)


def size_text(size: int, human: bool) -> str:
    if human and size > 0:
        scale = min(int(math.log(size) / math.log(1024)), 4)
        text = "%.0f%s" % (size / 1024.0 ** scale, "BKMGT"[scale])
    else:
        text = str(int(size))
    return "%12s " % text


def date_text(epoch: float) -> str:
    local = time.localtime(epoch)
    if time.localtime().tm_year != local.tm_year:
        return time.strftime("%b %d  %Y ", local)
    return time.strftime("%b %d %H:%M ", local)


def creator_text(creator: str) -> str:
    match = re.search("CN=([^,]*)", creator)
    return match.group(1).replace(" ", "_").lower() if match else creator


def line(node: Node, long: bool, group: bool, human: bool) -> str:
    if not (long or group):
        return node.name            # CADC shows link targets only in long listings
    name = f"{node.name} -> {node.target}" if node.islink else node.name
    parts = ["{:<11}".format(permissions(node))]
    if long:
        parts.append(" {:<20}".format(creator_text(node.creator)))
    parts.append(" {:<15}".format(GMS_PREFIX.sub("", node.groupread)))
    parts.append(" {:<15}".format(GMS_PREFIX.sub("", node.groupwrite)))
    parts.append(" {:<8}".format("LOCKED" if node.islocked else ""))
    parts.append(size_text(node.size, human))
    parts.append(date_text(node.mtime))
    return "".join(parts) + name


def ordering(args) -> tuple[str | None, str | None]:
    """(sort, order) exactly as the CADC vls asks the server for them."""
    sort = "length" if args.Size else "date" if args.time else None
    if sort is None and not args.reverse:
        return None, None
    if args.reverse:
        return sort, "asc" if sort else "desc"
    return sort, "desc" if sort else "asc"


def sort_nodes(items: list[Node], args) -> list[Node]:
    """Nodes named on the command line, in the order the server would list them."""
    sort, order = ordering(args)
    if sort is None and order is None:
        return items
    key = {"length": lambda n: (n.size, n.name), "date": lambda n: (n.mtime, n.name),
           None: lambda n: (n.name,)}[sort]
    return sorted(items, key=key, reverse=order == "desc")


def resolve(client: Client, remote: uris.Remote, node: Node, follow: bool) -> Node:
    hops = 0
    while follow and node.islink and node.target and node.target.startswith("vos://") \
            and hops < 10:
        node = client.get_node(node.target)
        hops += 1
    return node


def body(args) -> int:
    out = sys.stdout
    client = common.client_from(args)
    files: list[Node] = []
    dirs: list[tuple[Node, uris.Remote]] = []
    for name in args.node:
        if not uris.is_remote(name):
            raise errors.InvalidArgument(f"Invalid node name: {name}",
                                         "use vos:path, arc:path or vos://authority~service/path")
        targets = client.glob(name)
        if not targets and uris.has_wildcard(name):
            raise errors.NotFound(f"{name}: no match")
        for remote in targets:
            node = client.get_node(remote)
            node = resolve(client, remote, node, not args.long or name.endswith("/"))
            if node.isdir:
                dirs.append((node, uris.Remote(remote.service, node.path)))
            else:
                files.append(node)
    for node in sort_nodes(files, args):
        out.write(line(node, args.long, args.group, args.human) + "\n")
    several = len(dirs) + len(files) > 1 or args.recursive
    for node, remote in sort_nodes_pairs(dirs, args):
        listing(client, remote, node, args, several, out)
    return 0


def sort_nodes_pairs(pairs, args):
    order = sort_nodes([n for n, _ in pairs], args)
    index = {id(n): r for n, r in pairs}
    return [(n, index[id(n)]) for n in order]


def listing(client: Client, remote: uris.Remote, node: Node, args, header: bool, out) -> None:
    if header:
        out.write(f"\n{remote.path if args.recursive else node.name}:\n")
        if args.long:
            out.write(f"total: {node.size}\n")
    sort, order = ordering(args)
    children = client.iterdir(remote, sort=sort, order=order)
    subdirs = []
    for child in children:
        out.write(line(child, args.long, args.group, args.human) + "\n")
        if args.recursive and child.isdir:
            subdirs.append(child)
    for child in subdirs:
        listing(client, remote.child(child.name), child, args, True, out)


def main() -> None:
    p = common.parser("vls", "lists the contents of a VOSpace Node.\n\nLong listing provides "
                      "the file size, ownership and read/write status of Node.",
                      human_flag=True)
    p.add_argument("node", nargs="+", help="URI of VOSpace Node to list (wildcards allowed).")
    p.add_argument("-l", "--long", action="store_true", help="verbose listing sorted by name")
    p.add_argument("-g", "--group", action="store_true",
                   help="display group read/write information")
    p.add_argument("-h", "--human", action="store_true", help="make sizes human readable")
    p.add_argument("-S", "--Size", action="store_true", help="sort files by size")
    p.add_argument("-r", "--reverse", action="store_true", help="reverse the sort order")
    p.add_argument("-t", "--time", action="store_true", help="sort by time copied to VOSpace")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="list containers recursively")
    common.run(body, p.parse_args())
