"""CPU accounting from /proc: the daemons we started, and whatever else ran on the machine meanwhile.

CPU time comes from utime+stime in /proc/<pid>/stat (all threads of a process). A step's cost is the
difference of two snapshots. Everything outside this runner's own process tree is summed as "other"
CPU, so a report can say when something else (another engineer's test run) competed for the cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    comm: str
    cpu_s: float  # utime + stime of the process itself (all its threads)


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:  # the process has gone
        return None
    # comm may contain spaces and parentheses: it ends at the last ')'
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    comm = head.partition("(")[2]
    utime, stime = int(fields[11]), int(fields[12])
    return ProcStat(pid, int(fields[1]), comm, (utime + stime) / CLK_TCK)


def all_processes() -> dict[int, ProcStat]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := read_stat(int(name))) is not None:
            out[stat.pid] = stat
    return out


def process_tree(root: int, table: dict[int, ProcStat] | None = None) -> set[int]:
    """root and all its descendants (Kamailio's workers are children of its main process)."""
    table = table if table is not None else all_processes()
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores, /proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


@dataclass
class CpuSnapshot:
    at: float
    groups: dict[str, float]
    others: dict[int, tuple[str, float]]  # pid -> (comm, utime + stime)
    machine_busy_s: float


@dataclass
class CpuUsage:
    """CPU seconds used between two snapshots."""

    wall_s: float
    groups: dict[str, float]
    others_s: float
    top_others: list[tuple[str, float]] = field(default_factory=list)
    machine_busy_s: float = 0.0

    @property
    def machine_capacity_s(self) -> float:
        return NPROC * self.wall_s


class CpuMeter:
    """Snapshots of named process groups (e.g. kamailio = its whole tree) and of everything else.

    `groups` maps a name to root PIDs; each root's descendants are included, resolved afresh at every
    snapshot so that a process that is born or dies mid-step does not shift the baseline.
    `own_root` is excluded from "others" with all its descendants (this runner, SIPp, the stack).
    """

    def __init__(self, groups: dict[str, Iterable[int]], own_root: int | None = None):
        self.groups = {name: tuple(pids) for name, pids in groups.items()}
        self.own_root = own_root if own_root is not None else os.getpid()

    def snapshot(self) -> CpuSnapshot:
        table = all_processes()
        groups = {}
        for name, roots in self.groups.items():
            pids = set().union(*(process_tree(root, table) for root in roots)) if roots else set()
            groups[name] = sum(table[pid].cpu_s for pid in pids if pid in table)
        ours = process_tree(self.own_root, table)
        # not cutime/cstime: a shell that reaps a long test run would count that run's whole life at once
        others = {pid: (s.comm, s.cpu_s) for pid, s in table.items() if pid not in ours}
        return CpuSnapshot(time.monotonic(), groups, others, machine_busy_seconds())

    @staticmethod
    def usage(before: CpuSnapshot, after: CpuSnapshot) -> CpuUsage:
        groups = {name: max(0.0, after.groups[name] - before.groups.get(name, 0.0)) for name in after.groups}
        per_comm: dict[str, float] = {}
        for pid, (comm, cpu) in after.others.items():
            # a process born during the step counts in full; one born and gone within the step is missed
            delta = cpu - before.others[pid][1] if pid in before.others else cpu
            if delta > 0:
                per_comm[comm] = per_comm.get(comm, 0.0) + delta
        top = sorted(per_comm.items(), key=lambda item: -item[1])[:5]
        return CpuUsage(after.at - before.at, groups, sum(per_comm.values()), top,
                        after.machine_busy_s - before.machine_busy_s)
