"""Delivery: the state every sink of a run shares — the window, the ledger, the first failure.

Requests are handed to the one sliding window; their answers arrive on executor threads, where
`Delivery` settles record numbers, writes dead letters, or records the failure that the main
thread raises at its next message (an exception on an executor thread would only be logged).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from target_meta_capi.capi._words import counted
from target_meta_capi.capi.errors import (
    REDIRECT_WITHOUT_LOCATION,
    AuthError,
    BodyLimitError,
    DeliveryError,
    EventsReceivedMismatch,
    GraphAPIError,
    LocalResourceError,
    NetworkError,
    ProcessorClosedError,
    RequestTimeout,
)
from target_meta_capi.capi.request import DEFAULT_GRAPH_URL
from target_meta_capi.dead_letter import DeadLetter, DeadLetterWriter
from target_meta_capi.mapping import record_key_text
from target_meta_capi.reader import TerminationRequested
from target_meta_capi.state import AckLedger
from target_meta_capi.summary import RunStats

#: what to do when the run had no file descriptor left
RAISE_OPEN_FILES = (
    "raise the limit on open files (`ulimit -n`, a container's nofile limit) or lower "
    "concurrent_requests; rerun from the last state."
)

if TYPE_CHECKING:
    from target_meta_capi.capi.batch import BatchProcessor
    from target_meta_capi.capi.isolate import DeliveryReport
    from target_meta_capi.capi.request import EventRequest


class TargetFailure(Exception):
    """The run cannot go on; the message says what happened and what to check."""


class BadRecordError(TargetFailure):
    """A record that cannot become an event (unusable field) — input to fix at the source."""


class InvalidEventError(TargetFailure):
    """An event broke Meta's rules while `on_invalid_event` is `fail`."""


class EventRejectedError(TargetFailure):
    """Meta rejected an event while `on_invalid_event` is `fail`. Found when its request was
    answered, long after its input line was read, so the message names its key instead."""


class DeliveryFailed(TargetFailure):
    """A request failed for good (auth, retries exhausted, events_received mismatch...)."""


class StateOutputClosed(TargetFailure):
    """stdout, where state goes, is closed: no state can be recorded, so the run stops."""


@dataclass(frozen=True)
class SentBatch:
    """What the completion callback needs to know about one request."""

    stream: str
    record_numbers: Sequence[int]
    keys: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any] | msgspec.Raw]
    pixel_id: str | None = None  # the stream's own pixel, else the target's

    def event(self, index: int) -> Mapping[str, Any]:
        """The event at `index`, decoded when a record worker handed it over as JSON."""
        event = self.events[index]
        return msgspec.json.decode(event) if isinstance(event, msgspec.Raw) else event

    def describe(self) -> str:
        return (
            f"stream {self.stream!r}, request of {counted(len(self.events), 'event')} "
            f"(records #{self.record_numbers[0]} to #{self.record_numbers[-1]})"
        )


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


#: Graph's "Unknown path components": a graph_url leading somewhere under Graph's URL
_UNKNOWN_PATH_CODE = 2500


