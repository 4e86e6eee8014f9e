"""What a run did, for operators: progress lines, Singer METRIC lines and the run summary.

Only counts, key names and reasons are kept here — never a user_data value (hashed or not),
an error message or a token — so nothing this module logs or writes can leak them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from singer_sdk import metrics as singer_metrics

from target_meta_capi.capi._words import counted
from target_meta_capi.pace import PACE_SETTERS, PACE_VERDICTS, pace
from target_meta_capi.summary.counts import MappingTally
from target_meta_capi.summary.near_cutoff import is_near_cutoff
from target_meta_capi.summary.reasons import (
    MAPPING_REASON_PREFIX,
    RULE_REASON_PREFIX,
    graph_error_reason,
)
from target_meta_capi.summary.run_warnings import _listing
from target_meta_capi.summary.stats import RunStats
from target_meta_capi.summary.summary_file import (
    NoReaderError,
    SummaryWriteError,
    standard_outputs_to,
    summary_file_target,
    write_summary_file,
)

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "MAPPING_REASON_PREFIX",
    "RULE_REASON_PREFIX",
    "TEST_EVENTS_NOTE",
    "MappingTally",
    "ProgressReporter",
    "RunStats",
    "graph_error_reason",
    "is_near_cutoff",
    "standard_outputs_to",
    "summary_file_target",
    "write_run_summary",
]


#: What a test_event_code does, said at the start and in the summary of such a run: a code
#: left in a live config makes every conversion a test event, and exit code 0 does not say so.
TEST_EVENTS_NOTE = (
    "test_event_code is set, so Meta shows the events in Events Manager's Test Events tool "
    "and counts none as a conversion (remove it to go live)"
)
DEFAULT_PROGRESS_INTERVAL = 10.0
#: A progress line names at most this many streams: those whose counts moved since the line
#: before (for the final line, any), in name order, and says how many more did.
PROGRESS_STREAMS_NAMED = 10


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    """The run summary as log lines: one for the totals, one per stream, one for requests."""
    totals = summary["totals"]
    dry_run = (
        " of a DRY RUN: nothing was sent to Meta; 'sent' and 'acknowledged' count events "
        "written out as requests"
        if summary.get("dry_run")
        else ""
    )
    test_events = (
        f" TEST EVENTS: {TEST_EVENTS_NOTE}."
        if summary.get("test_events") and not summary.get("dry_run")
        else ""
    )
    lines = [
        f"Run summary{dry_run} ({summary['duration_seconds']:.1f} s): "
        f"{counted(totals['records_read'], 'record')} read, "
        f"{counted(totals['events_mapped'], 'event')} mapped, "
        f"{totals['events_sent']} sent, {totals['events_acknowledged']} acknowledged, "
        f"{totals['events_dead_lettered']} dead-lettered, {totals['events_skipped']} skipped, "
        f"{totals['events_in_flight']} unsettled.{test_events}"
    ]
    for name, stream in summary["streams"].items():
        coverage = ", ".join(
            f"{key} {pct:.1f}%" for key, pct in stream["match_key_coverage"].items()
        )
        dropped = ", ".join(
            f"{field}/{reason}={count}"
            for field, reasons in stream["dropped_values"].items()
            for reason, count in reasons.items()
        )
        lines.append(
            f"Stream {name!r}: {stream['records_read']} read, {stream['events_mapped']} mapped, "
            f"{stream['events_sent']} sent in {counted(stream['requests'], 'request')}, "
            f"{stream['events_acknowledged']} acknowledged, "
            f"{stream['events_dead_lettered']} dead-lettered, {stream['events_skipped']} skipped; "
            f"match-key coverage: {coverage or 'n/a'}; "
            f"dead letters: {_listing(stream['dead_letters_by_reason'])}; "
            f"dropped values: {dropped or 'none'}."
        )
    requests = summary["requests"]
    latency = requests["latency_seconds"]
    lines.append(
        f"Requests: {requests['submitted']} submitted, {counted(requests['attempts'], 'attempt')} "
        f"(by status: {_listing(requests['attempts_by_status'])}; "
        f"failures: {_listing(requests['failures_by_reason'])}), "
        f"{counted(requests['retries'], 'retry', 'retries')} "
        f"({_listing(requests['retries_by_reason'])}); "
        f"latency p50 {_seconds(latency['p50'])}, p95 {_seconds(latency['p95'])}, "
        f"max {_seconds(latency['max'])}"
        + (
            f"; Meta rate-limit usage peaked at {usage:g}%."
            if (usage := requests["peak_rate_limit_usage_percent"]) is not None
            else "."
        )
    )
    lines.append(_pace_line(summary["pace"], summary["duration_seconds"]))
    mismatches = summary["events_received_mismatches"]
    if mismatches["requests"]:
        lines.append(
            f"events_received mismatches: {counted(mismatches['requests'], 'request')}, "
            f"{counted(mismatches['events_sent'], 'event')} sent, "
            f"{mismatches['events_received']} counted by Meta."
        )
    return lines


def _pace_seconds(run_pace: Mapping[str, Any]) -> tuple[float, float, float]:
    """Waiting for input, waiting for Meta's answers, working."""
    return (
        run_pace["waiting_for_input_seconds"],
        run_pace["waiting_for_meta_seconds"],
        run_pace["working_seconds"],
    )


