"""glibc malloc tuning for a process that moves megabyte-sized buffers between threads.

Request bodies (~1.3 MB for 1000 events) are built and freed all the time on the sending
threads. glibc gives each thread its own heap (arena) once threads contend, and a heap keeps
what was freed in it for its own thread's next allocations: with 8 sending threads, ~8 freed
bodies stay resident. One arena lets whichever thread builds the next body reuse that memory:
~9 MB less peak memory in the benchmark at the same speed.

Even in one heap, bodies freed among smaller blocks leave holes that smaller blocks only partly
fill: glibc serves blocks that large from its heap once the first mmapped one is freed (it
raises its mmap threshold to that size). Blocks of a megabyte or more stay mmapped, given back
to the system when freed: 3 to 6 MB less at the peak, for ≈ 320 page faults per body (measured:
+5,900 page faults and +0.06 s of system CPU over 50,000 records). A threshold of 128 KB also
mmapped the record workers' answers (~0.5 MB), and cost 7% of the speed in page faults
(docs/performance.md, seventeenth round and Memory). Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Blocks of this size or more are mmapped: request bodies, not the workers' answers.
MMAPPED_BLOCK_BYTES = 1024 * 1024


def tune_malloc() -> bool:
    """Have every thread allocate from one glibc heap, and blocks of `MMAPPED_BLOCK_BYTES` or
    more mmapped; call it before threads start.

    Process-wide, so the CLI calls it, not the library. True when the allocator took them all.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_THRESHOLD, MMAPPED_BLOCK_BYTES),
        # Pinning the mmap threshold stops glibc from raising this one with it: left at 128 KB,
        # the heap's top would be given back and taken again all the time.
        (_M_TRIM_THRESHOLD, 2 * MMAPPED_BLOCK_BYTES),
    )
    # a list, not a generator: a setting refused must not keep the ones after it from applying
    return all([mallopt(option, value) for option, value in settings])
