"""A plan whose hashed user_data comes from the identity memo builds the whole event in one
generated function (mapping.compiled.compile_builder) instead of fill + _finish.

It must give what fill + _finish give: the same event, the same dropped values, the same
error for an unusable field. The reference here is the same mapper with no builder compiled.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

import target_meta_capi.mapping.mapper as mapper_module
import target_meta_capi.mapping.streams_setting as streams_setting_module
from target_meta_capi.capi.normalize import sha256_hex
from target_meta_capi.mapping import EventMapper, MappingError, build_event_mapper
from tests.test_mapping import _nested_too_deeply

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import generate
from run import ORDERS_MAPPING as BENCHMARK_STREAMS

STREAM = generate.STREAM
ORDERS_MAPPING = BENCHMARK_STREAMS[STREAM]
CONFIG = {"streams": BENCHMARK_STREAMS}


def orders(count: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    now = dt.datetime.now(dt.timezone.utc)
    customers = generate.make_customers(50, rng)
    return [
        generate.order_record(order_id, rng.choice(customers), rng, now)
        for order_id in range(1, count + 1)
    ]


def mapper_for(config: dict[str, Any], record: dict[str, Any]) -> EventMapper:
    mapper = build_event_mapper(STREAM, ["order_id"], config, list(record))
    assert mapper is not None
    return mapper


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch):
    """map(config, record) through fill + _finish: a mapper built with no builder."""

    def map_without_builder(config: dict[str, Any], record: dict[str, Any]):
        with monkeypatch.context() as patch:
            patch.setattr(mapper_module, "compile_builder", lambda *args: None)
            mapper = mapper_for(config, record)
            return mapper.map(dict(record))

    return map_without_builder


def outcome(map_record) -> tuple[str, Any]:
    try:
        mapped = map_record()
    except MappingError as error:
        return "error", (error.field, str(error))
    return "event", (json.dumps(mapped.event, default=str), mapped.dropped, mapped.event_id)


def test_the_benchmarks_orders_are_built_by_the_builder():
    record = orders(1)[0]
    mapper = mapper_for(CONFIG, record)
    mapper.map(record)

    assert [plan.build is not None for plan in mapper._plans.values()] == [True]


def test_the_builder_reads_event_times_without_an_offset_in_the_time_zone_setting():
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    tokyo_wall_clock = (now + dt.timedelta(hours=9)).replace(tzinfo=None)  # UTC+9, no DST
    record = {**orders(1)[0], "created_at": tokyo_wall_clock.isoformat()}
    mapper = mapper_for({**CONFIG, "time_zone": "Asia/Tokyo"}, record)

    event = mapper.map(record).event

    assert [plan.build is not None for plan in mapper._plans.values()] == [True]
    assert event["event_time"] == int(now.timestamp())


def test_every_order_gets_the_event_and_dropped_values_of_fill_and_finish(reference):
    records = orders(400)
    mapper = mapper_for(CONFIG, records[0])

    for record in records:
        assert outcome(lambda record=record: mapper.map(dict(record))) == outcome(
            lambda record=record: reference(CONFIG, record)
        )


def test_phones_read_in_each_orders_country_give_the_events_of_fill_and_finish(reference):
    config = {**CONFIG, "phone_country_from_country": True}
    records = orders(400)
    records[0] = {**records[0], "phone": "07700 900123", "country": "United Kingdom"}
    mapper = mapper_for(config, records[0])

    for record in records:
        assert outcome(lambda record=record: mapper.map(dict(record))) == outcome(
            lambda record=record: reference(config, record)
        )
    assert mapper.map(dict(records[0])).event["user_data"]["ph"] == sha256_hex("447700900123")


def test_dates_parsed_by_the_sdk_give_the_same_events(reference):
    record = orders(1)[0]
    record["created_at"] = dt.datetime.fromisoformat(record["created_at"].replace("Z", "+00:00"))
    record["date_of_birth"] = dt.date(1984, 2, 29)

    assert outcome(lambda: mapper_for(CONFIG, record).map(dict(record))) == outcome(
        lambda: reference(CONFIG, record)
    )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("created_at", "yesterday"),
        ("created_at", None),
        ("created_at", True),
        ("order_id", ["not", "text"]),
        ("order_id", None),  # derived event_id
        ("total", "a lot"),
        ("total", float("nan")),
        ("num_items", 1.5),
        ("product_ids", {"sku": 1}),
        ("product_ids", ["SKU-1", "", None, " SKU-2 "]),
        ("product_ids", ["", None]),  # left out
        ("product_ids", []),  # left out
        ("page_url", {"path": "/"}),
        ("currency", "  "),
        ("phone", "12"),  # too short: dropped
        ("email", "not an e-mail"),  # dropped
        ("client_ip", 3232235777),  # not a text: normalized with the hashed keys' results
        ("user_agent", None),
    ],
)
def test_one_unusable_or_missing_value_gives_the_same_outcome(reference, column, value):
    record = {**orders(1)[0], column: value}

    assert outcome(lambda: mapper_for(CONFIG, record).map(dict(record))) == outcome(
        lambda: reference(CONFIG, record)
    )


@pytest.fixture
def unchecked_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constants the config check refuses, as in a StreamMapping built without it."""
    monkeypatch.setattr(
        streams_setting_module, "_constant_problem", lambda path, value, region: None
    )
    # nor the check of Meta's rules, which converts the constants first
    monkeypatch.setattr(streams_setting_module, "_literal_event", lambda raw, constants, region: {})


