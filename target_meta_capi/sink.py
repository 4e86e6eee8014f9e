"""The sink: records → events → requests handed to the one shared sliding window.

`process_record` numbers, maps and validates each record (main thread). `process_batch` only
submits: it returns as soon as the request is in the window, so the SDK keeps reading while
Meta answers. Answers arrive on executor threads, where `Delivery` settles record numbers,
writes dead letters or records the failure the main thread raises at its next message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_meta_capi.capi.errors import (
    AuthError,
    DeliveryError,
    EventsReceivedMismatch,
    GraphAPIError,
    NetworkError,
)
from target_meta_capi.capi.rules import validate_event
from target_meta_capi.dead_letter import DeadLetter, DeadLetterWriter
from target_meta_capi.mapping import EventMapper, MappingError, build_event_mapper
from target_meta_capi.state import AckLedger
from target_meta_capi.summary import RunStats, is_near_cutoff
from target_meta_capi.validation import FastRecordParsingMixin

if TYPE_CHECKING:
    from target_meta_capi.capi.batch import BatchProcessor
    from target_meta_capi.capi.isolate import DeliveryReport
    from target_meta_capi.capi.request import EventRequest

# Events must still be fresh enough when Meta finally receives them (retries, backpressure):
# an event closer than this to Meta's age cutoff is dead-lettered instead of sent.
EVENT_TIME_SAFETY_MARGIN_SECONDS = 3600

ON_INVALID_DEAD_LETTER = "dead_letter"
ON_INVALID_FAIL = "fail"


class TargetFailure(Exception):
    """The run cannot go on; the message says what happened and what to check."""


class BadRecordError(TargetFailure):
    """A record that cannot become an event (unusable field) — input to fix at the source."""


class InvalidEventError(TargetFailure):
    """An event broke Meta's rules while `on_invalid_event` is `fail`."""


class DeliveryFailed(TargetFailure):
    """A request failed for good (auth, retries exhausted, events_received mismatch...)."""


@dataclass(frozen=True)
class SentBatch:
    """What the completion callback needs to know about one request."""

    stream: str
    record_numbers: Sequence[int]
    keys: Sequence[Mapping[str, Any]]
    events: Sequence[Mapping[str, Any]]

    def describe(self) -> str:
        return (
            f"stream {self.stream!r}, request of {len(self.events)} events "
            f"(records #{self.record_numbers[0]} to #{self.record_numbers[-1]})"
        )


def _failure_hint(error: BaseException) -> str:
    if isinstance(error, AuthError):
        return (
            " Check access_token (valid, not expired, with ads_management permission for "
            "the pixel) and pixel_id."
        )
    if isinstance(error, GraphAPIError) and error.code is None and 400 <= error.http_status < 500:
        return " Check graph_url and api_version: this does not look like the Graph API."
    if isinstance(error, NetworkError):
        return " Check graph_url and the network; rerun from the last state when it is reachable."
    if isinstance(error, EventsReceivedMismatch):
        return " Meta stored an unknown part of the events; rerun from the last state."
    if isinstance(error, DeliveryError) and error.retryable:
        return " Retries are exhausted; rerun from the last state when the endpoint recovers."
    return ""


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
    ) -> None:
        self.ledger = ledger
        self.processor = processor
        self.template_request = template_request
        self.dead_letters = dead_letters
        self.stats = stats
        self.fail_on_invalid_event = fail_on_invalid_event
        # Requests whose completion callback has not finished yet. The processor's own
        # in-flight count drops before our callback runs, so waiting on it could write the
        # final state before the last numbers are settled.
        self._unsettled_requests = 0
        self._condition = threading.Condition()
        self._failure: TargetFailure | None = None

    @property
    def failure(self) -> TargetFailure | None:
        return self._failure

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

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted request is settled; False on a failure or timeout."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._unsettled_requests == 0 or self._failure is not None, timeout
            )
            return self._unsettled_requests == 0 and self._failure is None

    def raise_if_failed(self) -> None:
        """Raise a failure recorded by a callback thread (main thread)."""
        if self._failure is not None:
            raise self._failure

    def submit(self, batch: SentBatch) -> None:
        """Hand one request to the window (blocks while it is full: backpressure)."""
        self.raise_if_failed()
        request = self.template_request.copy_with(list(batch.events))
        self.stats.request_submitted(batch.stream, len(batch.events))
        with self._condition:
            self._unsettled_requests += 1
        try:
            future = self.processor.submit_isolating(request)
        except BaseException:
            self._request_settled()
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
            except BaseException as error:
                self.fail(DeliveryFailed(f"{batch.describe()}: {type(error).__name__}: {error}"))
            finally:
                self._request_settled()

        return on_done

    def _settle(self, batch: SentBatch, future: Future[DeliveryReport]) -> None:
        error = future.exception()
        if error is not None:
            if isinstance(error, EventsReceivedMismatch):
                self.stats.events_received_mismatch(batch.stream, error.sent, error.received)
            self.fail(
                DeliveryFailed(
                    f"Sending failed for good: {batch.describe()}: {error}.{_failure_hint(error)}"
                )
            )
            return
        report = future.result()
        for rejected in report.rejected:
            letter = DeadLetter.from_meta_error(
                stream=batch.stream,
                key=batch.keys[rejected.index],
                event=batch.events[rejected.index],
                error=rejected.error,
            )
            self.dead_letter(letter)
        if report.rejected and self.fail_on_invalid_event:
            first = report.rejected[0]
            self.fail(
                InvalidEventError(
                    f"Meta rejected an event of {batch.describe()} (record "
                    f"#{batch.record_numbers[first.index]}): {first.error} "
                    "(on_invalid_event is 'fail')"
                )
            )
            return
        self.stats.request_acknowledged(batch.stream, len(report.delivered))
        self.ledger.settle(batch.record_numbers)

    def dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters.write(letter)
        self.stats.events_dead_lettered(letter.stream, letter.summary_reason)


