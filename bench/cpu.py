"""CPU time of the processes a benchmark runs: the figures printed beside a ratio to show
what bounds it on a machine whose cores the client and the server share."""
from __future__ import annotations

import os
import resource


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (all its threads, ended ones too)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of process ``pid`` and of its running descendants (a server's
    workers under ``vospace serve --workers``)."""
    total = cpu_seconds(pid)
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            total += sum(tree_cpu_seconds(int(child)) for child in fh.read().split())
    return total


def children_cpu() -> float:
    """User + system CPU time of this process's finished children (the timed commands)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
