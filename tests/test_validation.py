"""The compiled validator and the precomputed date parsing keep the SDK's behaviour."""

from __future__ import annotations

import datetime
import io
import json
import logging
from decimal import Decimal
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import JSONSchemaValidator
from singer_sdk.testing import TargetTestRunner

from target_meta_capi.sink import PrivacySafeValidator
from target_meta_capi.validation import (
    CompiledRecordValidator,
    FastRecordParsingMixin,
    TimestampPlan,
    UnparseableDateError,
    is_multiple_of,
    parse_timestamps,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["integer"]},
        "email": {"type": ["string", "null"]},
        "total": {"type": ["number", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "birthday": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "opens_at": {"type": ["string", "null"], "format": "time"},
    },
}
LOGGER = logging.getLogger("test_validation")


def test_valid_record_with_decimal_number_passes() -> None:
    CompiledRecordValidator(SCHEMA).validate({"order_id": 1, "total": Decimal("12.50")})


def test_invalid_record_raises_invalid_record_naming_the_field_not_the_value() -> None:
    validator = CompiledRecordValidator(SCHEMA)
    with pytest.raises(InvalidRecord) as raised:
        validator.validate({"order_id": 1, "email": ["secret@example.com"]})
    assert "email" in str(raised.value)
    assert "secret@example.com" not in str(raised.value)


def test_format_is_not_checked_like_the_sdk_default() -> None:
    CompiledRecordValidator(SCHEMA).validate({"order_id": 1, "created_at": "not a date"})


def test_invalid_schema_raises_invalid_json_schema() -> None:
    with pytest.raises(InvalidJSONSchema):
        CompiledRecordValidator({"type": "object", "properties": {"x": {"type": "no-such"}}})


def test_plan_lists_only_datelike_properties_including_any_of() -> None:
    plan = TimestampPlan.for_schema(SCHEMA)
    assert dict(plan.datelike) == {
        "created_at": "date-time",
        "birthday": "date",
        "opens_at": "time",
    }


def test_parse_timestamps_converts_present_values_and_leaves_none_and_absent() -> None:
    record = {"created_at": "2026-11-28T10:00:00Z", "birthday": "1997-02-16", "opens_at": None}
    parse_timestamps(
        record, TimestampPlan.for_schema(SCHEMA), DatetimeErrorTreatmentEnum.ERROR, LOGGER
    )
    assert record == {
        "created_at": datetime.datetime(2026, 11, 28, 10, tzinfo=datetime.timezone.utc),
        "birthday": datetime.date(1997, 2, 16),
        "opens_at": None,
    }


def test_unparseable_timestamp_follows_the_null_treatment() -> None:
    record = {"created_at": "yesterday-ish"}
    parse_timestamps(
        record, TimestampPlan.for_schema(SCHEMA), DatetimeErrorTreatmentEnum.NULL, LOGGER
    )
    assert record == {"created_at": None}


def test_an_unparseable_timestamp_without_a_treatment_is_an_error_naming_its_field() -> None:
    # how a record worker parses: the main process, which has the treatment, then takes over
    with pytest.raises(UnparseableDateError) as refused:
        parse_timestamps(
            {"created_at": "yesterday-ish"}, TimestampPlan.for_schema(SCHEMA), None, None
        )
    assert str(refused.value) == "field 'created_at' is not an ISO 8601 date, time or date-time"


def test_a_date_time_with_rfc_3339s_lowercase_z_is_a_utc_datetime() -> None:
    # JSON Schema's date-time is RFC 3339's, which allows "z"; fromisoformat takes only "Z"
    record = {"created_at": "2026-11-28t10:00:00.5z"}
    parse_timestamps(record, TimestampPlan.for_schema(SCHEMA), None, None)
    assert record == {
        "created_at": datetime.datetime(2026, 11, 28, 10, 0, 0, 500000, datetime.timezone.utc)
    }


def test_a_date_time_at_a_leap_second_is_the_next_days_first_second() -> None:
    # RFC 3339 allows 23:59:60; fromisoformat does not, and Unix time counts it as 00:00:00
    record = {"created_at": "2016-12-31T23:59:60.5Z"}
    parse_timestamps(record, TimestampPlan.for_schema(SCHEMA), None, None)
    assert record == {
        "created_at": datetime.datetime(2017, 1, 1, 0, 0, 0, 500000, datetime.timezone.utc)
    }


def test_sixty_seconds_outside_a_date_times_seconds_is_still_no_date() -> None:
    with pytest.raises(UnparseableDateError):
        parse_timestamps(
            {"created_at": "2016-12-31T23:60:00Z"}, TimestampPlan.for_schema(SCHEMA), None, None
        )


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_text_in_a_date_column_is_no_date(blank: str) -> None:
    record = {"created_at": blank, "birthday": blank, "opens_at": blank}
    parse_timestamps(
        record, TimestampPlan.for_schema(SCHEMA), DatetimeErrorTreatmentEnum.ERROR, LOGGER
    )
    assert record == {"created_at": None, "birthday": None, "opens_at": None}