def _failure_hint(error: BaseException) -> str:
    if isinstance(error, AuthError) and "appsecret_proof" in (error.message or ""):
        # Graph's words for a proof missing or wrong: the token and pixel may be fine
        return (
            " Check app_secret: the app requires appsecret_proof, which the target makes from "
            "app_secret and access_token; set app_secret to the secret of the token's app."
        )
    if isinstance(error, AuthError):
        return (
            " Check access_token (valid, not expired, with ads_management permission for "
            "the pixel) and pixel_id (the stream's own, where streams.<stream>.pixel_id is set)."
        )
    if isinstance(error, BodyLimitError):
        # it names the proxy's limit to raise itself, as the library's callers see it
        return (
            " A smaller batch_size cannot help either; once the limit of the proxy graph_url "
            "leads to is raised, rerun from the last state."
        )
    if (
        isinstance(error, GraphAPIError)
        and error.code is None
        and 300 <= error.http_status < 400
        and REDIRECT_WITHOUT_LOCATION in (error.message or "")
    ):
        return (
            " Check graph_url: what answers there redirects without saying where to, which "
            f"the Graph API never does; set it to {DEFAULT_GRAPH_URL}, or to the base URL of "
            "a proxy serving the Graph API."
        )
    if isinstance(error, GraphAPIError) and error.code is None and 300 <= error.http_status < 400:
        return (
            " Check graph_url: set it to the base of the URL the redirect leads to (scheme and "
            "host, without /<api_version>/<pixel_id>/events), if that serves the Graph API."
        )
    if isinstance(error, GraphAPIError) and error.code is None and 400 <= error.http_status < 500:
        return " Check graph_url and api_version: this does not look like the Graph API."
    if isinstance(error, GraphAPIError) and error.code is None and 200 <= error.http_status < 300:
        # a success without Graph's answer: a web page or a login where Graph should be
        return (
            f"{_retries_ended(error)} Check graph_url: this does not look like the Graph API; "
            "rerun from the last state."
        )
    if isinstance(error, GraphAPIError) and error.code == _UNKNOWN_PATH_CODE:
        return (
            " Check graph_url: Graph's base URL alone (the target adds "
            "/<api_version>/<pixel_id>/events), or that of a proxy serving it."
        )
    if isinstance(error, RequestTimeout) and error.maybe_delivered:
        # the request was sent and no answer came in time; a connection that timed out
        # reached no one to answer slowly
        return (
            f"{_retries_ended(error)} Check graph_url and the network, or raise "
            "request_timeout if Meta answers this slowly; rerun from the last state."
        )
    if isinstance(error, LocalResourceError):
        return (
            f"{_retries_ended(error)} This machine ran short of what a request needs: "
            f"{RAISE_OPEN_FILES}"
        )
    if isinstance(error, NetworkError):
        return (
            f"{_retries_ended(error)} Check graph_url and the network; rerun from the last "
            "state when it is reachable."
        )
    if isinstance(error, EventsReceivedMismatch):
        return " Meta stored an unknown part of the events; rerun from the last state."
    if (
        isinstance(error, DeliveryError)
        and error.wait_beyond_max_time
        and error.retry_after is not None
    ):
        return (
            f" Meta asked to wait {_duration(error.retry_after)} before sending again, beyond "
            "max_retry_seconds; rerun from the last state after that, or raise "
            "max_retry_seconds to wait it out."
        )
    if isinstance(error, DeliveryError) and error.attempts is not None:
        raise_limit = (
            ", or raise max_retry_seconds to retry longer" if error.retry_time_ran_out else ""
        )
        return (
            f"{_retries_ended(error)} Rerun from the last state when the endpoint recovers"
            f"{raise_limit}."
        )
    return ""


def _sentence(error: BaseException) -> str:
    """The error's text ending with one full stop (Meta's messages often end with their own)."""
    return f"{str(error).rstrip('. ')}."


def _retries_ended(error: DeliveryError) -> str:
    """Which limit ended the retries: raising max_retries does nothing once max_retry_seconds
    ran out first."""
    if error.attempts is None:
        return ""
    limit = "max_retry_seconds" if error.retry_time_ran_out else "max_retries"
    return f" Gave up after {counted(error.attempts, 'attempt')}: {limit} ran out."


