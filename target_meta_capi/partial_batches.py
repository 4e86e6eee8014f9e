"""When the records read are sent before their batches are full.

A batch goes to Meta as it fills; records in a half-full one (or still with the record
workers) are sent anyway:

- after a STATE message, so that its state can be written soon, but not more often than the
  drain interval (`state_drain_min_interval_seconds`): a STATE within it leaves the drain
  owed, paid when the input pauses;
- once the oldest of them is `max_batch_wait_seconds` old, between two input lines or while
  the tap is silent.

The target says what sending them takes (its sinks, its workers) and when the input pauses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class PartialBatches:
    """The clock of a run's half-full batches, and what sends them (`send_all`)."""

    def __init__(
        self, send_all: Callable[[], None], *, drain_interval: float, max_batch_wait: float
    ) -> None:
        self._send_all = send_all
        self._drain_interval = drain_interval
        self._max_batch_wait = max_batch_wait
        self._last_state_drain = 0.0
        self._drain_owed = False
        # monotonic time since when a record read may wait, unsent, in a batch or with the
        # workers; None when every record read was sent (or settled without a request)
        self._unsent_since: float | None = None

    def record_added(self) -> None:
        """After each record (or run of records from a worker): from now on something may
        wait unsent, and `max_batch_wait_seconds` counts from the first such record."""
        if self._unsent_since is None:
            self._unsent_since = time.monotonic()

    def state_received(self) -> None:
        """Send half-full batches so the state just received can be written soon."""
        now = time.monotonic()
        if now - self._last_state_drain < self._drain_interval:
            self._drain_owed = True  # paid when the input pauses, if it does
            return
        self.send(now)

    def send(self, now: float) -> None:
        """Send every record read so far: the batches of every sink, full or not."""
        self._last_state_drain = now
        self._send_all()
        # the workers hold nothing now: every record read was drained
        self._drain_owed = False
        self._unsent_since = None

    def due_at(self) -> float | None:
        """When half-full batches are to be sent (monotonic time), or None: nothing waits."""
        due = math.inf
        if self._drain_owed:
            due = self._last_state_drain + self._drain_interval
        if self._unsent_since is not None:
            due = min(due, self._unsent_since + self._max_batch_wait)
        return None if due == math.inf else due

    def input_flowing(self) -> None:
        """Input is waiting, between two lines: send batches older than
        `max_batch_wait_seconds`, so that a stream seen rarely among busy ones (whose batches
        fill) is not held until the input pauses."""
        now = time.monotonic()
        if self._unsent_since is not None and now >= self._unsent_since + self._max_batch_wait:
            self.send(now)
