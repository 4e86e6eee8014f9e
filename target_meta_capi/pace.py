"""Who sets a run's pace: the tap, Meta's answers, or the target's own work.

The run's main thread reads stdin, hands records to the workers and batches to the sending
window. When it waits for input, the tap is the slower side; when it waits for room in the
window (or for the last answers), Meta is; the rest of the time the target itself is busy.
`PaceClock` keeps those waits; the run summary and the progress lines report them
(summary/report.py, summary/progress.py).
"""

from __future__ import annotations

import contextlib
import time
import typing as t
from collections.abc import Callable, Iterator

Wait = t.Literal["input", "meta"]

#: Who set the pace, by the side the main thread spent most of the time on.
PACE_SETTERS = {"tap": "the tap", "meta": "Meta's answers", "target": "the target's own work"}
PACE_VERDICTS = {
    "tap": "the tap set the pace",
    "meta": (
        "Meta's answers set the pace (latency, throttling or retries; concurrent_requests "
        "widens the window)"
    ),
    "target": "the target's own work set the pace (record_workers and CPUs add to it)",
}


class PaceClock:
    """The main thread's waits, for input and for Meta's answers, in seconds.

    A wait within a wait counts as the outer one: while stdin is dry, whatever the target
    finishes meanwhile — sending half-full batches, waiting for room in the window — does not
    hold the tap back, so it is all waiting for input. Only the main thread waits; `waits` may
    be read from any thread (the progress reporter's), and includes a wait still going on.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._totals: dict[Wait, float] = {"input": 0.0, "meta": 0.0}
        self._current: tuple[Wait, float] | None = None

    @contextlib.contextmanager
    def waiting_for(self, what: Wait) -> Iterator[None]:
        if self._current is not None:  # within a wait that keeps the time
            yield
            return
        self._current = (what, self._clock())
        try:
            yield
        finally:
            _, since = self._current
            self._current = None
            self._totals[what] += self._clock() - since

    def waits(self) -> tuple[float, float]:
        """Seconds waited so far: for input, for Meta's answers."""
        totals = dict(self._totals)
        current = self._current
        if current is not None:
            what, since = current
            totals[what] += self._clock() - since
        return totals["input"], totals["meta"]


def pace(duration: float, input_wait: float, answer_wait: float) -> dict[str, t.Any]:
    """How `duration` seconds split into waiting for input, for Meta, and working; and so who
    set the pace. Waits read from another thread while one ends may be a hair off either way,
    so none counts as negative."""
    input_wait, answer_wait = max(input_wait, 0.0), max(answer_wait, 0.0)
    working = max(duration - input_wait - answer_wait, 0.0)
    shares = {"tap": input_wait, "meta": answer_wait, "target": working}
    return {
        "waiting_for_input_seconds": round(input_wait, 3),
        "waiting_for_meta_seconds": round(answer_wait, 3),
        "working_seconds": round(working, 3),
        "set_by": max(shares, key=shares.__getitem__),
    }
