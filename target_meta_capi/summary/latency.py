"""The request latencies of a run, kept for the summary's percentiles."""

from __future__ import annotations

import bisect
import itertools
import math
from typing import cast


class LatencyHistogram:
    """Request latencies for the run summary's p50/p95/max, in memory that does not grow with
    the run: each latency is counted under its value to the millisecond below a second (as
    the summary shows them) and to three significant digits above (a list of every latency
    grew by ~32 bytes a request, and was sorted for each summary). At most ~1,000 values per
    decade of seconds; the max is kept exactly."""

    def __init__(self) -> None:
        self._counts: dict[float, int] = {}
        self.count = 0
        self.max: float | None = None

    def __len__(self) -> int:
        """How many distinct values are kept."""
        return len(self._counts)

    def add(self, seconds: float) -> None:
        value = round(seconds, 3) if seconds < 1 else float(f"{seconds:.3g}")
        self._counts[value] = self._counts.get(value, 0) + 1
        self.count += 1
        if self.max is None or seconds > self.max:
            self.max = seconds

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the values kept; None when there are none. Never above
        the max: a value kept rounded up (1.2351 as 1.24) stands for latencies up to it."""
        if not self.count:
            return None
        rank = max(math.ceil(fraction * self.count), 1)
        values = sorted(self._counts)
        # the first value with `rank` latencies at or below it; the last has self.count
        seen = list(itertools.accumulate(self._counts[value] for value in values))
        value = values[bisect.bisect_left(seen, rank)]
        return min(value, cast(float, self.max))  # set by the first add()
