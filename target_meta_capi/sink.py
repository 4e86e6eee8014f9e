"""The sink: records → events → requests handed to the one shared sliding window.

`process_record` numbers, maps and validates each record (main thread). `process_batch` only
submits: it returns as soon as the request is in the window, so the SDK keeps reading while
Meta answers; `delivery.py` settles the answers.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from singer_sdk import metrics
from singer_sdk.exceptions import InvalidRecord, MissingKeyPropertiesError
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

from target_meta_capi.capi._words import shown_json
from target_meta_capi.capi.normalize import REASON_INVALID, DroppedValue, load_phone_rules
from target_meta_capi.capi.privacy import MASK
from target_meta_capi.capi.request import encoded_event
from target_meta_capi.capi.rules import RuleViolation, validate_event
from target_meta_capi.dead_letter import DeadLetter
from target_meta_capi.delivery import (
    BadRecordError,
    Delivery,
    InvalidEventError,
    SentBatch,
    TargetFailure,
)
from target_meta_capi.mapping import (
    EventMapper,
    MappingError,
    build_event_mapper,
    closest_stream_entry,
)
from target_meta_capi.mapping.streams_setting import each_column
from target_meta_capi.summary import is_near_cutoff
from target_meta_capi.validation import FastRecordParsingMixin

# Events must still be fresh enough when Meta finally receives them (retries, backpressure):
# an event closer than this to Meta's age cutoff is dead-lettered instead of sent.
EVENT_TIME_SAFETY_MARGIN_SECONDS = 3600


def describe_schema_violation(
    cause: BaseException | None, record_schema: Mapping[str, Any] | None = None
) -> str:
    """Which field broke which schema keyword — never the value, which may be customer data,
    nor a key of a nested object that `record_schema` does not name (an object of e-mail
    addresses), shown as `<redacted>`.

    Understands jsonschema's ValidationError and fastjsonschema's JsonSchemaValueException.
    """
    path = getattr(cause, "absolute_path", None)  # jsonschema
    keyword = getattr(cause, "validator", None)
    expected = getattr(cause, "validator_value", None)
    instance = getattr(cause, "instance", None)
    schema = getattr(cause, "schema", None)
    if path is None:  # fastjsonschema: path starts with "data"
        raw_path = getattr(cause, "path", None)
        path = raw_path[1:] if isinstance(raw_path, list | tuple) else None
        keyword = getattr(cause, "rule", None)
        expected = getattr(cause, "rule_definition", None)
        instance = getattr(cause, "value", None)
        schema = getattr(cause, "definition", None)
    if path is None:
        return "the record does not match its SCHEMA"
    path = _path_named_by_schema(list(path), record_schema)
    if keyword == "additionalProperties" and not path and isinstance(instance, dict):
        # the record's own keys are its columns, no customer data (a nested object's keys
        # may be): the column at fault, where the path would only name the record
        unexpected = _columns_outside(instance, schema)
        if unexpected:
            return (
                f"field {unexpected[0]!r} is not among the schema's properties, and its "
                "'additionalProperties' is false"
            )
    shown = "…" if isinstance(expected, dict | list) and len(str(expected)) > 80 else expected
    if keyword == "required" and isinstance(instance, dict) and isinstance(expected, list):
        # of the names the schema requires (never the record's own keys or values), the
        # first one missing: the field at fault, where the object would only name the list
        missing = [name for name in expected if name not in instance]
        if missing:
            field = ".".join(str(part) for part in [*path, missing[0]])
            return f"field {field!r} is missing (the schema's 'required': {shown_json(shown)})"
    if keyword == "dependentRequired" and isinstance(instance, dict) and isinstance(expected, dict):
        # as for required: the first name the schema requires with one the record has
        for present, names in expected.items():
            missing = [name for name in names if present in instance and name not in instance]
            if missing:
                field = ".".join(str(part) for part in [*path, missing[0]])
                return (
                    f"field {field!r} is missing, which the schema's 'dependentRequired' "
                    f"requires with {present!r}"
                )
    field = ".".join(str(part) for part in path) or "(the record)"
    if keyword is None:
        # both libraries' error for a value under the schema `false` (jsonschema 4.26 names
        # the field holding that value, fastjsonschema the value's own)
        return f"field {field!r} holds a value under the schema false, which allows none"
    # the schema's value as its JSON wrote it: [1.5, 2.5], not [Decimal('1.5'), Decimal('2.5')]
    return f"field {field!r} breaks the schema's {keyword!r} ({shown_json(shown)})"


def _path_named_by_schema(path: list[Any], record_schema: Mapping[str, Any] | None) -> list[Any]:
    """The path with each key below the record's own columns that the schema does not name
    (one of `additionalProperties` or `patternProperties`: the record's data) masked."""
    shown: list[Any] = []
    schema: Any = record_schema
    for part in path:
        if isinstance(part, str) and part.isdigit() and _holds_items(schema):
            part = int(part)  # fastjsonschema's path gives an index as text
        if isinstance(part, int):
            shown.append(part)
            schema = _items_schema(schema, part)
            continue
        named = _property_schema(schema, part)
        # the record's own keys are its columns, no customer data
        if named is not None or not shown:
            shown.append(part)
        elif shown[-1] != MASK:  # fastjsonschema's path splits a key at its dots
            shown.append(MASK)
        schema = named if named is not None else _other_property_schema(schema, part)
    return shown


def _property_schema(schema: Any, name: Any) -> Any:
    """The schema `properties` gives `name` in `schema` or one of its alternatives (an object,
    or true or false); None if none does."""
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and properties.get(name) is not None:
        return properties[name]
    for alternatives in (schema.get(word) for word in ("anyOf", "oneOf", "allOf")):
        for alternative in alternatives if isinstance(alternatives, list) else ():
            found = _property_schema(alternative, name)
            if found is not None:
                return found
    return None


def _other_property_schema(schema: Any, name: Any) -> Mapping[str, Any] | None:
    """The schema of a key `properties` does not name: its pattern's, or
    additionalProperties'."""
    if not isinstance(schema, Mapping):
        return None
    patterns = schema.get("patternProperties")
    for pattern, pattern_schema in patterns.items() if isinstance(patterns, Mapping) else ():
        if isinstance(name, str) and re.search(pattern, name):
            return pattern_schema if isinstance(pattern_schema, Mapping) else None
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, Mapping) else None


