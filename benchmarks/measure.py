"""Run one command with a file on stdin; print its wall time, CPU time and peak RSS as JSON.

A fresh process per measured run, so `RUSAGE_CHILDREN` holds the peak of exactly that command
(Linux reports ru_maxrss in KiB). Used by run.py; by hand:
`python benchmarks/measure.py --stdin in.singer --stdout out.txt --stderr err.txt -- cmd args`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stdin", required=True)
    parser.add_argument("--stdout", required=True)
    parser.add_argument("--stderr", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with open(args.stdin, "rb") as stdin, open(args.stdout, "wb") as stdout, \
            open(args.stderr, "wb") as stderr:
        started = time.perf_counter()
        returncode = subprocess.run(command, stdin=stdin, stdout=stdout, stderr=stderr).returncode
        seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "returncode": returncode, "peak_rss_mb": usage.ru_maxrss / 1024}, sys.stdout)


if __name__ == "__main__":
    main()