class _CollectingSink(FastRecordParsingMixin, BatchSink):
    batches: list[list[dict]] = []

    def process_batch(self, context: dict) -> None:
        _CollectingSink.batches.append(list(context["records"]))


class _Target(Target):
    name = "target-validation-test"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = _CollectingSink


def _run(
    records: list[dict],
    config: dict | None = None,
    sink_class: type[_CollectingSink] = _CollectingSink,
) -> list[dict]:
    _CollectingSink.batches = []
    lines = [
        {"type": "SCHEMA", "stream": "orders", "schema": SCHEMA, "key_properties": ["order_id"]}
    ]
    lines += [{"type": "RECORD", "stream": "orders", "record": record} for record in records]
    runner = TargetTestRunner(
        type("_TargetOfTheSink", (_Target,), {"default_sink_class": sink_class}),
        config=config or {},
        parse_env_config=False,
        input_io=io.StringIO("".join(json.dumps(line) + "\n" for line in lines)),
    )
    runner.sync_all()
    return [record for batch in _CollectingSink.batches for record in batch]


def test_sink_with_mixin_receives_parsed_datetimes() -> None:
    [record] = _run([{"order_id": 1, "created_at": "2026-11-28T10:00:00+00:00"}])
    assert record["created_at"] == datetime.datetime(2026, 11, 28, 10, tzinfo=datetime.timezone.utc)


def test_sink_with_mixin_fails_the_run_on_an_invalid_record_without_quoting_it() -> None:
    with pytest.raises(InvalidRecord) as raised:
        _run([{"order_id": 1, "email": 4155550123}])
    assert "4155550123" not in str(raised.value)


def test_validate_records_false_lets_an_invalid_record_through() -> None:
    [record] = _run([{"order_id": "one"}], config={"validate_records": False})
    assert record["order_id"] == "one"


def test_a_blank_date_is_no_date_also_in_a_record_with_a_field_without_schema() -> None:
    [record] = _run([{"order_id": 1, "coupon": "X", "created_at": ""}])
    assert record["created_at"] is None


def test_field_without_schema_is_warned_about_as_by_the_sdk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        [record] = _run([{"order_id": 1, "coupon": "X", "created_at": "2026-11-28"}])
    assert "No schema for record field 'coupon'" in caplog.text
    assert record["created_at"] == datetime.datetime(2026, 11, 28)


class _FormatCheckingSink(_CollectingSink):
    validate_field_string_format = True


def test_a_sink_checking_string_formats_gets_the_sdks_validator_which_checks_them() -> None:
    with pytest.raises(InvalidRecord, match="is not valid under any of the given schemas"):
        _run([{"order_id": 1, "birthday": "2026-02-30"}], sink_class=_FormatCheckingSink)


class _LenientSink(_CollectingSink):
    fail_on_record_validation_exception = False


def test_a_sink_not_failing_on_invalid_records_warns_and_keeps_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        [record] = _run([{"order_id": "one"}], sink_class=_LenientSink)
    assert record["order_id"] == "one"
    assert "Record validation failed: " in caplog.text


# pipelinewise-tap-postgres 2.1.0's schema of a numeric(12,2) column, as it writes it: Draft 4
# (`exclusiveMaximum: true` beside `maximum`) without saying so, and a `multipleOf`
NUMERIC_12_2 = {
    "type": ["null", "number"],
    "exclusiveMaximum": True,
    "maximum": 10000000000,
    "multipleOf": Decimal("0.01"),
    "exclusiveMinimum": True,
    "minimum": -10000000000,
}
DRAFT_4_SCHEMA = {
    "type": "object",
    "properties": {"order_no": {"type": ["null", "integer"]}, "total": NUMERIC_12_2},
}


def test_a_draft_4_schema_that_does_not_say_so_is_read_as_draft_4() -> None:
    validator = CompiledRecordValidator(DRAFT_4_SCHEMA)
    validator.validate({"order_no": 1, "total": Decimal("9999999999.99")})
    with pytest.raises(InvalidRecord, match="total"):
        validator.validate({"order_no": 1, "total": 10000000000})  # the maximum is exclusive


def test_a_schema_naming_draft_4_is_read_as_draft_4() -> None:
    validator = CompiledRecordValidator(
        {"$schema": "http://json-schema.org/draft-04/schema#", **DRAFT_4_SCHEMA}
    )
    validator.validate({"order_no": 1, "total": Decimal("49.90")})
    with pytest.raises(InvalidRecord, match="total"):
        validator.validate({"order_no": 1, "total": -10000000000})


