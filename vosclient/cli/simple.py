"""The one-request tools: vmkdir, vmv, vrm, vrmdir, vcat, vln, vtag, vchmod, vlock."""
from __future__ import annotations

import pprint
import re
import sys

from .. import errors, transfer, uris
from ..nodes import prop_uri, short_name
from . import common

ISLOCKED = prop_uri("islocked")


def remote_arg(name: str) -> uris.Remote:
    if not uris.is_remote(name):
        raise errors.InvalidArgument(f"{name} is not a valid VOSpace handle",
                                     "use vos:path, arc:path or vos://authority~service/path")
    return uris.parse(name)


def expand(client, name: str) -> list[uris.Remote]:
    """Wildcards in the last component are expanded over one listing."""
    remote = remote_arg(name)
    if not uris.has_wildcard(remote.name):
        return [remote]
    matches = client.glob(name)
    if not matches:
        raise errors.NotFound(f"{name}: no match")
    return matches


def _tool(prog: str, description: str, setup, body) -> None:
    """A command: ``setup(parser)`` adds its arguments, ``body(args, client)`` does it."""
    p = common.parser(prog, description)
    setup(p)
    common.run(lambda args: body(args, common.client_from(args)), p.parse_args())


# ---- vmkdir ---------------------------------------------------------------------------------
def vmkdir() -> None:
    def setup(p):
        p.add_argument("container_node", help="Name of the container node to create.")
        p.add_argument("-p", action="store_true", help="Create intermediate directories as "
                       "required.")

    def body(args, client):
        client.mkdir(remote_arg(args.container_node), parents=args.p)

    _tool("vmkdir", "Creates a new VOSpace ContainerNode (aka directory).", setup, body)


# ---- vmv ------------------------------------------------------------------------------------
def vmv() -> None:
    def setup(p):
        p.add_argument("source", help="The name of the node to move (wildcards allowed).")
        p.add_argument("destination", help="VOSpace destination to move source to.")

    def body(args, client):
        dest = remote_arg(args.destination)
        sources = expand(client, args.source)
        if len(sources) > 1 and not client.isdir(dest):
            raise errors.NotAContainer(f"{dest}: moving several nodes needs a container")
        for src in sources:
            client.move(src, dest)

    _tool("vmv", "Move node to newNode, if newNode is a container then move node into "
          "newNode.\nOne server-side move, whatever the size of the tree.", setup, body)


# ---- vrm / vrmdir ---------------------------------------------------------------------------
def vrm() -> None:
    def setup(p):
        p.add_argument("-R", "--recursive", action="store_true",
                       help="Delete a file or directory even if it's not empty.")
        p.add_argument("node", nargs="+", help="file, link or possibly directory to delete "
                       "(wildcards allowed)")

    def body(args, client):
        for name in args.node:
            for remote in expand(client, name):
                node = client.get_node(remote)
                if node.isdir and not args.recursive:
                    raise errors.IsAContainer(f"{remote} is a directory",
                                              "use vrmdir, or vrm -R")
                client.delete(remote)

    _tool("vrm", "Delete files, links or (with -R) containers from VOSpace.", setup, body)


def vrmdir() -> None:
    def setup(p):
        p.add_argument("nodes", nargs="+", help="Container nodes to delete from VOSpace")

    def body(args, client):
        for name in args.nodes:
            for remote in expand(client, name):
                if not client.get_node(remote).isdir:
                    raise errors.NotAContainer(f"{remote} is a not a container node",
                                               "use vrm for files and links")
                client.delete(remote)

    _tool("vrmdir", "Deletes a ContainerNode (directory) from VOSpace. CAUTION: The "
          "container need not be empty.", setup, body)


# ---- vcat -----------------------------------------------------------------------------------
def vcat() -> None:
    def setup(p):
        p.add_argument("source", nargs="+", help="source to cat to stdout out.")
        p.add_argument("--head", action="store_true", help="not supported")
        p.add_argument("-q", action="store_true", help="run quietly, exit on error without "
                       "message")

    def body(args, client):
        if args.head:
            raise errors.InvalidArgument("--head (FITS headers) is not supported")
        out = sys.stdout.buffer
        code = 0
        for name in args.source:
            try:
                for remote in expand(client, name):
                    response = transfer.open_get(client, remote, {})
                    try:
                        for chunk in response.iter_raw(transfer.CHUNK):
                            out.write(chunk)
                    finally:
                        response.close()
            except errors.VOSError as exc:
                code = exc.exit_code
                if not args.q:
                    common.error(exc.line())
        out.flush()
        return code

    _tool("vcat", "Write the content of source (eg. vos:Node/filename) to stdout.", setup,
          body)


