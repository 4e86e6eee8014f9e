"""The run's statistics: `RunStats`, the thread-safe counters every part of a run reports
to (the sink, the record workers, the sending window as a RequestObserver), read for the
progress lines and the summary, and the Singer METRIC lines it logs."""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from singer_sdk import metrics as singer_metrics

from target_meta_capi.capi.errors import redact
from target_meta_capi.capi.request import RequestObserver
from target_meta_capi.pace import PaceClock, pace
from target_meta_capi.summary.counts import (
    MappingTally,
    StreamCounters,
    add_count,
    count_mapped,
    sum_counts,
)
from target_meta_capi.summary.latency import LatencyHistogram
from target_meta_capi.summary.reasons import error_reason
from target_meta_capi.summary.run_warnings import (
    RATE_LIMIT_WARNING,
    RATE_LIMIT_WARNING_PERCENT,
    skipped_warning,
    stream_warnings,
)

if TYPE_CHECKING:
    from target_meta_capi.capi.normalize import DroppedValue

#: The endpoint tag of the HTTP metrics: the edge every request goes to, of whichever pixel
METRIC_ENDPOINT = "events"


#: Different messages of Meta's success answers kept apart, each logged once and counted; the
#: others are counted together under `OTHER_MESSAGES_FROM_META`. A message quoting something of
#: its request (an event's index, a trace id) would otherwise log a warning and add a summary
#: entry, kept to the end of the run, for every request.
MESSAGES_FROM_META_KEPT = 20
OTHER_MESSAGES_FROM_META = "(other messages)"


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
        secrets: Sequence[str] = (),
    ) -> None:
        self._logger = logger or logging.getLogger(__name__)
        #: cut out of every warning and the failure (a column, stream map or unknown setting
        #: may quote them), as is anything like an access token
        self._secrets = tuple(secrets)
        #: Nothing reaches Meta: "sent" and "acknowledged" count requests written out.
        self.dry_run = dry_run
        #: test_event_code is set: Meta shows the events in Test Events, counts no conversion.
        self.test_events = test_events
        self._metrics_logger = singer_metrics.get_metrics_logger()
        self._clock = clock
        self._started = clock()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._streams: dict[str, StreamCounters] = {}
        self._attempts_by_status: dict[str, int] = {}
        self._failures_by_reason: dict[str, int] = {}
        self._retries_by_reason: dict[str, int] = {}
        #: the reason of the retry a sending thread waits to make, counted once it is made
        self._retry_awaited = threading.local()
        self._latencies = LatencyHistogram()
        self._peak_rate_limit_usage: float | None = None
        self._messages_from_meta: dict[str, int] = {}
        #: The main thread's waits for input and for Meta's answers (pace.py)
        self.pace_clock = PaceClock(clock)
        self._emitted_counters: dict[tuple[CapiMetric, tuple[tuple[str, str], ...]], int] = {}
        self._logged_warnings: set[str] = set()
        self._run_warnings: list[str] = []
        #: The line a failed or stopped run ends with; None while it has not failed
        self._failure: str | None = None
        #: Whether any HTTP answer came back, error or not: graph_url leads somewhere.
        self.endpoint_answered = False

    def _stream(self, stream: str) -> StreamCounters:
        # callers hold self._lock
        counters = self._streams.get(stream)
        if counters is None:
            counters = self._streams[stream] = StreamCounters()
        return counters

    # --- hooks called by the sink ------------------------------------------------------

    def record_read(self, stream: str) -> None:
        with self._lock:
            self._stream(stream).records_read += 1

    def records_filtered(self, stream: str, count: int) -> None:
        """Records a stream map left out (`__filter__`, or the stream mapped to null): read,
        never to reach the stream's sink."""
        with self._lock:
            self._stream(stream).records_filtered += count

    def records_read_by(self, streams: Iterable[str]) -> dict[str, int]:
        """The records each of these streams' sinks has been given so far."""
        with self._lock:
            return {stream: self._stream(stream).records_read for stream in streams}

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
            count_mapped(self._stream(stream), event, dropped)

    def records_converted(self, stream: str, tally: MappingTally) -> None:
        """Add what a record worker counted while it mapped `tally.records` records."""
        with self._lock:
            tally.add_to(self._stream(stream))

    def run_warning(self, message: str) -> None:
        """A warning about the whole run: logged once, and listed in the summary."""
        message = redact(message, self._secrets)
        with self._lock:
            if message not in self._run_warnings:
                self._run_warnings.append(message)
        self.warn_once(message)

    def run_failed(self, failure: str) -> str:
        """The run stops with `failure` (what went wrong, where): the summary says so too.
        Returns it as the summary holds it, without secrets."""
        failure = redact(failure, self._secrets)
        with self._lock:
            self._failure = failure
        return failure

    def stream_skipped(self, stream: str, reason: str) -> None:
        """Mark a stream as not sent; warns the first time it is seen."""
        with self._lock:
            self._stream(stream).skipped_reason = reason
        self.warn_once(skipped_warning(stream, reason))

    def events_dead_lettered(self, stream: str, reason: str, count: int = 1) -> None:
        """reason: `rule:<rule_name>` (local), `meta:<code>/<subcode>` (rejected by Meta)..."""
        with self._lock:
            add_count(self._stream(stream).dead_letters, reason, count)

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
        retry_reason = getattr(self._retry_awaited, "reason", None)
        self._retry_awaited.reason = None
        with self._lock:
            self._latencies.add(seconds)
            add_count(self._attempts_by_status, status_key, 1)
            if retry_reason is not None:
                add_count(self._retries_by_reason, retry_reason, 1)
            if error is not None:
                add_count(self._failures_by_reason, error_reason(error), 1)
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
        # called before the wait: counted with the attempt it announces (on_attempt, on the
        # same thread), as a wait cut short by the end of the run retries nothing
        self._retry_awaited.reason = error_reason(error)

    def message_from_meta(self, message: str) -> None:
        """A message Meta's answer accepting a request carried (a warning: a deprecated
        parameter, say): counted, and logged the first time it comes; past
        `MESSAGES_FROM_META_KEPT` different ones, counted together."""
        with self._lock:
            messages = self._messages_from_meta
            kept = message in messages or len(messages) < MESSAGES_FROM_META_KEPT
            add_count(messages, message if kept else OTHER_MESSAGES_FROM_META, 1)
        if kept:
            self.warn_once(f"Meta accepted a request and said: {message}")
        else:
            self.warn_once(
                f"Meta's answers carried more than {MESSAGES_FROM_META_KEPT} different "
                f"messages: the others are not logged, and counted together as "
                f"{OTHER_MESSAGES_FROM_META!r} in the run summary"
            )

    def on_rate_limit_usage(self, percent: float) -> None:
        with self._lock:
            if self._peak_rate_limit_usage is not None and percent <= self._peak_rate_limit_usage:
                return
            self._peak_rate_limit_usage = percent
        if percent >= RATE_LIMIT_WARNING_PERCENT:
            self.warn_once(RATE_LIMIT_WARNING)

    # --- reading ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self._started

    def progress(self) -> dict[str, Any]:
        """Counts only (cheap enough for every progress line): totals, per stream, retries."""
        with self._lock:
            streams = {name: self._streams[name].counts() for name in sorted(self._streams)}
            retries = sum(self._retries_by_reason.values())
        return {
            "totals": sum_counts(list(streams.values())),
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
            messages_from_meta = dict(sorted(self._messages_from_meta.items()))
            failure = self._failure
        dead_letters: dict[str, int] = {}
        dropped: dict[tuple[str, str], int] = {}
        mismatches = {"requests": 0, "events_sent": 0, "events_received": 0}
        for stream in streams.values():
            for reason, count in stream["dead_letters_by_reason"].items():
                add_count(dead_letters, reason, count)
            for field, reasons in stream["dropped_values"].items():
                for reason, count in reasons.items():
                    add_count(dropped, (field, reason), count)
            for key, count in stream["events_received_mismatches"].items():
                mismatches[key] += count
        # waits first: one still going on is counted up to now, and must fit in the run
        waits = self.pace_clock.waits()
        duration = self.elapsed()
        summary: dict[str, Any] = {
            "duration_seconds": round(duration, 3),
            "dry_run": self.dry_run,
            "test_events": self.test_events,
            # a file read alone (by a monitor, say) tells a failed run from one that ended
            "failure": failure,
            "totals": sum_counts(list(streams.values())),
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
                # answers accepting a request that carried each message (its text)
                "messages_from_meta": messages_from_meta,
            },
            "dead_letters_by_reason": dict(sorted(dead_letters.items())),
            "dropped_values": _nested_dropped(dropped),
            "events_received_mismatches": mismatches,
            "pace": pace(duration, *waits),
        }
        summary["warnings"] = stream_warnings(streams) + list(self._run_warnings)
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

    def warn_once(self, message: str, logger: logging.Logger | None = None) -> None:
        """Log `message` as a warning, unless it was logged already: the run's warnings are
        listed again in its summary, each once."""
        message = redact(message, self._secrets)
        with self._lock:
            if message in self._logged_warnings:
                return
            self._logged_warnings.add(message)
        (logger or self._logger).warning(message)
