"""The compiled validator and the precomputed date parsing keep the SDK's behaviour."""

from __future__ import annotations

import datetime
import io
import json
import logging
from decimal import Decimal

import pytest
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
from singer_sdk.sinks import BatchSink
from singer_sdk.testing import TargetTestRunner

from target_meta_capi.validation import (
    CompiledRecordValidator,
    FastRecordParsingMixin,
    TimestampPlan,
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


class _CollectingSink(FastRecordParsingMixin, BatchSink):
    batches: list[list[dict]] = []

    def process_batch(self, context: dict) -> None:
        _CollectingSink.batches.append(list(context["records"]))


class _Target(Target):
    name = "target-validation-test"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = _CollectingSink


def _run(records: list[dict], config: dict | None = None) -> list[dict]:
    _CollectingSink.batches = []
    lines = [
        {"type": "SCHEMA", "stream": "orders", "schema": SCHEMA, "key_properties": ["order_id"]}
    ]
    lines += [{"type": "RECORD", "stream": "orders", "record": record} for record in records]
    runner = TargetTestRunner(
        _Target,
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


def test_field_without_schema_is_warned_about_as_by_the_sdk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        [record] = _run([{"order_id": 1, "coupon": "X", "created_at": "2026-11-28"}])
    assert "No schema for record field 'coupon'" in caplog.text
    assert record["created_at"] == datetime.datetime(2026, 11, 28)