def _holds_items(schema: Any) -> bool:
    return isinstance(schema, Mapping) and ("items" in schema or "prefixItems" in schema)


def _items_schema(schema: Any, index: int) -> Mapping[str, Any] | None:
    if not isinstance(schema, Mapping):
        return None
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and index < len(prefix):
        item = prefix[index]
    else:
        item = schema.get("items")
        if isinstance(item, list):  # draft 4-7's tuple form
            item = item[index] if index < len(item) else schema.get("additionalItems")
    return item if isinstance(item, Mapping) else None


def _columns_outside(record: Mapping[str, Any], schema: Any) -> list[str]:
    """The record's columns that neither its schema's properties nor its patternProperties
    name."""
    if not isinstance(schema, Mapping):
        return []
    properties = schema.get("properties") or {}
    patterns = schema.get("patternProperties") or {}
    return [
        column
        for column in record
        if column not in properties and not any(re.search(p, column) for p in patterns)
    ]


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
            message = describe_schema_violation(error.__cause__, self.schema)
            raise InvalidRecord(message, record) from None


@dataclass(slots=True)
class ConvertedRecord:
    """A record as an event, with what mapping left out and what breaks Meta's rules."""

    event: dict[str, Any]
    dropped: list[DroppedValue]
    key: dict[str, Any]
    violations: list[RuleViolation]


#: Meta's rules on a user_data value whose breach leaves that value out of the event, counted
#: as dropped, as a value that cannot be normalized is: a malformed click cookie (a tag's
#: "undefined", a cut value) fails a whole request at Meta, and is not to be mended, but the
#: event's other customer information may still match
_LEFT_OUT_WHEN_BROKEN = {"fbc_invalid": "fbc", "fbp_invalid": "fbp"}


