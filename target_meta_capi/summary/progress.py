"""The progress lines logged on a timer while a run goes on, and the METRIC counters
flushed with them."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from singer_sdk import metrics as singer_metrics

from target_meta_capi.capi._words import counted
from target_meta_capi.pace import PACE_SETTERS, pace
from target_meta_capi.summary.report import shares_percent
from target_meta_capi.summary.stats import RunStats

DEFAULT_PROGRESS_INTERVAL = 10.0
#: A progress line names at most this many streams: those whose counts moved since the line
#: before (for the final line, any), in name order, and says how many more did.
PROGRESS_STREAMS_NAMED = 10


class ProgressReporter:
    """Logs a progress line every `interval` seconds from a daemon thread, and a last one at stop.

    METRIC counters are flushed every `metric_interval` seconds (singer_sdk's default 60 s)
    and at stop. An interval of 0 or less turns the periodic lines off.
    """

    def __init__(
        self,
        stats: RunStats,
        logger: logging.Logger,
        interval: float = DEFAULT_PROGRESS_INTERVAL,
        *,
        metric_interval: float = singer_metrics.DEFAULT_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._logger = logger
        self._interval = interval
        self._metric_interval = metric_interval
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_time = clock()
        self._last_acknowledged = 0
        self._last_waits = stats.pace_clock.waits()
        self._last_stream_counts: dict[str, dict[str, Any]] = {}
        self._stopped = False

    def start(self) -> None:
        """Start the thread; calling it again (the target does, per record) does nothing."""
        if self._interval <= 0 or self._thread is not None or self._stopped:
            return
        thread = threading.Thread(target=self._run, name="target-meta-capi-progress", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread"
            self._interval = 0  # off, as progress_interval 0 sets it: not tried again
            self._stats.run_warning(
                "Progress lines are off for this run: no thread could be started for them. A "
                "limit on processes refused it (`ulimit -u`, a container's pids limit, threads "
                "counting too); the final progress line and the summary still come."
            )
            return
        self._thread = thread

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No progress thread runs within, and one goes on after if one ran: a fork (of the
        record workers) copies every lock as it is, and one the thread held would stay held
        in the child."""
        thread = self._thread
        if thread is None:
            yield
            return
        self._stopping.set()
        thread.join()
        self._thread, self._stopping = None, threading.Event()
        try:
            yield
        finally:
            self.start()

    def stop(self) -> None:
        """Stop the thread, log the final line and flush counters; later calls do nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        self.report(final=True)
        self._stats.emit_metric_counters()

    def __enter__(self) -> ProgressReporter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_metrics = self._clock() + self._metric_interval
        while not self._stopping.wait(self._interval):
            self.report()
            if self._clock() >= next_metrics:
                self._stats.emit_metric_counters()
                next_metrics = self._clock() + self._metric_interval

    def report(self, *, final: bool = False) -> str:
        """Log one progress line. events/s: acknowledged events since the previous line
        (the whole run for the final line)."""
        progress = self._stats.progress()
        totals = progress["totals"]
        # waits first: one still going on is counted up to now, and must fit in the interval
        waits = self._stats.pace_clock.waits()
        now = self._clock()
        if final:
            seconds, acknowledged = self._stats.elapsed(), totals["events_acknowledged"]
        else:
            seconds = now - self._last_time
            acknowledged = totals["events_acknowledged"] - self._last_acknowledged
        input_wait = waits[0] - self._last_waits[0]
        answer_wait = waits[1] - self._last_waits[1]
        interval_pace = pace(seconds, input_wait, answer_wait)
        self._last_time, self._last_acknowledged = now, totals["events_acknowledged"]
        self._last_waits = waits
        rate = acknowledged / seconds if seconds > 0 else 0.0
        streams = progress["streams"]
        # A tap with 200 tables made a line of 15 kB every interval, mostly about streams that
        # had not moved: only those that did are named, and at most a few (the run summary has
        # every stream).
        named = [
            name
            for name, counts in streams.items()
            if final or counts != self._last_stream_counts.get(name)
        ]
        self._last_stream_counts = streams
        per_stream = "; ".join(
            f"{_progress_name(name)}: {streams[name]['records_read']} read, "
            f"{streams[name]['events_sent']} sent, "
            f"{streams[name]['events_acknowledged']} acknowledged, "
            f"{streams[name]['events_in_flight']} in flight, "
            f"{streams[name]['events_dead_lettered']} dead-lettered"
            for name in named[:PROGRESS_STREAMS_NAMED]
        )
        if len(named) > PROGRESS_STREAMS_NAMED:
            per_stream += f"; {counted(len(named) - PROGRESS_STREAMS_NAMED, 'more stream')}"
        line = (
            f"{'Final progress' if final else 'Progress'}: "
            f"{counted(totals['records_read'], 'record')} read, "
            f"{counted(totals['events_sent'], 'event')} sent, "
            f"{totals['events_acknowledged']} acknowledged, "
            f"{totals['events_in_flight']} in flight, "
            f"{counted(progress['retries'], 'retry', 'retries')}, "
            f"{totals['events_dead_lettered']} dead-lettered, {rate:.1f} events/s"
            + (f" [{per_stream}]" if per_stream else "")
            + ("" if final else f"; {_short_pace(interval_pace)}")
        )
        self._logger.info(line)
        return line


def _progress_name(stream: str) -> str:
    """The stream's name as progress lines show it: as it is, for their brevity, unless it
    holds a line break or another control character, which would split the line (and could
    make what follows read as a log line of its own): then quoted with escapes, as every
    other log line shows stream names."""
    return stream if stream.isprintable() else repr(stream)


def _short_pace(interval_pace: Mapping[str, Any]) -> str:
    input_share, meta_share, working_share = shares_percent(interval_pace)
    return (
        f"since the last line {input_share}% waiting for input, {meta_share}% for Meta's "
        f"answers, {working_share}% working (pace set by {PACE_SETTERS[interval_pace['set_by']]})"
    )
