"""Run one command with a file on stdin; print its wall time, CPU time and peak memory as JSON.

A fresh process per measured run, so `RUSAGE_CHILDREN` holds exactly that command: its CPU time
(of every process it waited for) and `peak_rss_mb`, the ru_maxrss of its largest single process
(Linux reports it in KiB). That alone under-reports a command that forks workers, so on Linux a
background thread also samples the command's whole process tree (its pid and all descendants)
every 50 ms from /proc and keeps the peaks of the sums over the tree:
  peak_tree_rss_mb  RSS summed over the processes (counts pages they share once per process);
  peak_tree_pss_mb  PSS summed (/proc/<pid>/smaps_rollup; a shared page is split between its
                    sharers, so the sum is what the tree costs; RSS where PSS is unreadable);
  peak_processes    the most processes seen in the tree at once.
They are sampled, so a spike shorter than 50 ms can be missed, and a process that outlives the
command's own process (re-parented to init) is no longer counted; elsewhere they are null.
Used by run.py; by hand:
`python benchmarks/measure.py --stdin in.singer --stdout out.txt --stderr err.txt -- cmd args`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

SAMPLE_SECONDS = 0.05
ON_LINUX = sys.platform.startswith("linux") and os.path.isdir("/proc/self")
# Without CONFIG_PROC_CHILDREN there are no /proc/<pid>/task/<tid>/children files, and the tree
# has to be found by reading every process's parent from /proc/*/stat.
HAS_CHILDREN_FILES = ON_LINUX and os.path.exists(
    f"/proc/self/task/{threading.get_native_id()}/children"
)


def _children(pid: int) -> list[int]:
    """The children of `pid` (of any of its threads); none once it is gone."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def _parents() -> dict[int, list[int]]:
    """Every process's children, from the parent pid in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # The name in parentheses may hold spaces and ')': the fields follow its last ')'.
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, as they are at this moment."""
    if HAS_CHILDREN_FILES:
        find_children = _children
    else:
        parents = _parents()

        def find_children(pid: int) -> list[int]:
            return parents.get(pid, [])

    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(find_children(pid))
    return tree


def _status_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None  # gone, or a zombie (which has no memory left to count)


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) of `pid` in KiB, PSS being RSS where smaps_rollup is unreadable; None if the
    process is gone. smaps_rollup is one summed record, far cheaper than walking smaps."""
    rss = pss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                    break  # Pss follows Rss; nothing after it is needed
    except OSError:
        pass
    if rss is None:
        rss = _status_rss_kb(pid)
        if rss is None:
            return None
    return rss, rss if pss is None else pss


class TreeSampler:
    """In a background thread, every SAMPLE_SECONDS the summed RSS and PSS of a process tree;
    keeps the highest sums and the most processes seen. Processes that end between being
    listed and being read are skipped."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss_kb = self.peak_pss_kb = self.peak_processes = 0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._done.wait(SAMPLE_SECONDS):
                return

    def sample(self) -> None:
        rss_kb = pss_kb = processes = 0
        for pid in process_tree(self.root):
            memory = memory_kb(pid)
            if memory is not None:
                rss_kb += memory[0]
                pss_kb += memory[1]
                processes += 1
        if processes:
            self.samples += 1
            self.peak_rss_kb = max(self.peak_rss_kb, rss_kb)
            self.peak_pss_kb = max(self.peak_pss_kb, pss_kb)
            self.peak_processes = max(self.peak_processes, processes)

    def stop(self) -> dict:
        """Stop sampling; the peaks in MB, all null if no sample saw the command alive."""
        self._done.set()
        self._thread.join()
        if not self.samples:
            return _no_tree_figures()
        return {
            "peak_tree_rss_mb": self.peak_rss_kb / 1024,
            "peak_tree_pss_mb": self.peak_pss_kb / 1024,
            "peak_processes": self.peak_processes,
        }


def _no_tree_figures() -> dict:
    return {"peak_tree_rss_mb": None, "peak_tree_pss_mb": None, "peak_processes": None}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--stdin", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with (
        open(args.stdin, "rb") as stdin,
        open(args.stdout, "wb") as stdout,
        open(args.stderr, "wb") as stderr,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)
        try:
            sampler = TreeSampler(process.pid) if ON_LINUX else None
            if sampler:
                # Wait for the exit but leave the zombie unreaped, so its pid cannot be taken
                # by an unrelated process while the sampler may still look at it.
                os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
            else:
                process.wait()
            seconds = time.perf_counter() - started
        except BaseException:  # as subprocess.run does: do not leave the command running
            process.kill()
            process.wait()
            raise
        tree = sampler.stop() if sampler else _no_tree_figures()
        returncode = process.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.dump(
        {
            "seconds": seconds,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "returncode": returncode,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            **tree,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