@pytest.mark.parametrize(
    "constants",
    [
        {"custom_data.currency": "EUR", "event_source_url": "https://shop.example.com/"},
        {"custom_data.value": "not a number"},  # refused for every record
        {"custom_data.num_items": "3"},
        {"custom_data.content_ids": []},  # left out
    ],
)
def test_constants_give_the_same_outcome(reference, unchecked_constants, constants):
    mapping = {**ORDERS_MAPPING, "constants": constants}
    mapping["fields"] = {
        path: column for path, column in ORDERS_MAPPING["fields"].items() if path not in constants
    }
    config = {"streams": {STREAM: mapping}}
    record = orders(1)[0]

    assert outcome(lambda: mapper_for(config, record).map(dict(record))) == outcome(
        lambda: reference(config, record)
    )


@pytest.mark.parametrize("other_custom_data_fields", [True, False])
def test_a_constant_for_a_whole_object_gives_the_same_outcome(
    reference, unchecked_constants, other_custom_data_fields
):
    mapping = {**ORDERS_MAPPING, "constants": {"custom_data": []}}
    if not other_custom_data_fields:  # then nothing puts an object in the constant's place
        mapping["fields"] = {
            path: column
            for path, column in ORDERS_MAPPING["fields"].items()
            if not path.startswith("custom_data.")
        }
    config = {"streams": {STREAM: mapping}}
    record = orders(1)[0]

    built = outcome(lambda: mapper_for(config, record).map(dict(record)))

    assert built == outcome(lambda: reference(config, record))
    if not other_custom_data_fields:
        assert built[0] == "error"
        assert built[1][0] == "custom_data"
        assert built[1][1].endswith("'custom_data': is not an object")


@pytest.mark.parametrize(
    "product",
    [{"name": "Mug", "sku": "M-1"}, '{"name": "Mug", "sku": "M-1"}', "Mug", None, {}],
)
def test_fields_read_in_a_json_or_object_column_give_the_same_outcome(reference, product):
    mapping = {**ORDERS_MAPPING}
    mapping["fields"] = {
        **ORDERS_MAPPING["fields"],
        "custom_data.content_name": "product.name",
        "custom_data.content_category": "product.sku",
    }
    config = {"streams": {STREAM: mapping}}
    first, second = orders(2)
    mapper = mapper_for(config, {**first, "product": product})

    for record in ({**first, "product": product}, {**second, "product": product}):
        assert outcome(lambda record=record: mapper.map(dict(record))) == outcome(
            lambda record=record: reference(config, record)
        )
    assert [plan.build is not None for plan in mapper._plans.values()] == [True]


def test_the_builder_names_the_event_time_column_a_record_has_no_value_in():
    record = {**orders(1)[0], "created_at": None}
    mapper = mapper_for(CONFIG, record)
    mapper.map(orders(1)[0])  # the plan, with its builder
    assert [plan.build is not None for plan in mapper._plans.values()] == [True]

    with pytest.raises(MappingError) as refused:
        mapper.map(record)
    assert "no event time in this record's 'created_at' (null, blank or missing)" in str(
        refused.value
    )


def test_an_event_name_column_that_is_empty_with_no_fallback_is_the_same_error(reference):
    mapping = {key: value for key, value in ORDERS_MAPPING.items() if key != "event_name"}
    mapping["fields"] = {**ORDERS_MAPPING["fields"], "event_name": "kind"}
    config = {"streams": {STREAM: mapping}}
    record = {**orders(1)[0], "kind": " "}

    built = outcome(lambda: mapper_for(config, record).map(dict(record)))

    assert built[0] == "error"
    assert built == outcome(lambda: reference(config, record))


def test_a_list_constant_is_not_shared_between_events():
    mapping = {**ORDERS_MAPPING, "constants": {"custom_data.content_ids": ["SKU-1"]}}
    mapping["fields"] = {
        path: column
        for path, column in ORDERS_MAPPING["fields"].items()
        if path != "custom_data.content_ids"
    }
    first, second = orders(2)
    mapper = mapper_for({"streams": {STREAM: mapping}}, first)

    one = mapper.map(first).event
    one["custom_data"]["content_ids"].append("changed later")

    assert mapper.map(second).event["custom_data"]["content_ids"] == ["SKU-1"]


def test_a_value_nested_too_deeply_is_the_same_mapping_error(reference):
    path, column = "custom_data.notes", "notes"
    mapping = {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"], path: column}}
    config = {"streams": {STREAM: mapping}}
    record = {**orders(1)[0], column: _nested_too_deeply()}
    mapper = mapper_for(config, record)

    built = outcome(lambda: mapper.map(dict(record)))

    assert [plan.build is not None for plan in mapper._plans.values()] == [True]
    assert built[0] == "error"
    assert built[1][0] == path
    assert built[1][1].endswith(f"field {path!r}: nests arrays and objects too deeply")
    assert built == outcome(lambda: reference(config, record))