def test_a_schema_naming_draft_4_is_checked_against_draft_4() -> None:
    # Draft 2020-12 takes a number for exclusiveMaximum; Draft 4 only true or false
    with pytest.raises(InvalidJSONSchema):
        CompiledRecordValidator(
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "properties": {"total": {"type": "number", "exclusiveMaximum": 10}},
            }
        )


def test_a_schema_whose_dollar_schema_is_not_text_is_invalid() -> None:
    with pytest.raises(InvalidJSONSchema):
        CompiledRecordValidator({"$schema": ["draft-04"], "type": "object", "properties": {}})


def test_a_schema_without_properties_accepts_any_object() -> None:
    CompiledRecordValidator({"type": "object"}).validate({"total": Decimal("49.90")})


def test_a_valid_schema_naming_no_draft_is_checked_against_one_metaschema_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # milliseconds each, in the main process and in each record worker, for every SCHEMA
    metaschemas_walked: list[str] = []
    validator_class = jsonschema.validators.validator_for(
        jsonschema.Draft202012Validator.META_SCHEMA
    )
    iter_errors = validator_class.iter_errors

    def noted_iter_errors(self: Any, instance: Any) -> Any:
        if self.schema.get("$id", "").startswith("https://json-schema.org/draft/"):
            metaschemas_walked.append(self.schema["$id"])
        return iter_errors(self, instance)

    monkeypatch.setattr(validator_class, "iter_errors", noted_iter_errors)
    CompiledRecordValidator(SCHEMA)
    assert metaschemas_walked == ["https://json-schema.org/draft/2020-12/schema"]


def test_a_schema_valid_in_no_draft_is_still_invalid() -> None:
    with pytest.raises(InvalidJSONSchema):
        CompiledRecordValidator(
            {"type": "object", "properties": {"x": {"type": "number", "maximum": "ten"}}}
        )


def _column(schema: dict, **top: object) -> dict:
    return {"type": "object", "properties": {"x": schema}, **top}


# Schemas read in Draft 2020-12 (the SDK's) using what fastjsonschema, a Draft 7 validator,
# reads otherwise, each with a record the SDK's validator refuses or takes
DRAFT_2020_12_CASES = {
    "dependentRequired refused": (
        # as singer-sdk's th.Property("x", ..., requires_properties=["y"]) writes it
        _column({"type": "string"}, dependentRequired={"x": ["y"]}),
        {"x": "a"},
        False,
    ),
    "dependentSchemas refused": (
        _column({"type": "string"}, dependentSchemas={"x": {"required": ["y"]}}),
        {"x": "a"},
        False,
    ),
    "unevaluatedProperties refused": (
        _column({"type": "object", "properties": {"a": {}}, "unevaluatedProperties": False}),
        {"x": {"b": 1}},
        False,
    ),
    "minContains refused": (
        _column({"type": "array", "contains": {"const": 1}, "minContains": 2}),
        {"x": [1, 2]},
        False,
    ),
    "a $ref's sibling refused": (
        _column({"$ref": "#/$defs/n", "maximum": 5}, **{"$defs": {"n": {"type": "integer"}}}),
        {"x": 7},
        False,
    ),
    "prefixItems then items false taken": (
        _column({"type": "array", "prefixItems": [{"type": "string"}], "items": False}),
        {"x": ["a"]},
        True,
    ),
    "dependencies (dropped in 2019-09) taken": (
        _column({"type": "string"}, dependencies={"x": ["y"]}),
        {"x": "a"},
        True,
    ),
}


@pytest.mark.parametrize(
    ("schema", "record", "valid"), DRAFT_2020_12_CASES.values(), ids=DRAFT_2020_12_CASES.keys()
)
def test_draft_2020_12_keywords_are_checked_as_the_sdk_checks_them(
    schema: dict, record: dict, valid: bool
) -> None:
    assert _is_valid(JSONSchemaValidator(schema), record) is valid  # the SDK's own
    assert _is_valid(CompiledRecordValidator(schema), record) is valid


def _is_valid(validator: JSONSchemaValidator | CompiledRecordValidator, record: dict) -> bool:
    try:
        validator.validate(record)
    except InvalidRecord:
        return False
    return True


@pytest.mark.parametrize("total", [Decimal("49.90"), Decimal("1234567.89"), 5, 49.9])
def test_multiple_of_accepts_the_multiples_a_decimal_column_holds(total: object) -> None:
    CompiledRecordValidator(DRAFT_4_SCHEMA).validate({"order_no": 1, "total": total})


