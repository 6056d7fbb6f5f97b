"""CPU time and resident memory of process trees, read from /proc (Linux).

The benchmarks run on a shared, noisy machine: CPU seconds per message repeat far
better than wall-clock rates, and a daemon's work is spread over its parser and render
children (and, on PostgreSQL, the server's backends), so they are summed per tree.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) "


def children(pid: int) -> list[int]:
    """Direct children of `pid`, whichever of its threads started them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User plus system CPU of one process (and of its waited-for children if asked)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: the process's own pages plus its share of those it shares
    (libraries, the page cache it maps), so summing it over processes counts each page
    once, where summed RSS counts a shared page in every process."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class CpuLedger:
    """CPU seconds per process seen in a tree, so children that exit are still counted
    (as of the last sample) and processes that existed before `start` are not charged
    for their earlier work."""

    def __init__(self, root: int):
        self.root = root
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def sample(self) -> None:
        for pid in tree(self.root):
            seconds = cpu_seconds(pid)
            self.first.setdefault(pid, seconds)
            self.last[pid] = seconds

    def used(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


class TreeSampler(threading.Thread):
    """Samples a process tree every `interval` seconds: CPU ledger, peak summed RSS and
    (every PSS_EVERY-th sample) PSS."""

    # PSS is read every PSS_EVERY-th sample only: the kernel walks every page of a
    # process for /proc/PID/smaps_rollup, which took a core's worth of a 2-core machine
    # from the processes measured when done every 50 ms.
    PSS_EVERY = 10

    def __init__(self, root: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.ledger = CpuLedger(root)
        self.interval = interval
        self._samples = 0
        self.peak_rss = 0  # of all the tree's processes together
        self.peak_pss = 0  # the same, each shared page counted once (see pss_bytes)
        self.peaks: dict[int, int] = {}  # each process's own peak
        self.processes = 0  # the most processes seen at once
        self._halt = threading.Event()
        self.ledger.sample()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        pids = tree(self.ledger.root)
        sizes = {pid: rss_bytes(pid) for pid in pids}
        if self._samples % self.PSS_EVERY == 0:
            self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in pids))
        self._samples += 1
        self.peak_rss = max(self.peak_rss, sum(sizes.values()))
        for pid, size in sizes.items():
            self.peaks[pid] = max(self.peaks.get(pid, 0), size)
        self.processes = max(self.processes, len(pids))
        self.ledger.sample()

    def stop(self) -> float:
        """Stop sampling; the tree's CPU seconds since the sampler was made."""
        self._halt.set()
        self.join()
        self._sample()
        return self.ledger.used()