class Delivery:
    """State shared by every sink of a run: ledger, window, dead letters, first failure."""

    def __init__(
        self,
        *,
        ledger: AckLedger,
        processor: BatchProcessor,
        template_request: EventRequest,
        dead_letters: DeadLetterWriter,
        stats: RunStats,
        fail_on_invalid_event: bool,
        on_settled: Callable[[], None],
        on_failed: Callable[[], None],
    ) -> None:
        self.ledger = ledger
        self.processor = processor
        self.template_request = template_request
        self.dead_letters = dead_letters
        self.stats = stats
        self.fail_on_invalid_event = fail_on_invalid_event
        # Called after each answer is settled, so that a state can be written the moment it is
        # covered, even while the main thread waits for a quiet tap's next line.
        self._on_settled = on_settled
        # Called once a failure is recorded (any thread), so that the main thread raises it
        # now, even while it waits for a quiet tap's next line.
        self._on_failed = on_failed
        # Requests whose completion callback has not finished yet. The processor's own
        # in-flight count drops before our callback runs, so waiting on it could write the
        # final state before the last numbers are settled.
        self._unsettled_requests = 0
        self._condition = threading.Condition()
        self._failure: TargetFailure | None = None
        self._stopped_by: int | None = None  # the signal that stopped sending
        self._private_fields: dict[str, tuple[tuple[str, ...], ...]] = {}

    @property
    def unsettled_requests(self) -> int:
        """Requests submitted whose answer has not been settled yet."""
        return self._unsettled_requests

    def fail(self, failure: TargetFailure) -> None:
        """Remember the first failure; no state is released from now on."""
        with self._condition:
            if self._failure is None:
                self._failure = failure
            self._condition.notify_all()
        self.ledger.poison()
        self._on_failed()

    def abort(self, failure: TargetFailure) -> None:
        """From any thread: a failure outside sending (a record worker lost) stops the run now.
        As `fail`, and no request starts from now on: a submit() waiting for room in the
        window raises `failure` instead of waiting for Meta's answers (minutes of retries in
        an outage)."""
        self.fail(failure)
        self.processor.refuse_new()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted request is settled; False on a failure or timeout."""
        with self.stats.pace_clock.waiting_for("meta"), self._condition:
            self._condition.wait_for(
                lambda: self._unsettled_requests == 0 or self._failure is not None, timeout
            )
            return self._unsettled_requests == 0 and self._failure is None

    def stop_sending(self, signum: int) -> None:
        """From a signal handler: start no more requests. A submit() waiting for room in the
        window, now or later, raises TerminationRequested instead of waiting on for Meta's
        answers: a signal that lands just before that wait must not be held up by it."""
        self._stopped_by = signum
        self.processor.refuse_new()

    def keep_private(self, stream: str, paths: Collection[tuple[str, ...]]) -> None:
        """Fields of the stream's events that hold customer information outside user_data:
        no error message of their requests quotes their values."""
        self._private_fields[stream] = tuple(paths)

    @property
    def failed(self) -> bool:
        """A callback thread recorded a failure (`raise_if_failed` raises it)."""
        return self._failure is not None

    @property
    def failure(self) -> TargetFailure | None:
        """The first failure a callback thread recorded, if any."""
        return self._failure

    def raise_if_failed(self) -> None:
        """Raise a failure recorded by a callback thread (main thread)."""
        if self._failure is not None:
            raise self._failure

    def submit(self, batch: SentBatch) -> None:
        """Hand one request to the window (blocks while it is full: backpressure)."""
        self.raise_if_failed()
        request = self.template_request.copy_with(
            list(batch.events),
            pixel_id=batch.pixel_id,
            private_fields=self._private_fields.get(batch.stream, ()),
        )
        request = request.with_encoded_body()
        # from here on the events are read from the body: each is held once while in flight
        batch = dataclasses.replace(batch, events=request.events)
        self.stats.request_submitted(batch.stream, len(batch.events))
        with self._condition:
            self._unsettled_requests += 1
        try:
            # blocks while the window is full
            with self.stats.pace_clock.waiting_for("meta"):
                future = self.processor.submit_isolating(request)
        except BaseException as error:
            self.stats.request_not_submitted(batch.stream, len(batch.events))
            self._request_settled()
            if isinstance(error, ProcessorClosedError) and self._stopped_by is not None:
                raise TerminationRequested(self._stopped_by) from None
            if isinstance(error, ProcessorClosedError) and self._failure is not None:
                raise self._failure from None
            raise
        future.add_done_callback(self._callback_for(batch))

    def _request_settled(self) -> None:
        with self._condition:
            self._unsettled_requests -= 1
            self._condition.notify_all()

    def _callback_for(self, batch: SentBatch) -> Callable[[Future[DeliveryReport]], None]:
        def on_done(future: Future[DeliveryReport]) -> None:
            # Runs on an executor thread, whose exceptions concurrent.futures would only log:
            # anything unexpected must still stop the run.
            try:
                self._settle(batch, future)
                self._on_settled()
            except TargetFailure as failure:  # says what happened and what to do already
                self.fail(failure)
            except BaseException as error:
                self.fail(DeliveryFailed(f"{batch.describe()}: {type(error).__name__}: {error}"))
            finally:
                self._request_settled()

        return on_done

    def _settle(self, batch: SentBatch, future: Future[DeliveryReport]) -> None:
        error = future.exception()
        if error is not None:
            # parts Meta accepted while its invalid events were being isolated are delivered
            delivered = len(error.delivered_before) if isinstance(error, DeliveryError) else 0
            self.stats.request_acknowledged(batch.stream, delivered)
            self.stats.request_failed(batch.stream, len(batch.events) - delivered)
            if isinstance(error, EventsReceivedMismatch):
                self.stats.events_received_mismatch(batch.stream, error.sent, error.received)
            self.fail(
                DeliveryFailed(
                    f"Sending failed for good: {batch.describe()}: {_sentence(error)}"
                    f"{_failure_hint(error)}"
                )
            )
            return
        report = future.result()
        for response in report.responses:
            for message in response.messages:
                self.stats.message_from_meta(message)
        if report.rejected and self.fail_on_invalid_event:
            # as for an event breaking a rule locally: the run stops instead of dead-lettering
            first = report.rejected[0]
            # the bisection got the others accepted: Meta has them, though no state covers them
            self.stats.request_acknowledged(batch.stream, len(report.delivered))
            self.stats.request_failed(batch.stream, len(report.rejected))
            self.fail(
                EventRejectedError(
                    f"Meta rejected an event of {batch.describe()} (key "
                    f"{record_key_text(batch.keys[first.index]) or 'none'}): {first.error} "
                    "(on_invalid_event is 'fail')"
                )
            )
            return
        for rejected in report.rejected:
            letter = DeadLetter.from_meta_error(
                stream=batch.stream,
                key=batch.keys[rejected.index],
                event=batch.event(rejected.index),
                error=rejected.error,
            )
            self.dead_letter(letter)
        self.stats.request_acknowledged(batch.stream, len(report.delivered))
        self.ledger.settle(batch.record_numbers)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.write(letter)
        self.stats.events_dead_lettered(letter.stream, letter.summary_reason)
