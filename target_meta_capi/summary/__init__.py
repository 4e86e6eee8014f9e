"""What a run did, for operators: progress lines, Singer METRIC lines and the run summary.

Only counts, key names and reasons are kept here — never a user_data value (hashed or not),
an error message or a token — so nothing this module logs or writes can leak them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from singer_sdk import metrics as singer_metrics

from target_meta_capi.capi._words import counted
from target_meta_capi.capi.request import RequestObserver
from target_meta_capi.pace import PACE_SETTERS, PACE_VERDICTS, PaceClock, pace
from target_meta_capi.summary.counts import (
    MappingTally,
    _add,
    _count_mapped,
    _StreamCounters,
    _sum_counts,
)
from target_meta_capi.summary.latency import LatencyHistogram
from target_meta_capi.summary.near_cutoff import is_near_cutoff
from target_meta_capi.summary.reasons import (
    MAPPING_REASON_PREFIX,
    RULE_REASON_PREFIX,
    error_reason,
    graph_error_reason,
)
from target_meta_capi.summary.run_warnings import (
    RATE_LIMIT_WARNING,
    RATE_LIMIT_WARNING_PERCENT,
    _listing,
    _skipped_warning,
    _warnings,
)
from target_meta_capi.summary.summary_file import (
    NoReaderError,
    SummaryWriteError,
    standard_outputs_to,
    summary_file_target,
    write_summary_file,
)

if TYPE_CHECKING:
    from target_meta_capi.capi.normalize import DroppedValue

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
#: The endpoint tag of the HTTP metrics: the edge every request goes to, of whichever pixel
METRIC_ENDPOINT = "events"


class CapiMetric(str, enum.Enum):
    """Counters this target adds to singer_sdk's metric names."""

    EVENTS_SENT = "events_sent"
    EVENTS_ACKNOWLEDGED = "events_acknowledged"
    EVENTS_DEAD_LETTERED = "events_dead_lettered"
    HTTP_REQUEST_RETRY_COUNT = "http_request_retry_count"


def coverage_percent(count: int, total: int) -> float:
    """count/total as a percentage with one decimal, rounding halves up (6.25 → 6.3)."""
    tenths = (2000 * count + total) // (2 * total)
    return tenths / 10


