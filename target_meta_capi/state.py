"""Record numbering and the acknowledgement ledger that decides when a STATE may be written.

Every record that reaches a sink gets the next number. A STATE message becomes a barrier: the
last number issued when it arrived. Numbers are *settled* when Meta acknowledged the request
that carried them, when they were dead-lettered, or when there was nothing to send for them.
A state may be written once every number up to its barrier is settled — before that, writing
it would tell the orchestrator to skip rows that could still be lost.

Callbacks settle numbers from executor threads; states are registered by the main thread and
taken by whichever thread finds one ready: the main thread, or the callback that settled its
last numbers (so a quiet tap's state is not held until its next line). Memory stays bounded
however long the run: the ledger keeps a watermark (every number at or below it is settled)
plus the settled ranges above it, which exist only while an older number is still in flight,
and at most MAX_PENDING_STATES states.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

#: Levels of lists and objects a STATE's value may nest. Taps' states nest a handful; the
#: SDK deep-copies the latest state each time it writes one, which Python's recursion limit
#: stops at a few hundred levels (a RecursionError at some later line, after the state was
#: written once): refused at its own line instead, far below that.
MAX_STATE_NESTING = 100
#: STATEs held at once, waiting for their records. A tap writing a STATE after each record
#: (of bookmarks for a hundred tables, say) would otherwise hold one for every record in
#: flight. Past this many, every other one is let go and the states kept from then on are
#: twice as far apart (in records), so those held stay evenly spread; the newest is always
#: kept. A state let go only means an older one, settled already, may be written in its
#: place: never one early.
MAX_PENDING_STATES = 256


def nests_deeper_than(value: Any, levels: int) -> bool:
    """Whether `value` nests lists and dicts more than `levels` deep (walked level by level,
    without recursion, which a deep value would exhaust)."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(levels):
        level = [
            inner
            for outer in level
            for inner in (outer.values() if isinstance(outer, dict) else outer)
            if isinstance(inner, (dict, list))
        ]
        if not level:
            return False
    return bool(level)


class SettledRanges:
    """Settled numbers as a watermark plus sorted, disjoint, non-adjacent ranges above it."""

    def __init__(self) -> None:
        self.watermark = 0
        # Parallel sorted lists: range i covers starts[i]..ends[i] inclusive.
        self._starts: list[int] = []
        self._ends: list[int] = []

    @property
    def fragment_count(self) -> int:
        """How many settled ranges wait above the watermark (a measure of held memory)."""
        return len(self._starts)

    @property
    def count_above_watermark(self) -> int:
        """How many numbers above the watermark are settled."""
        return sum(end - start + 1 for start, end in zip(self._starts, self._ends, strict=True))

    def add_range(self, first: int, last: int) -> None:
        """Mark first..last (inclusive) settled; settling a number twice is harmless."""
        if last < first or last <= self.watermark:
            return
        first = max(first, self.watermark + 1)
        # Merge with every range that overlaps or touches first..last.
        left = bisect.bisect_left(self._ends, first - 1)
        right = bisect.bisect_right(self._starts, last + 1)
        if left < right:
            first = min(first, self._starts[left])
            last = max(last, self._ends[right - 1])
        self._starts[left:right] = [first]
        self._ends[left:right] = [last]
        if self._starts[0] == self.watermark + 1:
            self.watermark = self._ends[0]
            del self._starts[0]
            del self._ends[0]

    def add_numbers(self, numbers: Iterable[int]) -> None:
        """Mark each number settled, coalescing consecutive runs into ranges first."""
        run_first: int | None = None
        run_last = 0
        for number in sorted(numbers):
            if run_first is not None and number <= run_last + 1:
                run_last = max(run_last, number)
                continue
            if run_first is not None:
                self.add_range(run_first, run_last)
            run_first = run_last = number
        if run_first is not None:
            self.add_range(run_first, run_last)

    def __contains__(self, number: int) -> bool:
        if number <= self.watermark:
            return True
        index = bisect.bisect_right(self._starts, number) - 1
        return index >= 0 and number <= self._ends[index]


