"""glibc malloc tuning for a process that moves megabyte-sized buffers between threads.

Request bodies (~1.3 MB for 1000 events) and the answers of record workers (~0.5 MB) are
allocated and freed all the time, on several threads. glibc serves blocks that large with
mmap and gives them back to the system when they are freed — until the first such free, after
which it raises its mmap threshold (up to 32 MB) and serves them from per-thread heaps that
keep the memory: ~25 MB more peak memory in the benchmark (docs/performance.md). Pinning the
threshold keeps large blocks mmapped. Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BLOCK_BYTES = 128 * 1024


def keep_large_blocks_mmapped() -> bool:
    """Have malloc give blocks of LARGE_BLOCK_BYTES or more back to the system when freed.

    Process-wide, so the CLI calls it, not the library. True when the allocator took it.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