def _nested_dropped(dropped: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (field, reason), count in sorted(dropped.items()):
        nested.setdefault(field, {})[reason] = count
    return nested


class RunStats(RequestObserver):
    """Thread-safe counters of one run; also the RequestObserver given to the dispatcher.

    Per-record hooks take one uncontended lock and touch a few dict entries, so they cost
    about a microsecond; everything else (percentiles, formatting) happens at report time.
    Records of a skipped stream should still be passed to `record_read`: they are what the
    summary reports as skipped.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        dry_run: bool = False,
        test_events: bool = False,
    ) -> None:
        self._logger = logger or logging.getLogger(__name__)
        #: Nothing reaches Meta: "sent" and "acknowledged" count requests written out.
        self.dry_run = dry_run
        #: test_event_code is set: Meta shows the events in Test Events, counts no conversion.
        self.test_events = test_events
        self._metrics_logger = singer_metrics.get_metrics_logger()
        self._clock = clock
        self._started = clock()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamCounters] = {}
        self._attempts_by_status: dict[str, int] = {}
        self._failures_by_reason: dict[str, int] = {}
        self._retries_by_reason: dict[str, int] = {}
        self._latencies = LatencyHistogram()
        self._peak_rate_limit_usage: float | None = None
        #: The main thread's waits for input and for Meta's answers (pace.py)
        self.pace_clock = PaceClock(clock)
        self._emitted_counters: dict[tuple[CapiMetric, tuple[tuple[str, str], ...]], int] = {}
        self._logged_warnings: set[str] = set()
        self._run_warnings: list[str] = []
        #: Whether any HTTP answer came back, error or not: graph_url leads somewhere.
        self.endpoint_answered = False

    def _stream(self, stream: str) -> _StreamCounters:
        # callers hold self._lock
        counters = self._streams.get(stream)
        if counters is None:
            counters = self._streams[stream] = _StreamCounters()
        return counters

    # --- hooks called by the sink ------------------------------------------------------

    def record_read(self, stream: str) -> None:
        with self._lock:
            self._stream(stream).records_read += 1

    def row_deleted(self, stream: str) -> None:
        """A record read and not sent: the tap reports the row deleted."""
        with self._lock:
            counters = self._stream(stream)
            counters.records_read += 1
            counters.rows_deleted += 1

    def event_mapped(
        self, stream: str, event: Mapping[str, Any], dropped: Sequence[DroppedValue]
    ) -> None:
        """Count the event's match keys (present = a non-empty value) and its dropped values."""
        with self._lock:
            _count_mapped(self._stream(stream), event, dropped)

    def records_converted(self, stream: str, tally: MappingTally) -> None:
        """Add what a record worker counted while it mapped `tally.records` records."""
        with self._lock:
            tally.add_to(self._stream(stream))

    def run_warning(self, message: str) -> None:
        """A warning about the whole run: logged once, and listed in the summary."""
        with self._lock:
            if message not in self._run_warnings:
                self._run_warnings.append(message)
        self._warn_once(message)

    def stream_skipped(self, stream: str, reason: str) -> None:
        """Mark a stream as not sent; warns the first time it is seen."""
        with self._lock:
            self._stream(stream).skipped_reason = reason
        self._warn_once(_skipped_warning(stream, reason))

    def events_dead_lettered(self, stream: str, reason: str, count: int = 1) -> None:
        """reason: `rule:<rule_name>` (local), `meta:<code>/<subcode>` (rejected by Meta)..."""
        with self._lock:
            _add(self._stream(stream).dead_letters, reason, count)

    def request_submitted(self, stream: str, events: int) -> None:
        with self._lock:
            counters = self._stream(stream)
            counters.requests += 1
            counters.events_sent += events

    def request_not_submitted(self, stream: str, events: int) -> None:
        """Takes back `request_submitted`: the window never started the request."""
        with self._lock:
            counters = self._stream(stream)
            counters.requests -= 1
            counters.events_sent -= events

    def request_failed(self, stream: str, events: int) -> None:
        """A request whose answer (or lack of one) failed the run: not in flight any more."""
        with self._lock:
            self._stream(stream).events_failed += events

    def request_acknowledged(self, stream: str, events: int) -> None:
        with self._lock:
            self._stream(stream).events_acknowledged += events

    def events_received_mismatch(self, stream: str, sent: int, received: int) -> None:
        with self._lock:
            counters = self._stream(stream)
            counters.mismatch_requests += 1
            counters.mismatch_sent += sent
            counters.mismatch_received += received

    def near_cutoff_event(self, stream: str) -> None:
        with self._lock:
            self._stream(stream).near_cutoff += 1

    # --- RequestObserver -----------------------------------------------------------------

    def on_attempt(
        self, events: int, status: int | None, seconds: float, error: Exception | None
    ) -> None:
        """Record the attempt and log one `http_request_duration` METRIC for it."""
        status_key = "none" if status is None else str(status)
        if status is not None:
            self.endpoint_answered = True
        with self._lock:
            self._latencies.add(seconds)
            _add(self._attempts_by_status, status_key, 1)
            if error is not None:
                _add(self._failures_by_reason, error_reason(error), 1)
        tags: dict[str, Any] = {
            singer_metrics.Tag.ENDPOINT: METRIC_ENDPOINT,
            singer_metrics.Tag.HTTP_STATUS_CODE: status,
            singer_metrics.Tag.STATUS: (
                singer_metrics.Status.SUCCEEDED if error is None else singer_metrics.Status.FAILED
            ),
            singer_metrics.Tag.PID: self._pid,
        }
        singer_metrics.log(
            self._metrics_logger,
            singer_metrics.Point(
                "timer", singer_metrics.Metric.HTTP_REQUEST_DURATION, seconds, tags
            ),
        )

    def on_retry(self, error: Exception, attempt: int, delay: float) -> None:
        with self._lock:
            _add(self._retries_by_reason, error_reason(error), 1)

    def on_rate_limit_usage(self, percent: float) -> None:
        with self._lock:
            if self._peak_rate_limit_usage is not None and percent <= self._peak_rate_limit_usage:
                return
            self._peak_rate_limit_usage = percent
        if percent >= RATE_LIMIT_WARNING_PERCENT:
            self._warn_once(RATE_LIMIT_WARNING)

    # --- reading ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self._started

    def progress(self) -> dict[str, Any]:
        """Counts only (cheap enough for every progress line): totals, per stream, retries."""
        with self._lock:
            streams = {name: self._streams[name].counts() for name in sorted(self._streams)}
            retries = sum(self._retries_by_reason.values())
        return {
            "totals": _sum_counts(list(streams.values())),
            "streams": streams,
            "retries": retries,
        }

    def snapshot(self) -> dict[str, Any]:
        """The run summary as a JSON-able dict (streams and reasons in sorted order)."""
        with self._lock:
            streams = {name: self._stream_summary(name) for name in sorted(self._streams)}
            latency = {
                "p50": self._latencies.percentile(0.50),
                "p95": self._latencies.percentile(0.95),
                "max": self._latencies.max,
            }
            attempts = self._latencies.count
            attempts_by_status = dict(sorted(self._attempts_by_status.items()))
            failures_by_reason = dict(sorted(self._failures_by_reason.items()))
            retries_by_reason = dict(sorted(self._retries_by_reason.items()))
            peak_usage = self._peak_rate_limit_usage
        dead_letters: dict[str, int] = {}
        dropped: dict[tuple[str, str], int] = {}
        mismatches = {"requests": 0, "events_sent": 0, "events_received": 0}
        for stream in streams.values():
            for reason, count in stream["dead_letters_by_reason"].items():
                _add(dead_letters, reason, count)
            for field, reasons in stream["dropped_values"].items():
                for reason, count in reasons.items():
                    _add(dropped, (field, reason), count)
            for key, count in stream["events_received_mismatches"].items():
                mismatches[key] += count
        # waits first: one still going on is counted up to now, and must fit in the run
        waits = self.pace_clock.waits()
        duration = self.elapsed()
        summary: dict[str, Any] = {
            "duration_seconds": round(duration, 3),
            "dry_run": self.dry_run,
            "test_events": self.test_events,
            "totals": _sum_counts(list(streams.values())),
            "streams": streams,
            "requests": {
                "submitted": sum(stream["requests"] for stream in streams.values()),
                "attempts": attempts,
                "attempts_by_status": attempts_by_status,
                "failures_by_reason": failures_by_reason,
                "retries": sum(retries_by_reason.values()),
                "retries_by_reason": retries_by_reason,
                "latency_seconds": latency,
                # the highest share of a Meta rate limit any answer reported (capi/usage.py)
                "peak_rate_limit_usage_percent": peak_usage,
            },
            "dead_letters_by_reason": dict(sorted(dead_letters.items())),
            "dropped_values": _nested_dropped(dropped),
            "events_received_mismatches": mismatches,
            "pace": pace(duration, *waits),
        }
        summary["warnings"] = _warnings(streams) + list(self._run_warnings)
        if peak_usage is not None and peak_usage >= RATE_LIMIT_WARNING_PERCENT:
            summary["warnings"].append(RATE_LIMIT_WARNING)
        return summary

    def _stream_summary(self, name: str) -> dict[str, Any]:
        # callers hold self._lock
        counters = self._streams[name]
        mapped = counters.events_mapped
        return {
            **counters.counts(),
            "skipped_reason": counters.skipped_reason,
            "rows_deleted": counters.rows_deleted,
            "match_key_coverage": (
                {key: coverage_percent(count, mapped) for key, count in counters.coverage.items()}
                if mapped
                else {}
            ),
            "dead_letters_by_reason": dict(sorted(counters.dead_letters.items())),
            "dropped_values": _nested_dropped(counters.dropped),
            "events_near_cutoff": counters.near_cutoff,
            "events_received_mismatches": {
                "requests": counters.mismatch_requests,
                "events_sent": counters.mismatch_sent,
                "events_received": counters.mismatch_received,
            },
        }

    # --- logging ---------------------------------------------------------------------------

    def emit_metric_counters(self) -> None:
        """Log a METRIC counter line for every count that grew since the previous call.

        Values are increments, as singer_sdk's own counters report them.
        """
        with self._lock:
            current: list[tuple[CapiMetric, tuple[tuple[str, str], ...], int]] = []
            for name, counters in self._streams.items():
                stream_tag = (singer_metrics.Tag.STREAM.value, name)
                current.append((CapiMetric.EVENTS_SENT, (stream_tag,), counters.events_sent))
                current.append(
                    (CapiMetric.EVENTS_ACKNOWLEDGED, (stream_tag,), counters.events_acknowledged)
                )
                for reason, count in counters.dead_letters.items():
                    tags: tuple[tuple[str, str], ...] = (stream_tag, ("reason", reason))
                    current.append((CapiMetric.EVENTS_DEAD_LETTERED, tags, count))
            for reason, count in self._retries_by_reason.items():
                tags = ((singer_metrics.Tag.ENDPOINT.value, METRIC_ENDPOINT), ("reason", reason))
                current.append((CapiMetric.HTTP_REQUEST_RETRY_COUNT, tags, count))
            increments = []
            for metric, tags, total in current:
                increment = total - self._emitted_counters.get((metric, tags), 0)
                if increment:
                    self._emitted_counters[(metric, tags)] = total
                    increments.append((metric, tags, increment))
        for metric, tags, increment in increments:
            # singer_sdk types Point.metric as its own Metric enum, which cannot be extended;
            # it reads only metric.value, which CapiMetric's members have as Metric's do
            point = singer_metrics.Point(
                "counter",
                metric,  # type: ignore[arg-type]
                increment,
                {**dict(tags), singer_metrics.Tag.PID: self._pid},
            )
            singer_metrics.log(self._metrics_logger, point)

    def _warn_once(self, message: str, logger: logging.Logger | None = None) -> None:
        with self._lock:
            if message in self._logged_warnings:
                return
            self._logged_warnings.add(message)
        (logger or self._logger).warning(message)


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