# ---- vln ------------------------------------------------------------------------------------
def vln() -> None:
    def setup(p):
        p.add_argument("source", help="location that link will point to.")
        p.add_argument("target", help="location of the LinkNode")

    def body(args, client):
        client.link(remote_arg(args.target), args.source)

    _tool("vln", "vln creates a new VOSpace entry (LinkNode, target) that has the same "
          "modes as the source Node.", setup, body)


# ---- vtag -----------------------------------------------------------------------------------
def vtag() -> None:
    def setup(p):
        p.add_argument("node", help="Node to set property (tag/attribute) on")
        p.add_argument("property", nargs="*",
                       help="Property whose value will be read (key), set (key=value) or "
                            "deleted (key=)")
        p.add_argument("--remove", action="store_true", help="remove the listed property")
        p.add_argument("-R", "--recursive", action="store_true",
                       help="perform the operation recursively on all the descendants")

    def body(args, client):
        remote = remote_arg(args.node)
        node = client.get_node(remote)
        if not args.property:
            pprint.pprint({short_name(k): v for k, v in node.props.items()})
            return 0
        changes: dict[str, str | None] = {}
        for prop in args.property:
            key, eq, value = prop.partition("=")
            if "=" in value:
                raise errors.InvalidArgument(
                    f"Illegal keyword of value character ('=') used: {prop}")
            if args.remove or (eq and not value):
                changes[key] = None
            elif eq:
                changes[key] = value
            else:
                pprint.pprint(node.prop(key))
        if changes:
            targets = [remote]
            if args.recursive and node.isdir:
                targets += [c.child(n.name) for c, _, files in client.walk(remote)
                            for n in files] + [c.child(d.name) for c, dirs, _ in
                                               client.walk(remote) for d in dirs]
            for target in targets:
                client.set_props(target, changes)
        return 0

    _tool("vtag", "Set, read or delete properties (tags) of a node; with no property, "
          "print them all.", setup, body)


# ---- vchmod ---------------------------------------------------------------------------------
MODE = re.compile(r"^(og|go|o|g)([+\-=])(rw|wr|r|w)$")


def vchmod() -> None:
    def setup(p):
        p.add_argument("mode", help="permission setting accepted modes: "
                       r"(og|go|o|g)[+-=](rw|wr|r|w)")
        p.add_argument("node", help="node to set mode on, eg: vos:Root/Container/file.txt")
        p.add_argument("groups", nargs="*", help="name of group(s) to assign read/write "
                       "permission to")
        p.add_argument("-R", "--recursive", action="store_true",
                       help="Recursive set read/write properties")

    def changes_for(args) -> dict[str, str | None]:
        match = MODE.match(args.mode)
        if not match:
            raise errors.InvalidArgument(f"invalid mode {args.mode!r}",
                                         r"use (og|go|o|g)[+-=](rw|wr|r|w), e.g. o+r or g+r G")
        who, op, what = match.groups()
        props: dict[str, str | None] = {}
        if "o" in who:
            props["ispublic"] = "false" if op == "-" else "true"
        if "g" in who:
            if op == "-":
                if args.groups:
                    raise errors.InvalidArgument("Names of groups not valid with remove "
                                                 "permission")
                if "r" in what:
                    props["groupread"] = None
                if "w" in what:
                    props["groupwrite"] = None
            else:
                if len(args.groups) != len(what):
                    raise errors.InvalidArgument(
                        f"{len(what)} group name(s) required for {what}")
                for letter, key in (("r", "groupread"), ("w", "groupwrite")):
                    if letter in what:
                        names = args.groups[what.index(letter)].split()
                        props[key] = " ".join(names)  # the server makes them group URIs
        return props

    def body(args, client):
        props = changes_for(args)
        remote = remote_arg(args.node)
        targets = [remote]
        if args.recursive and client.isdir(remote):
            for container, dirs, others in client.walk(remote):
                targets += [container.child(n.name) for n in dirs + others]
        for target in targets:
            client.set_props(target, props)

    _tool("vchmod", "Set the read and write permission on VOSpace nodes.", setup, body)


# ---- vlock ----------------------------------------------------------------------------------
def vlock() -> None:
    def setup(p):
        action = p.add_mutually_exclusive_group()
        action.add_argument("--lock", action="store_true", help="Lock the node")
        action.add_argument("--unlock", action="store_true", help="unLock the node")
        p.add_argument("node", help="node to request / view lock on. (eg. "
                       "vos:RootNode/File.txt")

    def body(args, client):
        remote = remote_arg(args.node)
        if args.lock:
            client.lock(remote)
        elif args.unlock:
            client.unlock(remote)
        else:
            locked = client.get_node(remote).islocked
            print("locked" if locked else "unlocked")
            return 0 if locked else 1
        return 0

    _tool("vlock", "Places/Removes a write lock on a VOSpace Node or reports lock status "
          "(exit status 0 when locked, 1 when not).", setup, body)