def convert_record(mapper: EventMapper, record: Mapping[str, Any]) -> ConvertedRecord:
    """Map a validated, date-parsed record and check its event against Meta's rules.

    Raises MappingError when the record cannot become an event. The one conversion both the
    sink and the record workers (record_workers.py) run.
    """
    mapped = mapper.map(record)
    event, dropped = mapped.event, mapped.dropped
    violations = _violations(mapper, event)
    keys = {_LEFT_OUT_WHEN_BROKEN[v.rule] for v in violations if v.rule in _LEFT_OUT_WHEN_BROKEN}
    if keys:
        user_data = {k: v for k, v in event["user_data"].items() if k not in keys}
        event = {**event, "user_data": user_data}
        dropped = [*dropped, *(DroppedValue(key, REASON_INVALID) for key in sorted(keys))]
        violations = _violations(mapper, event)
    key = mapper.record_key(record)
    return ConvertedRecord(event, dropped, key, violations)


def _violations(mapper: EventMapper, event: dict[str, Any]) -> list[RuleViolation]:
    return validate_event(
        event,
        max_age_margin_seconds=EVENT_TIME_SAFETY_MARGIN_SECONDS,
        trusted_hashed_keys=mapper.hashed_user_data_keys,
    )


class RecordsProcessedCounter(metrics.Counter):
    """The `record_count` metric as this target counts it: a record once its sink has
    processed it (mapped it, or dead-lettered it), whichever path it took.

    The SDK increments a sink's record counter at moments of its own, which differ between
    versions (0.54 as its record path hands a record over, 0.55 as a batch is drained) and miss
    the records the target processes outside that path, so its increments are ignored. Its
    logging of the count at the end of a stream (`exit`) is kept.
    """

    def increment(self, value: int = 1) -> None:
        """The SDK's increment: ignored (see the class)."""

    def count(self, value: int = 1) -> None:
        super().increment(value)


