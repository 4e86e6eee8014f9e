"""glibc malloc tuning for a process that moves megabyte-sized buffers between threads.

Request bodies (~1.3 MB for 1000 events) are built and freed all the time on the sending
threads. glibc gives each thread its own heap (arena) once threads contend, and a heap keeps
what was freed in it for its own thread's next allocations: with 8 sending threads, ~8 freed
bodies stay resident. One arena lets whichever thread builds the next body reuse that memory:
~9 MB less peak memory in the benchmark at the same speed (docs/performance.md; keeping large
blocks mmapped saved a little more but cost 7% of the speed in page faults). Elsewhere (macOS,
musl) this does nothing.
"""

from __future__ import annotations

import ctypes

_M_ARENA_MAX = -8  # glibc's malloc.h


def use_one_malloc_arena() -> bool:
    """Have every thread allocate from one glibc heap; call it before threads start.

    Process-wide, so the CLI calls it, not the library. True when the allocator took it.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_ARENA_MAX, 1))