def _shares_percent(run_pace: Mapping[str, Any]) -> tuple[int, int, int]:
    """Whole percentages of the waits for input and for Meta and of the work, adding up to 100.

    Each rounded on its own, three shares may add up to 99 or 101; the largest remainders get
    the points rounding down lost, as in a seat count.
    """
    parts = _pace_seconds(run_pace)
    whole = sum(parts)
    if whole <= 0:
        return 0, 0, 100
    exact = [100 * part / whole for part in parts]
    shares = [int(share) for share in exact]
    by_remainder = sorted(range(3), key=lambda index: exact[index] - shares[index], reverse=True)
    for index in by_remainder[: 100 - sum(shares)]:
        shares[index] += 1
    return shares[0], shares[1], shares[2]


def _pace_line(run_pace: Mapping[str, Any], duration: float) -> str:
    # a short run's parts would all read "0.0 s"
    decimals = 1 if duration >= 10 else 2
    input_part, meta_part, working_part = (
        f"{part:.{decimals}f} s ({share}%)"
        for part, share in zip(_pace_seconds(run_pace), _shares_percent(run_pace), strict=True)
    )
    return (
        f"Pace: {input_part} waiting for input, {meta_part} waiting for Meta's answers, "
        f"{working_part} working: {PACE_VERDICTS[run_pace['set_by']]}."
    )


def write_run_summary(
    stats: RunStats, logger: logging.Logger, summary_path: str | os.PathLike[str] | None
) -> dict[str, Any]:
    """Flush METRIC counters, log the summary and its warnings, write it as JSON if asked."""
    stats.emit_metric_counters()
    summary = stats.snapshot()
    for line in format_summary(summary):
        logger.info(line)
    for warning in summary["warnings"]:
        stats._warn_once(warning, logger)
    if summary_path:
        try:
            write_summary_file(Path(summary_path), json.dumps(summary, indent=2) + "\n")
        except NoReaderError:
            logger.warning(
                "summary_path %s is a FIFO nobody reads: the summary above is not written to it",
                summary_path,
            )
        except OSError as error:  # a disk full, a directory gone since the start-up check
            raise SummaryWriteError(
                f"Cannot write the run summary file {summary_path}: {error.strerror or error}"
            ) from None
    return summary


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
        self._thread = threading.Thread(
            target=self._run, name="target-meta-capi-progress", daemon=True
        )
        self._thread.start()

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
    input_share, meta_share, working_share = _shares_percent(interval_pace)
    return (
        f"since the last line {input_share}% waiting for input, {meta_share}% for Meta's "
        f"answers, {working_share}% working (pace set by {PACE_SETTERS[interval_pace['set_by']]})"
    )