class EventSink(FastRecordParsingMixin, BatchSink):
    """Maps a stream's records to CAPI events and sends them in requests of `batch_size`."""

    def __init__(
        self,
        target: Any,
        stream_name: str,
        schema: dict,
        key_properties: list[str] | tuple[str, ...] | None,
    ) -> None:
        self.delivery: Delivery = target.delivery
        self._reader = target.message_reader  # where in the input a record came from
        self._include_sdc_metadata: bool | None = None
        super().__init__(target, stream_name, schema, key_properties)
        # the SDK reads its batch size from the config for every record; the processor's is
        # the run's, and the one process_batch splits requests by
        self._batch_size = self.delivery.processor.batch_size
        # the SDK makes a sink for a stream a stream map removes too, though none of its
        # records reach it: nothing to map, and nothing to warn about
        removed = target.removed_by_stream_maps(stream_name)
        self._mapper: EventMapper | None = (
            None
            if removed
            else build_event_mapper(
                stream_name,
                list(self.key_properties),
                self.config,
                schema_properties=tuple(self.schema.get("properties") or ()),
            )
        )
        self._pixel_id = None if self._mapper is None else self._mapper.mapping.pixel_id
        properties = self.schema.get("properties") or {}
        if self._mapper is not None and properties:
            # no record could become an event: stop, rather than dead-letter the whole stream
            # and move its state past every row
            unsourced = self._mapper.unsourced_parameters(properties)
            if unsourced:
                mapped = each_column(self._mapper.mapping.fields.get((unsourced[0],), ()))
                raise UnsendableStreamError(
                    _unsourced(
                        stream_name, self._reader.line_number, unsourced[0], mapped, properties
                    )
                )
        if removed:
            self.logger.info("Stream %r is removed by stream_maps: nothing is sent", stream_name)
        elif self._mapper is None:
            meant = closest_stream_entry(self.config, stream_name)
            self.delivery.stats.stream_skipped(
                stream_name,
                "no entry in `streams`"
                + (f", whose entry {meant!r} may be meant for it," if meant else "")
                + " and not recognisable customer fields, an event name and an event_time column",
            )
        elif self._mapper.unknown_columns:
            # A run summary's warning too: a column renamed at the source silently takes its
            # fields (a match key, say) out of every event, and this line scrolls away.
            columns = tuple(self.schema.get("properties") or ())
            self.delivery.stats.run_warning(
                f"Stream {stream_name!r}: `streams` maps columns its schema does not have: "
                + ", ".join(
                    f"{column} ({', '.join(paths)}{_column_meant(column, columns)})"
                    for column, paths in self._mapper.unknown_columns.items()
                )
            )
        if self._mapper is not None and self._mapper.unhashed_customer_fields:
            unhashed_fields = self._mapper.unhashed_customer_fields
            target.mask_in_outputs(stream_name, [path for path, _ in unhashed_fields])
            fields = ", ".join(
                f"{'.'.join(path)} (column {column!r})" for path, column in unhashed_fields
            )
            self._warn_once(
                f"Stream {stream_name!r}: `fields` sends customer information to Meta unhashed, "
                f"outside user_data: {fields}. Meta forbids personal data there: map such a "
                "column under user_data (customer information is hashed) or leave it out. Dead "
                "letters and dry runs mask these fields."
            )
        if self._mapper is not None:
            self._warn_about_identifying_columns(target, self._mapper)
            if self._mapper.may_give(("user_data", "ph"), self.schema.get("properties") or ()):
                load_phone_rules()  # before the record workers are forked
        if self._mapper is not None and self._mapper.mapping.unmapped_columns_to_custom_data:
            unhashed = self._mapper.custom_data_columns(self.schema.get("properties") or ())
            if unhashed:
                self._warn_once(
                    f"Stream {stream_name!r}: unmapped_columns_to_custom_data sends these "
                    f"columns to Meta as custom_data, unhashed: {', '.join(unhashed)}. Meta "
                    "forbids personal data there: map such a column in `fields` (customer "
                    "information is hashed) or leave it out of the stream."
                )

    def _warn_about_identifying_columns(self, target: Any, mapper: EventMapper) -> None:
        """Columns whose SCHEMA type makes events match or deduplicate wrongly at Meta: a ZIP
        code kept as a number, event_ids that move with the row or collide across streams;
        and a country to read phone numbers in that the SCHEMA does not give."""
        stream_name = self.stream_name
        properties = self.schema.get("properties") or {}

        def number_columns(path: tuple[str, ...]) -> list[str]:
            return [
                column
                for column in mapper.columns_feeding(path, properties)
                if _typed_as_number(properties[column])
            ]

        numeric_zips = number_columns(("user_data", "zp"))
        if numeric_zips:
            columns = ", ".join(f"column {column!r}" for column in numeric_zips)
            self._warn_once(
                f"Stream {stream_name!r}: {columns}, sent as user_data.zp, typed as a number in "
                "the SCHEMA: a postal code kept as a number has lost its leading zeros (02134 "
                "became 2134), and Meta matches it as written. Keep such codes as text at the "
                "source (or cast them in the tap's query)."
            )
        if not self.key_properties and self.derives_event_ids:
            # Meta deduplicates on event_id alone: an id that moves with the row's content
            # makes a resent row (a full-table stream's every run, a rerun) count again.
            self._warn_once(
                f"Stream {stream_name!r} has no key properties and no event_id column: each "
                "event_id is derived from the whole row, so a row changed in any column, or one "
                "whose table gained, lost or retyped a column, gets a new event_id, and Meta "
                "counts it again. Map `event_id` to a column that identifies the row, or give "
                "the stream key properties."
            )
        if (
            mapper.phone_country_from_country
            and mapper.may_give(("user_data", "ph"), properties)
            and not mapper.may_give(("user_data", "country"), properties)
        ):
            read_in = (
                f"in {mapper.phone_region}"
                if mapper.phone_region
                else "as written (but those dialled inside their country are left out)"
            )
            # in the summary too, as the settings that do nothing are
            self.delivery.stats.run_warning(
                f"Stream {stream_name!r}: phone_country_from_country reads each phone number "
                "in its event's user_data.country, which nothing in this stream gives: its "
                f"numbers written without + or 00 are read {read_in}. Map user_data.country "
                "to the column holding the customer's country."
            )
        event_name = mapper.fixed_event_name(properties)
        numbered_ids = number_columns(("event_id",))
        if event_name and numbered_ids:
            target.note_numbered_event_ids(
                stream_name,
                str(self._pixel_id or self.config.get("pixel_id")),
                event_name,
                numbered_ids[0],
            )

    def _warn_once(self, message: str) -> None:
        """A warning about the stream's SCHEMA, logged again only when it says something else:
        taps send a changed SCHEMA after an `ALTER TABLE`, some for each file they read."""
        self.delivery.stats.warn_once(message, self.logger)

    @property
    def mapper(self) -> EventMapper | None:
        """The stream's mapper; None when the stream is skipped."""
        return self._mapper

    @property
    def derives_event_ids(self) -> bool:
        """Whether its events' ids are derived from the key properties (or the whole row):
        no column of its SCHEMA and no literal gives them."""
        mapper = self._mapper
        return (
            mapper is not None
            and not mapper.columns_feeding(("event_id",), self.schema.get("properties") or {})
            and ("event_id",) not in mapper.mapping.constants
        )

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        validator = super().get_validator()
        return PrivacySafeValidator(validator) if validator is not None else None

    @property
    def max_size(self) -> int:
        """Records per batch: `batch_size` (events per request), or less with batch_size_rows."""
        if self.batch_size_rows is not None:
            return max(1, min(self._batch_size, self.batch_size_rows))
        return self._batch_size

    @property
    def include_sdc_metadata_properties(self) -> bool:
        if self._include_sdc_metadata is None:
            self._include_sdc_metadata = bool(super().include_sdc_metadata_properties)
        return self._include_sdc_metadata

    def _singer_validate_message(self, record: dict) -> None:
        # the SDK's check; its message listed every column of the record, not which is missing
        for key_property in self._key_properties:
            if key_property not in record:
                raise MissingKeyPropertiesError(
                    f"Record has no {key_property!r}, a key property of its stream "
                    f"(key_properties {list(self._key_properties)}): the tap must send every "
                    "key property in every record"
                )

    def get_sink_record_counter(self) -> RecordsProcessedCounter:
        return RecordsProcessedCounter(
            metrics.Metric.RECORD_COUNT, {metrics.Tag.STREAM: self.stream_name}
        )

    @property
    def record_counter_metric(self) -> RecordsProcessedCounter:
        return cast(RecordsProcessedCounter, super().record_counter_metric)

    def process_record(self, record: dict, context: dict) -> None:
        self._map_record(record, context)
        self.record_counter_metric.count()

    def _map_record(self, record: dict, context: dict) -> None:
        delivery = self.delivery
        number = delivery.ledger.issue()
        delivery.stats.record_read(self.stream_name)
        if self._mapper is None:
            delivery.ledger.settle((number,))
            return
        mapper = self._mapper
        try:
            converted = convert_record(mapper, record)
        except MappingError as error:
            # a row's value, like an event breaking Meta's rules: the rest of the run goes on
            letter = DeadLetter.from_unmappable_record(
                stream=self.stream_name,
                key=mapper.record_key(record),
                event_name=mapper.mapping.event_name,
                field=error.field,
                # a row without key properties is found by its place in the input
                message=f"{error.message} (input line {self._reader.line_number})",
            )
            failure: TargetFailure = BadRecordError(
                f"Cannot map {error} (record #{number}; on_invalid_event is 'fail')"
            )
            self._set_aside(number, letter, failure)
            return
        event = converted.event
        delivery.stats.event_mapped(self.stream_name, event, converted.dropped)
        violations = converted.violations
        if violations:
            letter = DeadLetter.from_violations(
                stream=self.stream_name,
                key=converted.key,
                event=event,
                violations=violations,
                dropped=converted.dropped,
            )
            first = violations[0]
            failure = InvalidEventError(
                f"Stream {self.stream_name!r}, record #{number}: event breaks Meta's rule "
                f"{first.rule!r} on field {first.field!r}: {first.message} "
                "(on_invalid_event is 'fail')"
            )
            self._set_aside(number, letter, failure)
            return
        if is_near_cutoff(event, time.time()):
            delivery.stats.near_cutoff_event(self.stream_name)
        # held encoded, as a worker's events are: a stream's batch may wait long to fill up
        # (the mapping makes events of JSON's types only: no walk through them to check)
        context.setdefault("events", []).append(encoded_event(event, check_types=False))
        context.setdefault("numbers", []).append(number)
        context.setdefault("keys", []).append(converted.key)

    def _set_aside(self, number: int, letter: DeadLetter, failure: TargetFailure) -> None:
        """A record Meta would never take: dead-lettered and settled, or, with
        on_invalid_event 'fail', the run stops with `failure` instead."""
        if self.delivery.fail_on_invalid_event:
            raise failure from None
        self.delivery.dead_letter(letter)
        self.delivery.ledger.settle((number,))

    def add_converted(
        self, events: Sequence[msgspec.Raw], keys: Sequence[dict], numbers: Sequence[int]
    ) -> None:
        """Batch records a record worker already turned into events that pass Meta's rules.

        What the SDK's record steps and `process_record` do after mapping, for many records at
        once, with the numbers they got when they were read; the caller keeps the batch within
        `max_size` and drains it when full.
        """
        count = len(events)
        context = self._get_context({})
        self.tally_record_read(count)
        context.setdefault("events", []).extend(events)
        context.setdefault("numbers", []).extend(numbers)
        context.setdefault("keys", []).extend(keys)
        self.record_counter_metric.count(count)

    def _after_process_record(self, context: dict) -> None:
        # The SDK logs the whole batch context here at DEBUG level, for every record: with
        # events and keys in it that is customer data, and quadratic in the batch size.
        return

    def process_batch(self, context: dict) -> None:
        events: list[msgspec.Raw] = context.get("events", [])
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
                    pixel_id=self._pixel_id,
                )
            )