@pytest.mark.parametrize("total", [Decimal("49.901"), 0.001])
def test_multiple_of_refuses_a_value_that_is_none_naming_the_field(total: object) -> None:
    with pytest.raises(InvalidRecord, match=r"field 'total' breaks the schema's 'multipleOf'"):
        PrivacySafeValidator(CompiledRecordValidator(DRAFT_4_SCHEMA)).validate(
            {"order_no": 1, "total": total}
        )


def test_a_value_that_is_no_number_is_no_multiple() -> None:
    assert not is_multiple_of(float("nan"), Decimal("0.01"))
    assert not is_multiple_of(Decimal("Infinity"), Decimal("0.01"))


def test_a_column_allowing_anything_beside_a_decimal_column_allows_anything() -> None:
    schema = {
        "type": "object",
        "properties": {"total": {"type": "number", "multipleOf": 0.01}, "note": True},
    }
    CompiledRecordValidator(schema).validate({"total": Decimal("1.10"), "note": ["any"]})


def test_multiple_of_given_as_a_float_is_checked_exactly() -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number", "multipleOf": 0.01}}}
    validator = PrivacySafeValidator(CompiledRecordValidator(schema))
    validator.validate({"total": Decimal("19.01")})  # 19.01 / 0.01 in binary: 1900.9999999999998
    with pytest.raises(InvalidRecord, match=r"field 'total' breaks the schema's 'multipleOf'"):
        validator.validate({"total": Decimal("19.015")})


def test_multiple_of_inside_an_array_is_checked_too() -> None:
    schema = {
        "type": "object",
        "properties": {"prices": {"type": "array", "items": NUMERIC_12_2}},
    }
    validator = PrivacySafeValidator(CompiledRecordValidator(schema))
    validator.validate({"prices": [Decimal("1.10"), 2]})
    with pytest.raises(InvalidRecord, match=r"field 'prices.0' breaks the schema's 'multipleOf'"):
        validator.validate({"prices": [Decimal("1.105")]})


def test_a_null_inside_an_array_of_strings_is_named_by_its_index() -> None:
    # tap-postgres types text[] as items of strings and writes ARRAY['a', NULL] as ["a", null]
    schema = {
        "type": "object",
        "properties": {"tags": {"type": ["array", "null"], "items": {"type": ["string"]}}},
    }
    validator = PrivacySafeValidator(CompiledRecordValidator(schema))
    with pytest.raises(InvalidRecord, match=r"field 'tags\.1' breaks the schema's 'type'"):
        validator.validate({"tags": ["a", None, ""]})


@pytest.mark.parametrize("order_id", [Decimal("1.0"), Decimal("1E+2"), 7.0])
def test_an_integral_number_written_with_a_fraction_or_exponent_is_an_integer(
    order_id: object,
) -> None:
    CompiledRecordValidator(SCHEMA).validate({"order_id": order_id})


def test_an_integral_number_in_a_nested_integer_is_an_integer_too() -> None:
    schema = {
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
    }
    CompiledRecordValidator(schema).validate({"ids": [1, Decimal("2.0")]})


def test_a_number_with_a_fraction_is_not_an_integer() -> None:
    with pytest.raises(InvalidRecord, match=r"field 'order_id' breaks the schema's 'type'"):
        PrivacySafeValidator(CompiledRecordValidator(SCHEMA)).validate({"order_id": Decimal("1.5")})


def test_a_record_breaking_its_schema_elsewhere_is_named_for_that_not_for_its_integers() -> None:
    with pytest.raises(InvalidRecord, match=r"field 'email' breaks the schema's 'type'"):
        PrivacySafeValidator(CompiledRecordValidator(SCHEMA)).validate(
            {"order_id": Decimal("1.0"), "email": 5}
        )


def test_a_record_holding_nan_and_breaking_its_schema_elsewhere_is_named_for_that() -> None:
    # a stream map's expression (float('nan')) puts a NaN in a record: it is no integer
    with pytest.raises(InvalidRecord, match=r"field 'email' breaks the schema's 'type'"):
        PrivacySafeValidator(CompiledRecordValidator(SCHEMA)).validate(
            {"order_id": 1, "total": float("nan"), "email": 5}
        )


def test_multiple_of_in_an_any_of_for_a_nullable_decimal_is_checked_exactly() -> None:
    # how singer-python taps write a nullable decimal column
    nullable = {"anyOf": [{"type": "number", "multipleOf": Decimal("0.01")}, {"type": "null"}]}
    validator = PrivacySafeValidator(
        CompiledRecordValidator({"type": "object", "properties": {"total": nullable}})
    )
    validator.validate({"total": Decimal("49.90")})
    validator.validate({"total": None})
    with pytest.raises(InvalidRecord, match=r"field 'total' breaks the schema's 'anyOf'"):
        validator.validate({"total": Decimal("49.905")})
