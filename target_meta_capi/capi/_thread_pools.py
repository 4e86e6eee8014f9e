"""Handing work to a thread pool that may refuse it.

A ThreadPoolExecutor refuses new work (RuntimeError) when the interpreter is exiting (an
application flushing the events it holds from an atexit handler) and when a thread it wanted
could not be started (a limit on processes: `ulimit -u`, a container's pids limit, threads
counting too). In the second case it has queued the work all the same, for a thread it already
has or starts later: run by both, a request would be sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def submit_or_hand_back(
    executor: ThreadPoolExecutor, work: Callable[[], None]
) -> Callable[[], None] | None:
    """Give `work` to `executor`: None when it took it, else the work for the caller to run
    itself. Whichever runs first does it; the other finds it done and returns at once."""
    claim = threading.Lock()

    def once() -> None:
        if claim.acquire(blocking=False):
            work()

    try:
        executor.submit(once)
    except RuntimeError:
        return once
    return None