class UnsendableStreamError(TargetFailure):
    """A stream whose SCHEMA gives no column for a parameter every event needs."""


#: names of columns that likely hold a row's time, to point at when event_time has none
_TIME_COLUMN_NAME = re.compile(r"(_at|_on|time|_ts|date|timestamp)$", re.IGNORECASE)


def _unsourced(
    stream: str,
    line_number: int,
    parameter: str,
    mapped: Sequence[str],
    properties: Mapping[str, Any],
) -> str:
    """What to set for a stream no record of which can have `parameter`, which `fields` maps
    to the `mapped` columns (none of them the SCHEMA's). The SCHEMA's line tells a changed one
    mid-run (a column dropped) from the first."""
    problem = (
        f"Stream {stream!r}: no column of its SCHEMA (input line {line_number}) gives "
        f"{parameter}, which every event needs, so each record under it would be "
        "dead-lettered; stopped before any was. "
    )
    if mapped:
        # a typo, or a column renamed at the source: mapping one is done already
        missing = "; ".join(
            f"`fields` maps it to {column!r}, which the SCHEMA does not have"
            f"{_column_meant(column, tuple(properties))}"
            for column in mapped
        )
        return problem + missing + ("" if missing.endswith("?") else ".")
    if parameter == "event_name":
        return problem + (
            'Set the stream\'s `event_name` in `streams` (e.g. "Purchase"), or '
            "default_event_name, or map a column to event_name in its `fields`."
        )
    if parameter == "action_source":
        return problem + (
            'Set the stream\'s `action_source` in `streams` (e.g. "website"), or '
            "default_action_source, or map a column to action_source in its `fields`."
        )
    times = [
        name
        for name, schema in properties.items()
        if schema.get("format") in ("date-time", "date") or _TIME_COLUMN_NAME.search(name)
    ]
    example = times[0] if times else "created_at"
    return problem + (
        f'Map a column to it in the stream\'s `fields`, e.g. {{"event_time": "{example}"}}'
        + (f" (columns that look like times: {', '.join(map(repr, times))})." if times else ".")
    )


def _typed_as_number(property_schema: dict[str, Any]) -> bool:
    """Whether a SCHEMA property holds only numbers (an integer or number type, perhaps
    nullable): not when it allows text too. Every property's schema is an object by now:
    the target refuses a SCHEMA with any other (`true` it takes as `{}`)."""
    declared = property_schema.get("type")
    kinds = {declared} if isinstance(declared, str) else set()
    if isinstance(declared, list):
        kinds = {kind for kind in declared if isinstance(kind, str)}
    return bool(kinds & {"integer", "number"}) and "string" not in kinds


def _column_meant(column: str, columns: Sequence[str]) -> str:
    """A hint at the SCHEMA's column a mapped one it lacks probably is (`Email` for `email`,
    `email` for `emial`), or nothing."""
    by_folded = {name.casefold(): name for name in columns}
    close = difflib.get_close_matches(column.casefold(), by_folded, n=1, cutoff=0.8)
    return f"; did you mean {by_folded[close[0]]!r}?" if close else ""