def describe_schema_violation(cause: BaseException | None) -> str:
    """Which field broke which schema keyword — never the value, which may be customer data.

    Understands jsonschema's ValidationError and fastjsonschema's JsonSchemaValueException.
    """
    path = getattr(cause, "absolute_path", None)  # jsonschema
    keyword = getattr(cause, "validator", None)
    expected = getattr(cause, "validator_value", None)
    if path is None:  # fastjsonschema: path starts with "data"
        raw_path = getattr(cause, "path", None)
        path = raw_path[1:] if isinstance(raw_path, list | tuple) else None
        keyword = getattr(cause, "rule", None)
        expected = getattr(cause, "rule_definition", None)
    if path is None or keyword is None:
        return "the record does not match its SCHEMA"
    field = ".".join(str(part) for part in path) or "(the record)"
    if isinstance(expected, dict | list) and len(str(expected)) > 80:
        expected = "…"
    return f"field {field!r} breaks the schema's {keyword!r} ({expected!r})"


class PrivacySafeValidator(BaseJSONSchemaValidator):
    """Wraps a record validator so its errors name the field but never echo the value.

    The SDK logs a failed validation with its traceback: without this, a value that broke the
    schema (an email in a number column...) would land in the logs.
    """

    def __init__(self, inner: BaseJSONSchemaValidator) -> None:
        super().__init__(inner.schema)
        self.inner = inner

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self.inner.validate(record)
        except InvalidRecord as error:
            message = describe_schema_violation(error.__cause__)
            raise InvalidRecord(message, record) from None


def _record_key(
    record: Mapping[str, Any], key_properties: Sequence[str], redacted: frozenset[str]
) -> dict[str, Any]:
    return {name: "<redacted>" if name in redacted else record.get(name) for name in key_properties}


class EventSink(FastRecordParsingMixin, BatchSink):
    """Maps a stream's records to CAPI events and sends them in requests of `batch_size`."""

    def __init__(
        self,
        target: Any,
        stream_name: str,
        schema: dict,
        key_properties: Sequence[str] | None,
    ) -> None:
        self.delivery: Delivery = target.delivery
        super().__init__(target, stream_name, schema, key_properties)
        self._mapper: EventMapper | None = build_event_mapper(
            stream_name,
            list(self.key_properties),
            self.config,
            schema_properties=tuple(self.schema.get("properties") or ()),
        )
        if self._mapper is None:
            self.delivery.stats.stream_skipped(
                stream_name, "no entry in `streams` and no recognisable customer fields"
            )
            self._redacted_keys: frozenset[str] = frozenset()
        else:
            if self._mapper.unknown_columns:
                self.logger.warning(
                    "Stream %r: `streams` maps columns its schema does not have: %s",
                    stream_name,
                    ", ".join(self._mapper.unknown_columns),
                )
            # key columns holding customer information never reach the dead-letter file
            self._redacted_keys = self._mapper._redacted_keys

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        validator = super().get_validator()
        return PrivacySafeValidator(validator) if validator is not None else None

    @property
    def max_size(self) -> int:
        """Records per batch: `batch_size` (events per request), or less with batch_size_rows."""
        batch_size = int(self.config.get("batch_size", 1000))
        if self.batch_size_rows is not None:
            return max(1, min(batch_size, self.batch_size_rows))
        return batch_size

    def process_record(self, record: dict, context: dict) -> None:
        delivery = self.delivery
        number = delivery.ledger.issue()
        delivery.stats.record_read(self.stream_name)
        if self._mapper is None:
            delivery.ledger.settle((number,))
            return
        try:
            mapped = self._mapper.map(record)
        except MappingError as error:
            raise BadRecordError(f"Cannot map {error} (record #{number})") from None
        event = mapped.event
        delivery.stats.event_mapped(self.stream_name, event, mapped.dropped)
        key = _record_key(record, self.key_properties, self._redacted_keys)
        violations = validate_event(event, max_age_margin_seconds=EVENT_TIME_SAFETY_MARGIN_SECONDS)
        if violations:
            letter = DeadLetter.from_violations(
                stream=self.stream_name, key=key, event=event, violations=violations
            )
            if delivery.fail_on_invalid_event:
                first = violations[0]
                raise InvalidEventError(
                    f"Stream {self.stream_name!r}, record #{number}: event breaks Meta's rule "
                    f"{first.rule!r} on field {first.field!r}: {first.message} "
                    "(on_invalid_event is 'fail')"
                )
            delivery.dead_letter(letter)
            delivery.ledger.settle((number,))
            return
        if is_near_cutoff(event, time.time()):
            delivery.stats.near_cutoff_event(self.stream_name)
        context.setdefault("events", []).append(event)
        context.setdefault("numbers", []).append(number)
        context.setdefault("keys", []).append(key)

    def _after_process_record(self, context: dict) -> None:
        # The SDK logs the whole batch context here at DEBUG level, for every record: with
        # events and keys in it that is customer data, and quadratic in the batch size.
        return

    def process_batch(self, context: dict) -> None:
        events: list[dict] = context.get("events", [])
        if not events:
            return
        numbers: list[int] = context["numbers"]
        keys: list[dict] = context["keys"]
        size = self.delivery.processor.batch_size
        for start in range(0, len(events), size):
            self.delivery.submit(
                SentBatch(
                    stream=self.stream_name,
                    record_numbers=numbers[start : start + size],
                    keys=keys[start : start + size],
                    events=events[start : start + size],
                )
            )
