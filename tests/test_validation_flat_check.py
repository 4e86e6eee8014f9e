"""The quick type check of flat schemas only ever vouches for records the full validator accepts."""

from __future__ import annotations

import itertools
import sys
from decimal import Decimal
from pathlib import Path

import fastjsonschema
import msgspec
import pytest
from singer_sdk.exceptions import InvalidRecord

from target_meta_capi.validation import CompiledRecordValidator, FlatTypeCheck

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import generate

FLAT_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["integer"]},
        "email": {"type": ["string", "null"], "description": "customer's e-mail"},
        "total": {"type": ["number", "null"]},
        "paid": {"type": "boolean"},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "product_ids": {"type": ["array", "null"], "items": {"type": ["string"]}},
        "extra": {"type": ["object", "null"]},
        "anything": {},
    },
    "required": ["order_id"],
}
SAMPLE_VALUES = [
    None, True, False, 0, 1, -7, 1.0, 2.5, Decimal("29.30"), "", "text", "1",
    [], ["SKU-1"], ["SKU-1", 2], [None], {}, {"a": 1}, (1, 2),
]  # fmt: skip


def _decoded_benchmark_messages(tmp_path: Path) -> list[dict]:
    decoder = msgspec.json.Decoder(float_hook=Decimal)
    path = generate.write_stream(tmp_path / "orders.singer", 2_000, customers=200)
    return [decoder.decode(line) for line in path.read_bytes().splitlines()]


def test_benchmark_schema_is_flat_and_every_benchmark_record_passes_the_quick_check(
    tmp_path: Path,
) -> None:
    messages = _decoded_benchmark_messages(tmp_path)
    check = FlatTypeCheck.for_schema(messages[0]["schema"])
    assert check is not None
    records = [message["record"] for message in messages if message["type"] == "RECORD"]
    assert all(check(record) for record in records)


def test_a_singer_sdk_tap_s_schema_naming_its_draft_gets_the_quick_check() -> None:
    # as meltanolabs-tap-postgres 0.10 writes a table's SCHEMA: the validation of its every
    # record took twice as long without the quick check
    schema = {
        "properties": {
            "order_id": {"type": ["integer"]},
            "email": {"type": ["string", "null"]},
            "created_at": {"format": "date-time", "type": ["string", "null"]},
        },
        "type": "object",
        "required": ["order_id"],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    assert CompiledRecordValidator(schema)._quick_check is not None


@pytest.mark.parametrize(
    ("field", "value"),
    list(itertools.product(FLAT_SCHEMA["properties"], SAMPLE_VALUES)),
)
def test_quick_check_passes_a_value_only_where_fastjsonschema_accepts_it(
    field: str, value: object
) -> None:
    check = FlatTypeCheck.for_schema(FLAT_SCHEMA)
    assert check is not None
    record = {"order_id": 1, field: value}
    if check(record):
        fastjsonschema.compile(FLAT_SCHEMA, use_formats=False)(record)  # raises if wrong


def test_quick_check_refuses_a_record_without_a_required_field() -> None:
    check = FlatTypeCheck.for_schema(FLAT_SCHEMA)
    assert check is not None
    assert not check({"email": "a@example.com"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order_id", True),
        ("order_id", "1"),
        ("total", "29.30"),
        ("paid", 1),
        ("product_ids", ["SKU-1", 2]),
        ("extra", []),
    ],
)
def test_invalid_record_gets_the_full_validators_message(field: str, value: object) -> None:
    record = {"order_id": 1, field: value}
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as expected:
        fastjsonschema.compile(FLAT_SCHEMA, use_formats=False)(record)
    with pytest.raises(InvalidRecord) as raised:
        CompiledRecordValidator(FLAT_SCHEMA).validate(record)
    assert raised.value.error_message == expected.value.message


def test_a_field_outside_the_schema_is_allowed_as_by_the_full_validator() -> None:
    CompiledRecordValidator(FLAT_SCHEMA).validate({"order_id": 1, "unknown": [1, "x"]})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}},
        {"type": "object", "properties": {"s": {"type": "string", "enum": ["a"]}}},
        {"type": "object", "properties": {"s": {"type": "string", "default": "a"}}},
        {"type": "object", "properties": {"s": {"anyOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"o": {"type": "object", "properties": {}}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "array"}}}},
        {"type": "object", "properties": {}, "additionalProperties": False},
        {"type": "array"},
        {"type": "object", "properties": {"anything": True, "nothing": False}},
    ],
)
def test_schema_asking_for_more_than_types_gets_no_quick_check(schema: dict) -> None:
    assert FlatTypeCheck.for_schema(schema) is None


def test_a_shape_vouched_for_still_gets_its_list_items_checked() -> None:
    check = FlatTypeCheck.for_schema(FLAT_SCHEMA)
    assert check is not None
    good = {"order_id": 1, "paid": True, "product_ids": ["a", "b"]}
    assert check(good)
    # same columns, same value classes: only the items differ
    assert not check({**good, "product_ids": ["a", 2]})


def test_the_quick_check_stays_right_after_forgetting_shapes(monkeypatch) -> None:
    monkeypatch.setattr(FlatTypeCheck, "max_shapes", 2)
    check = FlatTypeCheck.for_schema(FLAT_SCHEMA)
    assert check is not None
    records = [
        ({"order_id": 1, "paid": True}, True),
        ({"order_id": 1, "paid": True, "email": None}, True),
        ({"order_id": 1, "paid": "yes"}, False),
        ({"order_id": 1.5, "paid": True}, False),
        ({"paid": True}, False),  # order_id is required
    ]
    for _ in range(3):
        assert [check(record) for record, _ in records] == [valid for _, valid in records]
