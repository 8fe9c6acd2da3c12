"""The engine behind vcp and vsync: expand sources into per-file tasks (creating the
containers/directories on the way, one listing per container), then run the tasks on a
thread pool sharing one connection pool, with one progress bar and a failure summary."""
from __future__ import annotations

import fnmatch
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from .. import errors, transfer, uris
from ..client import Client
from ..nodes import Node
from .progress import Progress

log = logging.getLogger("vosclient")


@dataclass
class Task:
    kind: str                 # "up", "down", "remote"
    source: str
    dest: str
    size: int = 0
    node: object = transfer.UNKNOWN    # remote node already known (None: absent)


@dataclass
class Options:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    follow_links: bool = False
    recursive: bool = True
    skip_identical: bool = True
    checksum: bool = True
    resume: bool = True
    jobs: int = 8
    interrogate: bool = False
    progress: bool | None = None


def patterns(values: list[str] | None) -> list[str]:
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


class Copier:
    def __init__(self, client: Client, options: Options) -> None:
        self.client = client
        self.options = options
        self.tasks: list[Task] = []
        self.failures: list[tuple[str, str, errors.VOSError | OSError]] = []

    # ---- filtering ----------------------------------------------------------------------
    def wanted(self, name: str) -> bool:
        """Include/exclude patterns (comma lists of globs) on the file name; exclude wins."""
        if any(fnmatch.fnmatch(name, p) or p in name for p in self.options.exclude):
            return False
        return not self.options.include or any(
            fnmatch.fnmatch(name, p) or p in name for p in self.options.include)

    def ask(self, dest: str) -> bool:
        if not self.options.interrogate:
            return True
        sys.stderr.write(f"File {dest} exists.  Overwrite? (y/n): ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower().startswith("y")

    # ---- planning -----------------------------------------------------------------------
    def plan(self, sources: list[str], dest: str) -> None:
        expanded: list[str] = []
        for source in sources:
            if uris.is_remote(source) and uris.has_wildcard(uris.parse(source).name):
                matches = self.client.glob(source)
                if not matches:
                    raise errors.NotFound(f"{source}: no match")
                expanded.extend(str(m) for m in matches)
            else:
                expanded.append(source)
        many = len(expanded) > 1
        if many:
            self.require_directory(dest)
        for source in expanded:
            try:
                self.plan_one(source, dest)
            except (errors.VOSError, OSError) as exc:
                if not many:
                    raise
                self.failures.append((source, dest, exc))

    def require_directory(self, dest: str) -> None:
        """Several sources need an existing container (or local directory) to go into."""
        if uris.is_remote(dest):
            node = self._dest_node(uris.parse(dest))
            ok = node is not None and node.isdir
        else:
            ok = os.path.isdir(dest)
        if not ok:
            raise errors.NotAContainer(f"{dest}: copying several sources needs an existing "
                                       f"container or directory as destination")

    def plan_one(self, source: str, dest: str) -> None:
        remote_src, remote_dest = uris.is_remote(source), uris.is_remote(dest)
        if remote_src and remote_dest:
            self.plan_remote(uris.parse(source), uris.parse(dest))
        elif remote_dest:
            self.plan_upload(source, uris.parse(dest))
        elif remote_src:
            self.plan_download(uris.parse(source), dest)
        else:
            raise errors.InvalidArgument(f"{source} -> {dest}: one side must be vos: or arc:")

    def plan_remote(self, src: uris.Remote, dest: uris.Remote) -> None:
        self.tasks.append(Task("remote", str(src), str(dest)))

    def _dest_node(self, dest: uris.Remote) -> Node | None:
        try:
            return self.client.get_node(dest)
        except errors.NotFound:
            return None

    def plan_upload(self, source: str, dest: uris.Remote) -> None:
        if os.path.islink(source) and not self.options.follow_links:
            log.info("%s: Skipping (symbolic link)", source)
            return
        if not os.path.exists(source):
            raise errors.NotFound(f"{source}: no such file or directory")
        dest_node = self._dest_node(dest)
        if os.path.isdir(source):
            if not self.options.recursive:
                log.warning("%s: is a directory; use -r", source)
                return
            name = os.path.basename(os.path.normpath(source))
            top = dest.child(name) if dest_node is not None and dest_node.isdir else dest
            self.upload_tree(source, top)
            return
        target, existing = dest, dest_node
        if dest_node is not None and dest_node.isdir:
            target, existing = dest.child(os.path.basename(source)), transfer.UNKNOWN
        if existing is not None and existing is not transfer.UNKNOWN and not self.ask(str(target)):
            return
        self.tasks.append(Task("up", source, str(target), os.path.getsize(source), existing))

    def _ensure_container(self, remote: uris.Remote) -> dict[str, Node]:
        """Create ``remote`` if needed; return its existing children by name."""
        try:
            self.client.mkdir(remote)
            return {}
        except errors.AlreadyExists:
            return {c.name: c for c in self.client.iterdir(remote)}

    def upload_tree(self, root: str, top: uris.Remote) -> None:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=self.options.follow_links):
            rel = os.path.relpath(dirpath, root)
            container = top if rel == "." else uris.Remote(top.service, f"{top.path}/"
                                                           f"{rel.replace(os.sep, '/')}")
            children = self._ensure_container(container)
            if not self.options.follow_links:
                dirnames[:] = [d for d in dirnames
                               if not os.path.islink(os.path.join(dirpath, d))]
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path) and not self.options.follow_links:
                    log.info("%s: Skipping (symbolic link)", path)
                    continue
                if not self.wanted(name):
                    continue
                existing = children.get(name)
                if existing is not None and not self.ask(str(container.child(name))):
                    continue
                self.tasks.append(Task("up", path, str(container.child(name)),
                                       os.path.getsize(path), existing))

    def plan_download(self, source: uris.Remote, dest: str) -> None:
        node = self.client.get_node(source)
        hops = 0
        while node.islink and node.target and node.target.startswith("vos://") and hops < 10:
            node = self.client.get_node(node.target)
            source = uris.parse(node.uri)
            hops += 1
        if node.isdir:
            if not self.options.recursive:
                log.warning("%s: is a container; use -r", source)
                return
            top = os.path.join(dest, source.name) if os.path.isdir(dest) else dest
            self.download_tree(source, top)
            return
        target = os.path.join(dest, source.name) if os.path.isdir(dest) else dest
        if os.path.exists(target) and not self.ask(target):
            return
        self.tasks.append(Task("down", str(source), target, node.size, node))

    def download_tree(self, source: uris.Remote, top: str) -> None:
        for container, dirs, others in self.client.walk(source):
            rel = container.path[len(source.path):].lstrip("/")
            local_dir = os.path.join(top, *rel.split("/")) if rel else top
            os.makedirs(local_dir, exist_ok=True)
            for child in others:
                if child.islink or not self.wanted(child.name):
                    continue
                target = os.path.join(local_dir, child.name)
                if os.path.exists(target) and not self.ask(target):
                    continue
                self.tasks.append(Task("down", str(container.child(child.name)), target,
                                       child.size, child))

    # ---- running ------------------------------------------------------------------------
    def run_task(self, task: Task, bar: Progress) -> transfer.Result:
        o = self.options
        if task.kind == "up":
            return self.client.upload(task.source, task.dest, skip_identical=o.skip_identical,
                                      progress=bar.update, existing=task.node,
                                      checksum=o.checksum)
        if task.kind == "down":
            node = task.node if isinstance(task.node, Node) else None
            return self.client.download(task.source, task.dest, skip_identical=o.skip_identical,
                                        resume=o.resume, progress=bar.update, node=node,
                                        checksum=o.checksum)
        self.client.copy_remote(task.source, task.dest)
        return transfer.Result(task.source, task.dest, "copied", 0)

    def execute(self) -> list[transfer.Result]:
        total = sum(t.size for t in self.tasks)
        bar = Progress(total, self.options.progress)
        results: list[transfer.Result] = []
        jobs = 1 if self.options.interrogate else max(1, min(self.options.jobs, 32))
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = {pool.submit(self.run_task, t, bar): t for t in self.tasks}
            try:
                for future in as_completed(futures):
                    task = futures[future]
                    try:
                        result = future.result()
                    except (errors.VOSError, OSError) as exc:
                        self.failures.append((task.source, task.dest, exc))
                        continue
                    results.append(result)
                    log.info("%s %s -> %s", result.action, result.source, result.dest)
            except KeyboardInterrupt:   # stop queued transfers; partial downloads stay resumable
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        finally:
            bar.close()
        return results

    def finish(self) -> int:
        """Print the failure summary; the exit status (the error's own for a single file)."""
        if not self.failures:
            return 0
        if len(self.failures) == 1 and len(self.tasks) <= 1:
            raise self.failures[0][2]
        print(f"ERROR:: {len(self.failures)} of {len(self.tasks) + self.planning_failures()} "
              f"transfers failed (run the same command again to retry them):", file=sys.stderr)
        for source, dest, exc in sorted(self.failures, key=lambda f: f[0]):
            text = exc.line() if isinstance(exc, errors.VOSError) else str(exc)
            print(f"  {source} -> {dest}: {text}", file=sys.stderr)
        return errors.TransferFailed.exit_code

    def planning_failures(self) -> int:
        planned = {(t.source, t.dest) for t in self.tasks}
        return sum(1 for s, d, _ in self.failures if (s, d) not in planned)