class AckLedger:
    """Thread-safe record numbering, settlement and state barriers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_issued = 0
        self._preassigned: int | None = None
        self._settled = SettledRanges()
        # (barrier, state) in arrival order; barriers never decrease.
        self._pending_states: deque[tuple[int, Any]] = deque()
        # records between two states held (the newest aside): grows as states are let go
        self._state_spacing = 1
        self._poisoned = False

    def issue(self) -> int:
        """Number the next record (main thread); the number given to `preassign`, if any."""
        with self._lock:
            if self._preassigned is not None:
                number, self._preassigned = self._preassigned, None
                return number
            self._last_issued += 1
            return self._last_issued

    def preassign(self, number: int) -> None:
        """Have the next `issue()` return `number`, issued earlier for a record processed late
        (main thread)."""
        with self._lock:
            self._preassigned = number

    def take_back_preassigned(self) -> int | None:
        """The preassigned number if no `issue()` used it, which then no longer will."""
        with self._lock:
            number, self._preassigned = self._preassigned, None
            return number

    @property
    def last_issued(self) -> int:
        """The number given to the most recent record (0 before any record)."""
        with self._lock:
            return self._last_issued

    @property
    def watermark(self) -> int:
        """Every record number at or below this one is settled."""
        with self._lock:
            return self._settled.watermark

    @property
    def unsettled_count(self) -> int:
        """Records numbered but not yet settled, counting those still buffered in sinks."""
        with self._lock:
            settled = self._settled
            return self._last_issued - settled.watermark - settled.count_above_watermark

    @property
    def pending_state_count(self) -> int:
        """States received but not yet released."""
        with self._lock:
            return len(self._pending_states)

    def settle(self, numbers: Iterable[int]) -> None:
        """Mark record numbers settled (any thread)."""
        with self._lock:
            self._settled.add_numbers(numbers)

    def is_settled(self, number: int) -> bool:
        """Whether this record number is settled."""
        with self._lock:
            return number in self._settled

    def register_state(self, state: Any) -> int:
        """Hold `state` until every record numbered so far is settled; returns its barrier."""
        with self._lock:
            barrier = self._last_issued
            # A newer state with the same barrier supersedes the older one: both cover the
            # same records, and only the newest is worth writing.
            pending = self._pending_states
            if pending and pending[-1][0] == barrier:
                pending.pop()
            elif len(pending) >= 2 and pending[-1][0] - pending[-2][0] < self._state_spacing:
                pending.pop()  # the newest so far, too close to the one before it to keep
            pending.append((barrier, state))
            if len(pending) > MAX_PENDING_STATES:
                newest_first = list(reversed(pending))[::2]
                self._pending_states = deque(reversed(newest_first))
                self._state_spacing *= 2
            return barrier

    def poison(self) -> None:
        """Release no state any more: a send failed for good, later states would skip rows."""
        with self._lock:
            self._poisoned = True
            self._pending_states.clear()

    def has_ready_state(self) -> bool:
        """Whether `take_ready_state` would find a state (without taking it)."""
        with self._lock:
            return (
                not self._poisoned
                and bool(self._pending_states)
                and self._pending_states[0][0] <= self._settled.watermark
            )

    def take_ready_state(self) -> tuple[bool, Any]:
        """Pop every state whose barrier is settled; return (found, newest of them).

        Older ready states are dropped: the newest covers everything they cover.
        """
        with self._lock:
            found = False
            newest: Any = None
            watermark = self._settled.watermark
            while self._pending_states and self._pending_states[0][0] <= watermark:
                _, newest = self._pending_states.popleft()
                found = True
            if len(self._pending_states) < MAX_PENDING_STATES // 4:
                self._state_spacing = max(1, self._state_spacing // 2)
            if self._poisoned:
                return False, None
            return found, newest
