"""Fast per-record schema work for the sink: a compiled validator and precomputed date parsing.

The singer-sdk spends most of a target's CPU on two things that do not change from one record
to the next (see docs/performance.md): it walks the JSON schema with `jsonschema` for every
record, and it looks up every property's schema again for every record to find the date-like
ones. Here the schema is compiled once (fastjsonschema) and the date-like properties are listed
once per schema. The behaviour the SDK documents is kept: an invalid schema raises
`InvalidJSONSchema`, an invalid record `InvalidRecord`, `validate_records: false` turns
validation off, bad timestamps follow `datetime_error_treatment`.

Use: `class MySink(FastRecordParsingMixin, BatchSink)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.helpers._compat import (
    date_fromisoformat,
    datetime_fromisoformat,
    time_fromisoformat,
)
from singer_sdk.helpers._typing import (
    get_datelike_property_type,
    handle_invalid_timestamp_in_record,
)
from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks.core import BaseJSONSchemaValidator, JSONSchemaValidator

_PARSERS: dict[str, Callable[[str], Any]] = {
    "date-time": datetime_fromisoformat,
    "date": date_fromisoformat,
    "time": time_fromisoformat,
}


class CompiledRecordValidator(BaseJSONSchemaValidator):
    """Validates records with a schema compiled to Python code by fastjsonschema.

    Formats are not checked, like the SDK's default validator. Error messages name the field
    and the rule, never the value (jsonschema's messages quote the value, which may be PII).
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        # The SDK's own schema check, so a bad schema fails exactly as it would by default.
        reference = JSONSchemaValidator(schema)
        try:
            self._check: Callable[[Any], Any] = fastjsonschema.compile(schema, use_formats=False)
        except fastjsonschema.JsonSchemaDefinitionException:
            # A schema jsonschema accepts but fastjsonschema cannot compile: stay correct.
            self._check = reference.validate

    def validate(self, record: dict[str, Any]) -> None:
        try:
            self._check(record)
        except fastjsonschema.JsonSchemaValueException as error:
            raise InvalidRecord(error.message, record) from error


@dataclass(frozen=True)
class TimestampPlan:
    """What the SDK would find by inspecting the schema for every record, found once."""

    properties: frozenset[str]
    datelike: tuple[tuple[str, str], ...]  # (property, "date-time" | "date" | "time")

    @classmethod
    def for_schema(cls, schema: Mapping[str, Any]) -> TimestampPlan:
        properties = schema.get("properties", {})
        datelike = tuple(
            (name, kind)
            for name, property_schema in properties.items()
            if (kind := get_datelike_property_type(property_schema)) in _PARSERS
        )
        return cls(frozenset(properties), datelike)


def parse_timestamps(
    record: dict[str, Any],
    plan: TimestampPlan,
    treatment: DatetimeErrorTreatmentEnum,
    logger: logging.Logger,
) -> None:
    """Replace the date-like strings of `record` by date/datetime/time objects, in place."""
    for name, kind in plan.datelike:
        value = record.get(name)
        if value is None:
            continue
        try:
            record[name] = _PARSERS[kind](value)
        except ValueError as error:
            record[name] = handle_invalid_timestamp_in_record(
                record, [name], value, kind, error, treatment, logger
            )


class FastRecordParsingMixin:
    """Sink mixin: compiled validation and per-schema date parsing (see the module doc)."""

    _timestamp_plan: TimestampPlan | None = None
    _timestamp_plan_schema: dict | None = None

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        if self.validate_field_string_format:  # type: ignore[attr-defined]
            return super().get_validator()  # type: ignore[misc]
        if not self.validate_schema:  # type: ignore[attr-defined]
            return None
        return CompiledRecordValidator(self.schema)  # type: ignore[attr-defined]

    def _parse_timestamps_in_record(
        self,
        record: dict,
        schema: dict,
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        plan = self._timestamp_plan
        if plan is None or schema is not self._timestamp_plan_schema:
            plan = self._timestamp_plan = TimestampPlan.for_schema(schema)
            self._timestamp_plan_schema = schema
        if record.keys() <= plan.properties:
            parse_timestamps(record, plan, treatment, self.logger)  # type: ignore[attr-defined]
        else:  # fields without a schema: let the SDK warn about them as it always does
            super()._parse_timestamps_in_record(record, schema, treatment)  # type: ignore[misc]
