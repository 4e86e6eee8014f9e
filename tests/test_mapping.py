import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
import types
from decimal import Decimal

import pytest

from target_meta_capi.capi.normalize import DroppedValue
from target_meta_capi.capi.shapes import Event
from target_meta_capi.mapping import (
    ALIASES,
    MappingConfigError,
    MappingError,
    build_event_mapper,
    deterministic_event_id,
    mapping_config_errors,
    parse_event_time,
    unmatched_stream_entries,
)

T_2026_11_27_10H_UTC = 1795773600
MARY_SHA256 = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"

ORDERS_CONFIG = {
    "streams": {
        "public-orders": {
            "event_name": "Purchase",
            "action_source": "website",
            "fields": {
                "event_time": "created_at",
                "event_id": "order_id",
                "event_source_url": "page_url",
                "user_data.em": "email",
                "user_data.client_ip_address": "client_ip",
                "custom_data.value": "total",
                "custom_data.order_id": "order_id",
            },
        }
    }
}
ORDERS_COLUMNS = ["order_id", "created_at", "email", "client_ip", "total", "page_url"]
ORDER = {
    "order_id": 1001,
    "created_at": "2026-11-27T10:00:00Z",
    "email": " Mary@Example.com ",
    "client_ip": "203.0.113.7",
    "total": Decimal("19.99"),
    "page_url": "https://shop.example.com/checkout",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def mapper_for(config=None, stream="s", keys=(), columns=None):
    """columns: the SCHEMA's; None for a mapper built without a SCHEMA."""
    mapper = build_event_mapper(stream, list(keys), config or {}, columns)
    assert mapper is not None
    return mapper


def flat_mapper(**config):
    config.setdefault("default_event_name", "Lead")
    config.setdefault("default_action_source", "system_generated")
    return mapper_for(config, columns=["email", "event_time"])


def unmapped_to_custom_data_mapper(columns=None, **stream_config):
    config = {
        "streams": {
            "s": {
                "event_name": "Lead",
                "unmapped_columns_to_custom_data": True,
                **stream_config,
            }
        }
    }
    return mapper_for(config, columns=columns)


def test_issue_orders_example_maps_to_the_expected_event():
    mapper = mapper_for(ORDERS_CONFIG, "public-orders", ["order_id"], ORDERS_COLUMNS)
    mapped = mapper.map(ORDER)
    assert mapped.event == {
        "event_name": "Purchase",
        "event_time": T_2026_11_27_10H_UTC,
        "event_id": "1001",
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout",
        "user_data": {"em": sha("mary@example.com"), "client_ip_address": "203.0.113.7"},
        "custom_data": {"value": 19.99, "order_id": "1001"},
    }
    assert mapped.event_id == "1001"
    assert mapped.dropped == []


def test_nested_fields_form_maps_like_the_dotted_form():
    nested = {
        "streams": {
            "public-orders": {
                "event_name": "Purchase",
                "action_source": "website",
                "fields": {
                    "event_time": "created_at",
                    "event_id": "order_id",
                    "event_source_url": "page_url",
                    "user_data": {"em": "email", "client_ip_address": "client_ip"},
                    "custom_data": {"value": "total", "order_id": "order_id"},
                },
            }
        }
    }
    dotted_event = mapper_for(ORDERS_CONFIG, "public-orders", ["order_id"]).map(ORDER).event
    nested_event = mapper_for(nested, "public-orders", ["order_id"]).map(ORDER).event
    assert nested_event == dotted_event


def test_a_path_given_in_both_forms_is_a_config_error():
    config = {
        "streams": {"s": {"fields": {"user_data.em": "email", "user_data": {"em": "other_email"}}}}
    }
    with pytest.raises(MappingConfigError, match="given twice"):
        build_event_mapper("s", [], config, [])


def test_flat_record_columns_map_by_their_aliases():
    record = {
        "email": "mary@example.com",
        "phone_number": "+1 (616) 954-7888",
        "first_name": "Mary",
        "surname": "O'Brien",
        "gender": "Female",
        "birthdate": "1997-02-16",
        "city": "Menlo Park",
        "state": "California",
        "postal_code": "94035-1234",
        "country_code": "US",
        "external_id": "Cust-42",
        "ip_address": "203.0.113.7",
        "user_agent": "Mozilla/5.0",
        "fbc": "fb.1.1554763741205.AbCdEf",
        "fbp": "fb.1.1558571054389.1098115397",
        "event_time": T_2026_11_27_10H_UTC,
        "value": Decimal("5.50"),
        "currency": "USD",
        "content_ids": [1, 2],
        "num_items": Decimal("2"),
    }
    event = flat_mapper().map(record).event
    assert event["user_data"] == {
        "em": sha("mary@example.com"),
        "ph": sha("16169547888"),
        "fn": MARY_SHA256,
        "ln": sha("obrien"),
        "ge": sha("f"),
        "db": sha("19970216"),
        "ct": sha("menlopark"),
        "st": sha("ca"),
        "zp": sha("94035"),
        "country": sha("us"),
        "external_id": sha("cust-42"),
        "client_ip_address": "203.0.113.7",
        "client_user_agent": "Mozilla/5.0",
        "fbc": "fb.1.1554763741205.AbCdEf",
        "fbp": "fb.1.1558571054389.1098115397",
    }
    assert event["custom_data"] == {
        "value": 5.5,
        "currency": "USD",
        "content_ids": ["1", "2"],
        "num_items": 2,
    }


def test_aliases_match_column_names_case_insensitively():
    event = flat_mapper().map({"Email": "mary@example.com", "Event_Time": 1795773600}).event
    assert event["user_data"] == {"em": sha("mary@example.com")}


def test_columns_differing_only_in_case_from_an_alias_are_all_used_never_sent_unhashed():
    mapper = unmapped_to_custom_data_mapper()
    record = {"event_time": 1, "Email": "first@example.com", "email": "second@example.com"}

    event = mapper.map(record).event
    fallback = mapper.map({**record, "Email": " "}).event

    assert event["user_data"] == {"em": sha("first@example.com")}
    assert fallback["user_data"] == {"em": sha("second@example.com")}
    assert "custom_data" not in event and "custom_data" not in fallback
    assert mapper.custom_data_columns(["Email", "email", "EMAIL", "sku"]) == ("sku",)


def test_object_columns_differing_only_in_case_merge_with_the_first_ones_keys_winning():
    record = {
        "event_time": 1,
        "User_Data": {"em": "first@example.com"},
        "user_data": {"em": "second@example.com", "fn": "Mary"},
    }

    event = unmapped_to_custom_data_mapper().map(record).event

    assert event["user_data"] == {"em": sha("first@example.com"), "fn": sha("mary")}
    assert "custom_data" not in event


def test_earlier_alias_wins_when_a_record_has_several():
    record = {"email": "second@example.com", "em": "first@example.com", "event_time": 1}
    assert flat_mapper().map(record).event["user_data"] == {"em": sha("first@example.com")}


def test_alias_table_lists_only_known_capi_paths():
    for path in ALIASES:
        build_event_mapper("s", [], {"streams": {"s": {"fields": {path: "c"}}}}, [])


def test_record_shaped_like_a_capi_event_is_taken_as_is_with_user_data_hashed():
    record = {
        "event_name": "Lead",
        "event_time": T_2026_11_27_10H_UTC,
        "event_id": "lead-7",
        "action_source": "system_generated",
        "user_data": {"em": "Mary@Example.com", "fn": MARY_SHA256, "lead_id": 123},
        "custom_data": {"lead_event_source": "crm", "value": Decimal("1")},
    }
    mapper = mapper_for(columns=list(record))
    assert mapper.map(record).event == {
        "event_name": "Lead",
        "event_time": T_2026_11_27_10H_UTC,
        "event_id": "lead-7",
        "action_source": "system_generated",
        "user_data": {"em": sha("mary@example.com"), "fn": MARY_SHA256, "lead_id": 123},
        "custom_data": {"lead_event_source": "crm", "value": 1.0},
    }


def test_user_data_column_given_as_json_text_is_parsed():
    record = {"user_data": '{"em": "mary@example.com"}', "event_time": 1}
    event = flat_mapper().map(record).event
    assert event["user_data"] == {"em": sha("mary@example.com")}


def test_user_data_column_that_is_not_an_object_is_a_mapping_error():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"user_data": [1, 2], "event_time": 1})
    assert error.value.field == "user_data"


def test_a_mapping_error_names_the_records_key_as_its_json_wrote_it():
    mapper = mapper_for({"streams": {"s": {"fields": {"event_time": "t"}}}}, keys=("id", "sku"))
    with pytest.raises(MappingError) as error:
        mapper.map({"id": Decimal("12.5"), "sku": "A-1", "t": "soon"})
    assert error.value.record_key == "id=12.5, sku='A-1'"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"at": 1}, "the value is a JSON object, not a number"),
        (True, "the value is true or false, not a number"),
        (Decimal("1E+400"), "the value is a number past a float's range (±1.8e308)"),
    ],
)
def test_an_unusable_event_time_is_named_by_its_json_kind_once(raw, message):
    # not "a dict is a dict, not a number": Python's names, and the kind said twice
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": raw})
    assert (error.value.field, error.value.message) == ("event_time", message)


@pytest.mark.parametrize(
    ("column", "text", "field", "message"),
    [
        ("user_data", '{"em": ', "user_data", "is text that is not a JSON object"),
        ("contents", '[{"id": ', "custom_data.contents", "is text that is not a JSON array"),
    ],
)
def test_a_json_column_holding_text_that_is_not_json_is_a_mapping_error_saying_so(
    column, text, field, message
):
    with pytest.raises(MappingError) as error:
        flat_mapper().map({column: text, "event_time": 1})
    assert (error.value.field, error.value.message) == (field, message)


def test_mapped_column_beats_stream_literal_beats_alias_column_beats_default():
    def event_name(stream_config, record):
        config = {"streams": {"s": stream_config}, "default_event_name": "Default"}
        return mapper_for(config).map({"t": 1, **record}).event["event_name"]

    fields = {"fields": {"event_time": "t", "event_name": "kind"}}
    assert event_name({**fields, "event_name": "Literal"}, {"kind": "Mapped"}) == "Mapped"
    assert event_name({**fields, "event_name": "Literal"}, {"event_name": "Col"}) == "Literal"
    assert event_name(fields, {"event_name": "Col"}) == "Col"
    assert event_name(fields, {}) == "Default"


def test_a_column_mapped_in_fields_does_not_also_feed_the_field_of_its_alias():
    config = {
        "streams": {
            "s": {
                "event_name": "Lead",
                "fields": {"custom_data.status": "state", "user_data.external_id": "email"},
            }
        }
    }
    record = {"event_time": 1, "state": "shipped", "email": "CUST-42"}

    mapped = mapper_for(config).map(record)

    assert mapped.event["user_data"] == {"external_id": sha("cust-42")}
    assert mapped.event["custom_data"] == {"status": "shipped"}
    assert mapped.dropped == []  # CUST-42 was not also tried as an e-mail


def test_a_column_mapped_to_two_fields_feeds_both():
    mapper = mapper_for(ORDERS_CONFIG, "public-orders", ["order_id"], ORDERS_COLUMNS)

    event = mapper.map(ORDER).event

    assert (event["event_id"], event["custom_data"]["order_id"]) == ("1001", "1001")


def test_null_mapped_column_falls_back_to_the_next_source():
    config = {"streams": {"s": {"event_name": "Lead", "fields": {"event_name": "kind"}}}}
    event = mapper_for(config).map({"kind": None, "event_time": 1}).event
    assert event["event_name"] == "Lead"


def test_default_action_source_is_used_when_nothing_else_gives_one():
    assert flat_mapper().map({"email": "a@b.com", "event_time": 1}).event["action_source"] == (
        "system_generated"
    )


def test_constants_set_literal_values():
    config = {
        "streams": {"s": {"event_name": "Purchase", "constants": {"custom_data.currency": "EUR"}}}
    }
    event = mapper_for(config).map({"event_time": 1, "value": 3}).event
    assert event["custom_data"] == {"value": 3.0, "currency": "EUR"}


def test_fields_column_can_name_a_nested_value():
    config = {
        "streams": {"s": {"event_name": "Lead", "fields": {"user_data.em": "customer.email"}}}
    }
    record = {"customer": {"email": "mary@example.com"}, "event_time": 1}
    assert mapper_for(config).map(record).event["user_data"] == {"em": sha("mary@example.com")}


CUSTOMER_PATHS_CONFIG = {
    "streams": {
        "s": {
            "event_name": "Lead",
            "fields": {
                "user_data.em": "customer.email",
                "user_data.fn": "customer.name.first",
                "custom_data.status": "customer.tier",
            },
        }
    }
}


def test_fields_column_can_name_a_nested_value_of_a_column_holding_json_text(monkeypatch):
    record = {
        "event_time": 1,
        "customer": '{"email": "mary@example.com", "name": {"first": "Mary"}, "tier": "gold"}',
    }
    mapper = mapper_for(CUSTOMER_PATHS_CONFIG)
    parsed = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text: parsed.append(text) or loads(text))

    mapped = mapper.map(record)

    assert mapped.event["user_data"] == {"em": sha("mary@example.com"), "fn": sha("mary")}
    assert mapped.event["custom_data"] == {"status": "gold"}
    assert len(parsed) == 1  # once for the three fields
    assert record["customer"].startswith("{")  # the record itself is left as it came
    assert mapped.event_id == deterministic_event_id("s", record, "Lead")


@pytest.mark.parametrize("customer", ["mary@example.com", '["mary@example.com"]', "{broken", 7])
def test_fields_reading_in_a_column_that_holds_no_object_are_counted_as_dropped(customer):
    mapped = mapper_for(CUSTOMER_PATHS_CONFIG).map({"event_time": 1, "customer": customer})

    assert mapped.event["user_data"] == {}
    assert mapped.dropped == [
        DroppedValue("em", "invalid"),
        DroppedValue("fn", "invalid"),
        DroppedValue("custom_data.status", "invalid"),
    ]


TWO_OBJECT_COLUMNS_CONFIG = {
    "streams": {
        "s": {
            "event_name": "Lead",
            "fields": {"user_data.em": "customer.email", "custom_data.status": "order.status"},
        }
    }
}


def test_nested_values_of_two_columns_holding_json_text_are_both_read():
    record = {"event_time": 1, "customer": '{"email": "mary@example.com"}'}
    record["order"] = '{"status": "shipped"}'

    event = mapper_for(TWO_OBJECT_COLUMNS_CONFIG).map(record).event

    assert event["user_data"] == {"em": sha("mary@example.com")}
    assert event["custom_data"] == {"status": "shipped"}


def test_fields_reading_in_two_columns_that_hold_no_object_are_all_counted_as_dropped():
    record = {"event_time": 1, "customer": "mary@example.com", "order": 7}

    mapped = mapper_for(TWO_OBJECT_COLUMNS_CONFIG).map(record)

    assert mapped.dropped == [
        DroppedValue("em", "invalid"),
        DroppedValue("custom_data.status", "invalid"),
    ]


def test_fields_column_can_name_a_nested_value_of_any_mapping():
    # a library caller's record may hold another Mapping than a dict
    customer = types.MappingProxyType({"email": "mary@example.com"})
    mapped = mapper_for(CUSTOMER_PATHS_CONFIG).map({"event_time": 1, "customer": customer})

    assert mapped.event["user_data"] == {"em": sha("mary@example.com")}
    assert mapped.dropped == []


@pytest.mark.parametrize("customer", [None, "  ", {}, "{}"])
def test_an_empty_column_of_nested_fields_drops_nothing(customer):
    mapped = mapper_for(CUSTOMER_PATHS_CONFIG).map({"event_time": 1, "customer": customer})

    assert mapped.event["user_data"] == {}
    assert mapped.dropped == []


def phones_mapper():
    config = {
        "streams": {
            "s": {
                "event_name": "Lead",
                "action_source": "system_generated",
                "fields": {
                    "event_time": "ts",
                    "user_data.ph": ["phone", "mobile_phone", "profile.phone"],
                    "user_data.fn": "first_name",
                    "user_data.ln": "last_name",
                },
            }
        }
    }
    return mapper_for(config, columns=["ts", "phone", "mobile_phone", "profile"])


def test_a_parameter_listing_several_columns_gets_every_non_empty_value_hashed_in_order():
    record = {
        "ts": 1,
        "phone": "+1 (308) 929-5552",
        "mobile_phone": "+44 7700 900123",
        "profile": {"phone": "+1 308 555 0100"},
        "first_name": "Mary",
        "last_name": "Major",
    }

    user_data = phones_mapper().map(record).event["user_data"]

    assert user_data["ph"] == [sha("13089295552"), sha("447700900123"), sha("13085550100")]


def test_empty_columns_of_a_listed_parameter_are_skipped_without_counting_as_dropped():
    record = {"ts": 1, "phone": None, "mobile_phone": "  ", "profile": {"phone": "+44 7700 900123"}}

    mapped = phones_mapper().map(record)

    assert mapped.event["user_data"] == {"ph": [sha("447700900123")]}
    assert mapped.dropped == []


def test_a_listed_parameter_with_no_value_in_any_column_is_left_out():
    record = {"ts": 1, "phone": None, "mobile_phone": "", "profile": {}, "first_name": "Mary"}

    assert phones_mapper().map(record).event["user_data"] == {"fn": sha("mary")}


def test_the_same_value_in_two_listed_columns_is_sent_once():
    record = {"ts": 1, "phone": "+1 308 929 5552", "mobile_phone": "1-308-929-5552"}

    assert phones_mapper().map(record).event["user_data"]["ph"] == [sha("13089295552")]


def test_an_unusable_value_among_listed_columns_is_dropped_and_the_others_are_sent():
    record = {"ts": 1, "phone": "call me", "mobile_phone": "+44 7700 900123"}

    mapped = phones_mapper().map(record)

    assert mapped.event["user_data"]["ph"] == [sha("447700900123")]
    assert mapped.dropped == [DroppedValue("ph", "invalid")]


def test_a_listed_column_holding_a_list_gives_each_of_its_items():
    record = {
        "ts": 1,
        "phone": ["+1 308 929 5552", "", None, "+44 7700 900123"],
        "mobile_phone": ("+1 308 555 0100",),
        "profile": {"phone": []},
    }

    mapped = phones_mapper().map(record)

    assert mapped.event["user_data"]["ph"] == [
        sha("13089295552"),
        sha("447700900123"),
        sha("13085550100"),
    ]
    assert mapped.dropped == []


def test_listed_columns_are_redacted_key_properties_and_checked_against_the_schema():
    config = {"streams": {"s": {"fields": {"user_data.em": ["email", "work_emial"]}}}}

    mapper = build_event_mapper("s", ["email"], config, ["email", "work_email"])

    assert mapper is not None
    assert mapper.unknown_columns == {"work_emial": ("user_data.em",)}
    assert mapper.redacted_keys == frozenset({"email"})


def test_missing_event_name_without_default_is_a_mapping_error_naming_stream_and_record():
    mapper = mapper_for({"streams": {"orders": {}}}, "orders", ["order_id"])
    with pytest.raises(MappingError) as error:
        mapper.map({"order_id": 7, "email": "mary@example.com", "event_time": 1})
    assert error.value.stream == "orders"
    assert error.value.field == "event_name"
    assert "order_id=7" in str(error.value)
    assert "mary" not in str(error.value)


def test_an_event_name_column_holding_no_text_is_a_mapping_error():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_name": ["Lead"], "event_time": 1})
    assert (error.value.field, error.value.message) == ("event_name", "is an array, not a text")


def test_missing_event_time_is_a_mapping_error():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"email": "a@b.com"})
    assert error.value.field == "event_time"


def test_unparseable_event_time_is_a_mapping_error_without_pii():
    mapper = mapper_for(ORDERS_CONFIG, "public-orders", ["order_id"])
    with pytest.raises(MappingError) as error:
        mapper.map({**ORDER, "created_at": "yesterday-ish"})
    assert error.value.field == "event_time"
    assert "public-orders" in str(error.value)
    assert "order_id=1001" in str(error.value)
    assert "mary" not in str(error.value).lower()


def test_key_property_holding_customer_information_is_redacted_in_errors():
    mapper = mapper_for({"default_event_name": "Lead"}, "s", ["email"], ["email", "event_time"])
    with pytest.raises(MappingError) as error:
        mapper.map({"email": "mary@example.com", "event_time": "never"})
    assert "email=<redacted>" in str(error.value)
    assert "mary" not in str(error.value)


@pytest.mark.parametrize(
    "raw",
    [
        dt.datetime(2026, 11, 27, 10, 0),
        dt.datetime(2026, 11, 27, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00.250+00:00",
        "2026-11-27 12:00:00+02:00",
        "2026-11-27T10:00:00",
        T_2026_11_27_10H_UTC,
        float(T_2026_11_27_10H_UTC) + 0.9,
        Decimal(T_2026_11_27_10H_UTC),
        str(T_2026_11_27_10H_UTC),
        T_2026_11_27_10H_UTC * 1000,
        str(T_2026_11_27_10H_UTC * 1000 + 999),
        Decimal(T_2026_11_27_10H_UTC * 1000),
        T_2026_11_27_10H_UTC * 1_000_000 + 999_999,  # BigQuery's UNIX_MICROS, Spark
        str(T_2026_11_27_10H_UTC * 1_000_000),
        float(T_2026_11_27_10H_UTC * 1_000_000),
        T_2026_11_27_10H_UTC * 1_000_000_000 + 999_999_999,  # pandas, Kafka Connect
        Decimal(T_2026_11_27_10H_UTC * 1_000_000_000),
    ],
)
def test_event_time_forms_become_integer_unix_seconds(raw):
    seconds = parse_event_time(raw)
    assert seconds == T_2026_11_27_10H_UTC
    assert type(seconds) is int


def test_event_time_text_is_read_alike_on_every_python():
    # ISO forms Python 3.10's own fromisoformat refuses (PostgreSQL's text form among them).
    # Importing singer_sdk patches it for the whole process, so a fresh interpreter loading
    # only the mapping shows what the mapping parses by itself.
    forms = [
        "2026-11-27 10:00:00.12+00",
        "2026-11-27T10:00:00+0000",
        "2026-11-27T10:00:00.1234567Z",
        "2026-11-27T10:00:00z",
    ]
    script = (
        "import sys\n"
        "from target_meta_capi.mapping import parse_event_time\n"
        "print(*map(parse_event_time, sys.argv[1:]))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, *forms], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [str(T_2026_11_27_10H_UTC)] * len(forms)


@pytest.mark.parametrize("raw", ["2026-11-27T09:59:60Z", "2026-11-27 11:59:60.2+02:00"])
def test_event_time_at_a_leap_second_is_the_next_minutes_first_second(raw):
    assert parse_event_time(raw) == T_2026_11_27_10H_UTC


def test_event_time_date_is_midnight_utc():
    assert parse_event_time(dt.date(2026, 11, 27)) == T_2026_11_27_10H_UTC - 10 * 3600


TOKYO = {"time_zone": "Asia/Tokyo"}  # UTC+9, no daylight saving time


@pytest.mark.parametrize(
    "raw",
    [dt.datetime(2026, 11, 27, 19, 0), "2026-11-27T19:00:00", "2026-11-27 19:00:00"],
    ids=["datetime", "iso-text", "postgres-text"],
)
def test_event_time_without_an_offset_is_read_in_the_time_zone_setting(raw):
    mapper = mapper_for({**ORDERS_CONFIG, **TOKYO}, "public-orders", columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": raw}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC


def test_event_time_date_is_midnight_in_the_time_zone_setting():
    mapper = mapper_for({**ORDERS_CONFIG, **TOKYO}, "public-orders", columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": dt.date(2026, 11, 28)}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC + 5 * 3600  # 28th 00:00 in Tokyo


@pytest.mark.parametrize("raw", [dt.date(2026, 11, 28), "2026-11-28", "20261128", " 20261128"])
def test_event_time_date_text_in_iso_basic_form_is_a_date_not_epoch_seconds(raw):
    # read as epoch seconds, 20261128 would be a moment of August 1970
    mapper = mapper_for({**ORDERS_CONFIG, **TOKYO}, "public-orders", columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": raw}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC + 5 * 3600  # 28th 00:00 in Tokyo


@pytest.mark.parametrize(
    "raw",
    ["2026-11-27T10:00:00Z", "2026-11-27T12:00:00+02:00", T_2026_11_27_10H_UTC],
    ids=["utc", "offset", "epoch"],
)
def test_event_time_with_an_offset_or_in_epoch_seconds_ignores_the_time_zone_setting(raw):
    mapper = mapper_for({**ORDERS_CONFIG, **TOKYO}, "public-orders", columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": raw}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC


def test_attribution_times_without_an_offset_are_read_in_the_time_zone_setting():
    config = {
        "streams": {"s": {**ORDERS_CONFIG["streams"]["public-orders"], "fields": {
            **ORDERS_CONFIG["streams"]["public-orders"]["fields"],
            "attribution_data.visit_time": "clicked_at",
        }}},
        **TOKYO,
    }  # fmt: skip
    mapper = mapper_for(config, columns=[*ORDERS_COLUMNS, "clicked_at"])
    event = mapper.map({**ORDER, "clicked_at": "2026-11-27T19:00:00"}).event
    assert event["attribution_data"]["visit_time"] == T_2026_11_27_10H_UTC


def test_a_streams_time_zone_reads_that_streams_times_without_an_offset():
    config = {"streams": {"s": {**ORDERS_CONFIG["streams"]["public-orders"], **TOKYO}}}
    mapper = mapper_for(config, columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": "2026-11-27T19:00:00"}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC


def test_a_streams_time_zone_of_utc_overrides_the_time_zone_setting():
    stream = {**ORDERS_CONFIG["streams"]["public-orders"], "time_zone": "UTC"}
    mapper = mapper_for({"streams": {"s": stream}, **TOKYO}, columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": "2026-11-27T10:00:00"}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC


def test_a_stream_without_its_own_time_zone_keeps_the_time_zone_setting():
    streams = {
        "s": {**ORDERS_CONFIG["streams"]["public-orders"], "time_zone": "UTC"},
        "t": ORDERS_CONFIG["streams"]["public-orders"],
    }
    mapper = mapper_for({"streams": streams, **TOKYO}, "t", columns=ORDERS_COLUMNS)
    event = mapper.map({**ORDER, "created_at": "2026-11-27T19:00:00"}).event
    assert event["event_time"] == T_2026_11_27_10H_UTC


def test_a_streams_time_zone_that_is_not_one_is_a_config_error_at_start():
    config = {"streams": {"s": {"event_name": "Lead", "time_zone": "Asia/Tokio"}}}
    assert mapping_config_errors(config) == [
        "streams.s.time_zone 'Asia/Tokio' is not a time zone known here: give an IANA name "
        "such as Europe/Berlin or America/New_York (a system without a time zone database "
        "needs the tzdata package)"
    ]


def test_a_time_zone_that_is_not_one_is_a_config_error_at_start():
    assert mapping_config_errors({"time_zone": "Europe/Berln"}) == [
        "time_zone 'Europe/Berln' is not a time zone known here: give an IANA name such as "
        "Europe/Berlin or America/New_York (a system without a time zone database needs the "
        "tzdata package)"
    ]


@pytest.mark.parametrize("name", ["", "  ", 9], ids=["empty", "blank", "number"])
def test_a_time_zone_that_is_no_name_is_a_config_error_at_start(name):
    assert mapping_config_errors({"time_zone": name}) == [
        "time_zone must be an IANA time zone name such as Europe/Berlin"
    ]


def _phone_mapper(config, stream="s"):
    return mapper_for(config, stream, columns=[*ORDERS_COLUMNS, "phone"])


def _phone_streams(**stream_settings):
    entry = ORDERS_CONFIG["streams"]["public-orders"]
    fields = {**entry["fields"], "user_data.ph": "phone"}
    return {"s": {**entry, "fields": fields, **stream_settings}}


def test_phones_without_a_country_code_get_the_phone_country_code_setting():
    mapper = _phone_mapper({"streams": _phone_streams(), "phone_country_code": "1"})
    for _ in range(2):  # the second time from the customer memo
        event = mapper.map({**ORDER, "phone": "(616) 954-7888"}).event
        assert event["user_data"]["ph"] == sha("16169547888")


def test_phones_are_hashed_as_written_without_a_phone_country_code():
    event = _phone_mapper({"streams": _phone_streams()}).map({**ORDER, "phone": "44 7700 900123"})
    assert event.event["user_data"]["ph"] == sha("447700900123")


def test_a_streams_phone_country_code_overrides_the_phone_country_code_setting():
    config = {"streams": _phone_streams(phone_country_code="GB"), "phone_country_code": "1"}
    event = _phone_mapper(config).map({**ORDER, "phone": "07700 900123"}).event
    assert event["user_data"]["ph"] == sha("447700900123")


def test_a_stream_without_its_own_phone_country_code_keeps_the_setting():
    streams = {**_phone_streams(phone_country_code="44"), "t": _phone_streams()["s"]}
    mapper = _phone_mapper({"streams": streams, "phone_country_code": "1"}, "t")
    event = mapper.map({**ORDER, "phone": "616 954 7888"}).event
    assert event["user_data"]["ph"] == sha("16169547888")


def test_a_phone_country_code_naming_no_country_is_a_config_error_at_start():
    assert mapping_config_errors({"phone_country_code": "0044"}) == [
        "phone_country_code '0044' names no country with phone numbers: give its calling "
        "code, such as 1 (US, Canada), 44 (UK) or 49 (Germany), or its ISO code (US, GB, DE)"
    ]


def test_a_streams_phone_country_code_naming_no_country_is_a_config_error_at_start():
    config = {"streams": {"s": {"event_name": "Lead", "phone_country_code": "Atlantis"}}}
    assert mapping_config_errors(config) == [
        "streams.s.phone_country_code 'Atlantis' names no country with phone numbers: give its "
        "calling code, such as 1 (US, Canada), 44 (UK) or 49 (Germany), or its ISO code (US, "
        "GB, DE)"
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("soon", "is neither an ISO 8601 time nor epoch seconds"),
        ("2026-13-01", "is neither an ISO 8601 time nor epoch seconds"),
        ("", "is neither an ISO 8601 time nor epoch seconds"),
        (True, "is true or false, not a number"),
        ([1], "is an array, not a number"),
        (float("nan"), "is not a finite number"),
    ],
)
def test_an_unusable_event_time_is_refused_saying_what_is_wrong_with_it(raw, reason):
    with pytest.raises(ValueError) as refused:
        parse_event_time(raw)
    assert str(refused.value) == reason


@pytest.mark.parametrize("raw", [10**21, 1e300, str(10**30)], ids=["int", "float", "text"])
def test_an_epoch_number_past_the_year_5138_even_in_nanoseconds_is_refused(raw):
    with pytest.raises(ValueError, match=r"^is past the year 5138 even read as epoch nanoseconds$"):
        parse_event_time(raw)


_LEFT_OUT = object()


@pytest.mark.parametrize(
    "raw", [None, "", "  ", _LEFT_OUT], ids=["null", "empty", "blank", "left-out"]
)
def test_a_record_without_a_value_in_its_time_column_is_refused_naming_that_column(raw):
    # not "map a column to event_time": one is mapped, this row has nothing in it
    mapper = mapper_for(ORDERS_CONFIG, "public-orders", columns=ORDERS_COLUMNS)
    record = {**ORDER, "created_at": raw}
    if raw is _LEFT_OUT:
        del record["created_at"]
    with pytest.raises(MappingError) as refused:
        mapper.map(record)
    assert refused.value.field == "event_time"
    assert "no event time in this record's 'created_at' (null, blank or missing)" in str(
        refused.value
    )


def test_a_record_without_a_value_for_event_time_names_its_mapped_and_alias_columns():
    mapper = mapper_for(ORDERS_CONFIG, "public-orders", columns=[*ORDERS_COLUMNS, "Event_Time"])
    with pytest.raises(MappingError) as refused:
        mapper.map({**ORDER, "created_at": None, "Event_Time": ""})
    assert "no event time in this record's 'created_at', 'Event_Time'" in str(refused.value)


def test_a_time_of_day_is_no_event_time_and_the_reason_says_so():
    # tap-postgres gives a `time` column as a time object (format: time)
    with pytest.raises(ValueError, match=r"^is a time of day without a date$"):
        parse_event_time(dt.time(10, 0))


def test_event_id_comes_from_the_aliased_column_as_text():
    event = flat_mapper().map({"event_id": 12345, "event_time": 1}).event
    assert event["event_id"] == "12345"


def test_deterministic_event_id_is_sha256_of_stream_keys_and_event_name():
    config = {"streams": {"orders": {"event_name": "Purchase"}}}
    mapped = mapper_for(config, "orders", ["order_id"]).map({"order_id": 1001, "event_time": 1})
    assert mapped.event_id == sha('["orders",[1001],"Purchase"]')[:32]
    assert mapped.event["event_id"] == mapped.event_id


def test_deterministic_event_id_is_the_same_for_the_same_row_in_a_new_mapper():
    config = {"streams": {"orders": {"event_name": "Purchase"}}}
    row = {"order_id": 1001, "event_time": 1, "_sdc_extracted_at": "2026-11-27"}
    first = mapper_for(config, "orders", ["order_id"]).map(row).event_id
    second = mapper_for(config, "orders", ["order_id"]).map({**row, "_sdc_extracted_at": "x"})
    assert first == second.event_id


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_rows_whose_key_is_null_or_blank_get_ids_of_their_content_not_one_shared_id(blank):
    config = {"streams": {"orders": {"event_name": "Lead"}}}
    mapper = mapper_for(config, "orders", ["order_id"])
    alice = mapper.map({"order_id": blank, "event_time": 1, "email": "alice@example.com"})
    bob = mapper.map({"order_id": blank, "event_time": 1, "email": "bob@example.com"})
    assert alice.event_id != bob.event_id


def test_deterministic_event_id_differs_by_key_event_name_and_stream():
    ids = {
        deterministic_event_id("orders", [1001], "Purchase"),
        deterministic_event_id("orders", [1002], "Purchase"),
        deterministic_event_id("orders", [1001], "Refund"),
        deterministic_event_id("returns", [1001], "Purchase"),
    }
    assert len(ids) == 4


def test_deterministic_event_id_ignores_whether_numbers_are_decimal_or_float():
    assert deterministic_event_id("s", [Decimal("1.50"), Decimal("2")], "E") == (
        deterministic_event_id("s", [1.5, 2], "E")
    )


def test_deterministic_event_id_counts_a_date_time_by_its_moment_in_utc():
    # tap-postgres writes a timestamp key with +00:00 in a RECORD, without it in a BATCH file,
    # and a timestamptz in its session's zone
    utc = dt.datetime(2026, 12, 2, 4, 17, 32, 872485, tzinfo=dt.timezone.utc)
    berlin = utc.astimezone(dt.timezone(dt.timedelta(hours=1)))
    ids = {
        deterministic_event_id("orders", [moment], "Purchase")
        for moment in (utc, utc.replace(tzinfo=None), berlin)
    }
    assert ids == {"cf957cca5df6cd66c5549ce38174b0c0"}  # the id a UTC key always had


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=9))),
    ],
    ids=["past-9999-in-utc", "before-year-1-in-utc"],
)
def test_deterministic_event_id_of_a_date_time_no_utc_datetime_holds_is_derived(moment):
    event_id = deterministic_event_id("s", [1, moment], "Lead")
    assert event_id == deterministic_event_id("s", [1, moment], "Lead")
    assert event_id != deterministic_event_id("s", [1, moment.replace(second=1)], "Lead")


def test_deterministic_event_ids_of_different_moments_differ():
    noon = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)
    noon_in_berlin = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert deterministic_event_id("s", [noon], "E") != deterministic_event_id(
        "s", [noon_in_berlin], "E"
    )


# Ids derived by the versions before decimals that no float holds were told apart: a rerun must
# give the same ids so that Meta deduplicates the events sent again.
@pytest.mark.parametrize(
    ("row_identity", "pinned_id"),
    [
        ([Decimal("19.99")], "2cc27a776d8770eb5c5de3db3f1fffa1"),
        ([19.99], "2cc27a776d8770eb5c5de3db3f1fffa1"),
        ([Decimal("0.1")], "10b1f82b4f490478cccae07cc02491ef"),
        ([Decimal("-2.5")], "30621558472c138f4d8cc5baa3eeb974"),
        ([Decimal("0.30000000000000004")], "722c7dfeb53abf805505a614bf2e745c"),
        ([Decimal("1.0")], "21c2d26e140a8f4ccddae2ac1bd5fd1b"),
        ([Decimal("1E+2")], "8732452ad2e865158f1f6b105a809ebb"),
        (
            {"order_id": 7, "total": Decimal("19.99"), "ts": "2026-01-01"},
            "ae3c36187988f42c5738ae688458cba3",
        ),
    ],
)
def test_deterministic_event_id_of_a_decimal_a_float_holds_is_the_id_it_always_was(
    row_identity, pinned_id
):
    stream = "orders" if isinstance(row_identity, dict) else "s"
    assert deterministic_event_id(stream, row_identity, "Purchase") == pinned_id


def test_deterministic_event_ids_of_decimals_no_float_holds_do_not_collide():
    def event_id(text: str) -> str:
        return deterministic_event_id("s", [Decimal(text)], "Lead")

    assert event_id("12345678901234567890.5") != event_id("12345678901234567891.5")
    assert event_id("0.1000000000000000055511151231257827") != event_id("0.1")
    # the same value written with more zeros is the same row
    assert event_id("12345678901234567890.50") == event_id("12345678901234567890.5")


def test_deterministic_event_ids_of_whole_decimals_past_a_floats_range_do_not_collide():
    def event_id(text: str) -> str:
        return deterministic_event_id("s", [Decimal(text)], "Lead")

    assert len({event_id("1E+400"), event_id("1E+500"), event_id("1")}) == 3


def test_record_without_key_properties_gets_an_id_from_its_content_without_metadata():
    mapper = flat_mapper()
    row = {"email": "a@b.com", "event_time": 1}
    first = mapper.map({**row, "_sdc_batched_at": "1"}).event_id
    assert first == mapper.map({**row, "_sdc_batched_at": "2"}).event_id
    assert first != mapper.map({**row, "email": "c@d.com"}).event_id


def test_rows_differing_only_in_a_value_of_another_type_get_different_ids():
    mapper = flat_mapper()  # a stream map's expression may give a timedelta
    row = {"email": "a@b.com", "event_time": 1, "wait": dt.timedelta(days=1)}
    first = mapper.map(row).event_id
    assert first == mapper.map(dict(row)).event_id
    assert first != mapper.map({**row, "wait": dt.timedelta(days=2)}).event_id


def test_record_missing_a_key_property_value_gets_an_id_from_its_content():
    mapper = mapper_for({"default_event_name": "Lead"}, "s", ["id"], ["email", "event_time"])
    first = mapper.map({"id": None, "email": "a@b.com", "event_time": 1}).event_id
    assert first != mapper.map({"id": None, "email": "c@d.com", "event_time": 1}).event_id


def test_record_missing_one_of_its_key_property_values_gets_an_id_from_its_content():
    # the key values present alone would give every such row of a shop the same id, and
    # Meta would drop all but the first as duplicates
    mapper = mapper_for(
        {"default_event_name": "Lead"}, "s", ["shop", "id"], ["email", "event_time"]
    )
    first = mapper.map({"shop": "eu", "id": None, "email": "a@b.com", "event_time": 1})
    second = mapper.map({"shop": "eu", "id": None, "email": "c@d.com", "event_time": 1})
    assert first.event_id != second.event_id


def test_record_with_its_columns_in_another_order_gets_the_same_id():
    mapper = flat_mapper()
    first = mapper.map({"email": "a@b.com", "event_time": 1}).event_id
    assert first == mapper.map({"event_time": 1, "email": "a@b.com"}).event_id


def test_deterministic_event_id_keeps_text_that_is_not_ascii_as_utf_8():
    assert (
        deterministic_event_id("commandes", ["Zoë"], "Purchase")
        == sha('["commandes",["Zoë"],"Purchase"]')[:32]
    )


def test_decimals_become_json_numbers_of_the_right_kind():
    record = {
        "event_time": Decimal("1795773600"),
        "value": Decimal("10"),
        "num_items": Decimal("3"),
        "predicted_ltv": Decimal("99.95"),
        "custom_data": {"margin": Decimal("2.50"), "units": Decimal("4")},
    }
    event = flat_mapper().map(record).event
    assert event["custom_data"] == {
        "margin": 2.5,
        "units": 4,
        "value": 10.0,
        "num_items": 3,
        "predicted_ltv": 99.95,
    }
    assert type(event["custom_data"]["value"]) is float
    assert type(event["custom_data"]["units"]) is int
    json.dumps(event, allow_nan=False)


def test_datetimes_in_custom_data_become_iso_text():
    record = {"event_time": 1, "custom_data": {"shipped": dt.datetime(2026, 11, 27, 10, 0)}}
    assert flat_mapper().map(record).event["custom_data"] == {"shipped": "2026-11-27T10:00:00"}


def test_values_of_other_types_in_custom_data_become_their_text():
    # a stream map's expression may give one: its `datetime` module has timedelta
    record = {"event_time": 1, "custom_data": {"wait": dt.timedelta(days=1)}}
    assert flat_mapper().map(record).event["custom_data"] == {"wait": "1 day, 0:00:00"}


def test_null_keys_of_a_custom_data_column_are_left_out():
    record = {"event_time": 1, "custom_data": {"value": None, "currency": "EUR"}}
    assert flat_mapper().map(record).event["custom_data"] == {"currency": "EUR"}


@pytest.mark.parametrize("empty", [None, "  "])
def test_an_empty_object_column_is_left_out_for_the_other_sources(empty):
    record = {"event_time": 1, "custom_data": empty, "value": 3}
    assert flat_mapper().map(record).event["custom_data"] == {"value": 3.0}


def test_contents_items_get_the_types_meta_expects():
    contents = [
        {"id": 17, "quantity": Decimal("2"), "item_price": "9.90", "note": Decimal("1")},
        {"id": "18", "quantity": None},
    ]
    event = flat_mapper().map({"event_time": 1, "contents": contents}).event
    assert event["custom_data"]["contents"] == [
        {"id": "17", "quantity": 2, "item_price": 9.9, "note": 1},
        {"id": "18"},
    ]


def test_contents_that_are_not_a_list_of_objects_are_a_mapping_error():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, "contents": ["SKU-1", "SKU-2"]})
    assert (error.value.field, error.value.message) == (
        "custom_data.contents",
        "is not a list of objects",
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"id": "18", "quantity": "two"}, "item 1's quantity is not a number"),
        ({"id": "18", "size": float("nan")}, "item 1 is not a finite number"),
    ],
    ids=["meta's key", "another key"],
)
def test_a_contents_item_that_cannot_be_converted_is_named_by_its_index(item, message):
    contents = [{"id": "17", "quantity": 1}, item]
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, "contents": contents})
    assert (error.value.field, error.value.message) == ("custom_data.contents", message)


NESTED_OBJECTS_CONFIG = {
    "streams": {
        "s": {
            "event_name": "Purchase",
            "action_source": "app",
            "fields": {
                "event_time": "ts",
                "original_event_data.event_time": "ordered_at",
                "original_event_data.order_id": "order_number",
                "app_data.advertiser_tracking_enabled": "tracking",
                "attribution_data.attribution_share": "share",
                "attribution_data.visit_time": "visited_at",
            },
        }
    }
}
NESTED_OBJECTS_EXPECTED = {
    "original_event_data": {"event_time": T_2026_11_27_10H_UTC, "order_id": "1001"},
    "app_data": {"advertiser_tracking_enabled": True},
    "attribution_data": {"attribution_share": 0.3, "visit_time": T_2026_11_27_10H_UTC},
}


def test_mapped_values_inside_objects_get_the_types_meta_expects():
    record = {
        "ts": 1,
        "ordered_at": dt.datetime(2026, 11, 27, 10, tzinfo=dt.timezone.utc),
        "order_number": 1001,
        "tracking": "true",
        "share": "0.3",
        "visited_at": "2026-11-27T10:00:00Z",
    }

    event = mapper_for(NESTED_OBJECTS_CONFIG).map(record).event

    assert {key: event[key] for key in NESTED_OBJECTS_EXPECTED} == NESTED_OBJECTS_EXPECTED


def test_whole_object_columns_get_the_types_meta_expects():
    record = {
        "event_time": 1,
        "original_event_data": '{"event_time": "2026-11-27T10:00:00Z", "order_id": 1001}',
        "app_data": {"advertiser_tracking_enabled": 1, "extinfo": ["a2", Decimal("1")]},
        "attribution_data": {"attribution_share": Decimal("0.3"), "visit_time": 1795773600000},
    }

    event = flat_mapper().map(record).event

    assert event["original_event_data"] == NESTED_OBJECTS_EXPECTED["original_event_data"]
    assert event["app_data"] == {"advertiser_tracking_enabled": True, "extinfo": ["a2", 1]}
    assert event["attribution_data"] == NESTED_OBJECTS_EXPECTED["attribution_data"]


def test_unknown_extinfo_items_are_sent_as_empty_text_keeping_every_index():
    record = {"event_time": 1, "app_data": {"extinfo": ["a2", "com.example", None, "1.0", None]}}

    event = flat_mapper().map(record).event

    assert event["app_data"]["extinfo"] == ["a2", "com.example", "", "1.0", ""]


def test_extinfo_given_as_json_text_is_sent_as_the_array_it_holds():
    # a text column: Meta takes an array only
    record = {"event_time": 1, "app_data": {"extinfo": '["i2", "com.example", null]'}}

    event = flat_mapper().map(record).event

    assert event["app_data"]["extinfo"] == ["i2", "com.example", ""]


@pytest.mark.parametrize(
    ("extinfo", "problem"),
    [("i2", "is text that is not a JSON array"), ({"os": "i2"}, "is a JSON object, not an array")],
)
def test_extinfo_that_is_no_array_makes_the_record_unmappable(extinfo, problem):
    record = {"event_time": 1, "app_data": {"extinfo": extinfo}}

    with pytest.raises(MappingError, match=f"app_data.extinfo.*{problem}"):
        flat_mapper().map(record)


def test_net_revenue_becomes_a_number_as_value_does():
    record = {"event_time": 1, "custom_data": {"net_revenue": "12.50"}}
    assert flat_mapper().map(record).event["custom_data"] == {"net_revenue": 12.5}


@pytest.mark.parametrize("tracking", [True, False])
def test_a_boolean_flag_is_sent_as_it_is(tracking):
    record = {"ts": 1, "tracking": tracking}
    event = mapper_for(NESTED_OBJECTS_CONFIG).map(record).event
    assert event["app_data"] == {"advertiser_tracking_enabled": tracking}


@pytest.mark.parametrize(
    ("raw", "tracking"),
    [(1.0, True), (Decimal("0.0"), False), ("1.0", True), (1, True), (0, False)],
)
def test_a_flag_written_as_a_number_one_or_zero_is_true_or_false(raw, tracking):
    # a tap fed by pandas writes a flag as a float
    event = mapper_for(NESTED_OBJECTS_CONFIG).map({"ts": 1, "tracking": raw}).event
    assert event["app_data"] == {"advertiser_tracking_enabled": tracking}


@pytest.mark.parametrize(
    ("column", "raw", "field"),
    [
        ("ordered_at", "yesterday", "original_event_data.event_time"),
        ("tracking", "maybe", "app_data.advertiser_tracking_enabled"),
        ("share", "a third", "attribution_data.attribution_share"),
    ],
)
def test_an_unusable_value_inside_an_object_is_a_mapping_error_naming_it(column, raw, field):
    record = {"ts": 1, column: raw}

    with pytest.raises(MappingError) as error:
        mapper_for(NESTED_OBJECTS_CONFIG).map(record)

    assert error.value.field == field
    assert raw not in str(error.value)


def test_content_ids_given_as_one_value_become_a_list_of_text():
    event = flat_mapper().map({"event_time": 1, "content_ids": 17}).event
    assert event["custom_data"]["content_ids"] == ["17"]


@pytest.mark.parametrize(
    "content_ids", [["a", "", None, " b "], ("a", "  ", "b"), '["a", "", " b"]']
)
def test_content_ids_leave_out_empty_items(content_ids):
    event = flat_mapper().map({"event_time": 1, "content_ids": content_ids}).event
    assert event["custom_data"]["content_ids"] == ["a", "b"]


@pytest.mark.parametrize("content_ids", [[], ["", None, " "], "[]"])
def test_content_ids_with_no_item_left_are_left_out(content_ids):
    mapper = flat_mapper()

    event = mapper.map({"event_time": 1, "content_ids": content_ids}).event
    with_value = mapper.map({"event_time": 1, "content_ids": content_ids, "value": 3}).event

    assert "custom_data" not in event
    assert with_value["custom_data"] == {"value": 3.0}


@pytest.mark.parametrize(("column", "raw"), [("value", "12,50"), ("num_items", "2.5")])
def test_value_of_the_wrong_type_is_a_mapping_error_naming_the_field(column, raw):
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, column: raw})
    assert error.value.field == f"custom_data.{column}"


def test_nan_in_custom_data_is_a_mapping_error_naming_its_field():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, "custom_data": {"score": float("nan")}})
    assert str(error.value) == (
        "stream 's', record, field 'custom_data.score': is not a finite number"
    )


def test_a_value_nested_deeper_than_converting_may_go_is_a_mapping_error_on_its_field():
    config = {"default_event_name": "Lead"}
    mapper = mapper_for(config, keys=["id"], columns=["id", "email", "event_time"])
    with pytest.raises(MappingError) as error:
        mapper.map({"id": 1, "event_time": 1, "custom_data": {"notes": _nested_too_deeply()}})
    assert (error.value.field, error.value.message) == (
        "custom_data.notes",
        "nests arrays and objects too deeply",
    )
    assert "jane@example.com" not in str(error.value)


def test_a_row_without_keys_nested_too_deeply_to_derive_an_event_id_is_a_mapping_error():
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, "notes": _nested_too_deeply()})
    assert error.value.field == "event_id"
    assert error.value.message.startswith(
        "the row nests arrays and objects too deeply to derive an event_id from it"
    )
    assert "jane@example.com" not in str(error.value)


def _nested_too_deeply() -> object:
    """Deeper than converting may go on any Python (how deep differs between versions: 3.12
    inlines comprehensions), while a row of the input could still hold it: msgspec decodes it."""
    nested: object = "jane@example.com"
    for _ in range(sys.getrecursionlimit() + 100):
        nested = [nested]
    return nested


def test_limited_data_use_options_get_list_and_int_types():
    record = {
        "event_time": 1,
        "data_processing_options": "LDU",
        "data_processing_options_country": "1",
        "data_processing_options_state": Decimal("1000"),
    }
    event = flat_mapper().map(record).event
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 1
    assert event["data_processing_options_state"] == 1000


def test_empty_data_processing_options_are_kept_as_explicitly_off():
    event = flat_mapper().map({"event_time": 1, "data_processing_options": []}).event
    assert event["data_processing_options"] == []


def test_unmapped_columns_stay_out_of_the_event_by_default():
    event = flat_mapper().map({"email": "a@b.com", "event_time": 1, "sku": "X1"}).event
    assert "custom_data" not in event


def test_unmapped_columns_go_to_custom_data_when_the_stream_says_so():
    config = {
        "streams": {
            "s": {
                "event_name": "Lead",
                "fields": {"user_data.ph": "mobile"},
                "unmapped_columns_to_custom_data": True,
            }
        }
    }
    record = {
        "email": "a@b.com",
        "mobile": "+1 616 954 7888",
        "event_time": 1,
        "sku": "X1",
        "price": Decimal("2.5"),
        "_sdc_extracted_at": "2026-11-27",
    }
    event = mapper_for(config).map(record).event
    assert event["custom_data"] == {"sku": "X1", "price": 2.5}


def test_blank_unmapped_columns_stay_out_of_custom_data_as_blank_mapped_columns_do():
    mapper = unmapped_to_custom_data_mapper(columns=["event_time", "email", "sku", "coupon"])

    event = mapper.map({"event_time": 1, "email": "a@b.com", "sku": "X1", "coupon": "  "}).event

    assert event["custom_data"] == {"sku": "X1"}


def test_blank_values_of_a_whole_custom_data_column_are_left_out():
    record = {"event_time": 1, "custom_data": {"coupon": "", "note": " ", "status": "paid"}}

    event = flat_mapper().map(record).event

    assert event["custom_data"] == {"status": "paid"}


def test_unmapped_columns_outside_the_schema_never_go_to_custom_data():
    mapper = unmapped_to_custom_data_mapper(columns=["event_time", "email", "sku"])
    record = {"event_time": 1, "email": "a@b.com", "sku": "X1", "mobile": "+1 616 954 7888"}

    event = mapper.map(record).event

    assert event["custom_data"] == {"sku": "X1"}
    assert mapper.custom_data_columns(record) == ("sku",)


def test_a_schema_without_columns_sends_no_unmapped_column():
    mapper = unmapped_to_custom_data_mapper(columns=())

    event = mapper.map({"event_time": 1, "email": "a@b.com", "mobile": "+1 616 954 7888"}).event

    assert "custom_data" not in event


def test_an_unmapped_column_never_replaces_a_mapped_or_constant_custom_data_key():
    mapper = unmapped_to_custom_data_mapper(
        fields={"custom_data.label": "product_label"},
        constants={"custom_data.brand": "Acme"},
    )
    record = {"event_time": 1, "product_label": "Mapped", "label": "Other", "brand": "Other"}

    assert mapper.map(record).event["custom_data"] == {"label": "Mapped", "brand": "Acme"}


def test_an_unmapped_column_never_replaces_a_key_of_the_custom_data_column():
    record = {"event_time": 1, "custom_data": {"label": "From the object"}, "label": "Other"}

    event = unmapped_to_custom_data_mapper().map(record).event

    assert event["custom_data"] == {"label": "From the object"}


@pytest.mark.parametrize("empty", [None, " "])
def test_an_unmapped_column_fills_a_key_the_custom_data_column_leaves_empty(empty):
    record = {"event_time": 1, "custom_data": {"label": empty, "sku": "X1"}, "label": "Other"}

    event = unmapped_to_custom_data_mapper().map(record).event

    assert event["custom_data"] == {"label": "Other", "sku": "X1"}


def test_an_unmapped_column_fills_a_custom_data_key_its_mapped_column_leaves_empty():
    mapper = unmapped_to_custom_data_mapper(fields={"custom_data.label": "product_label"})
    record = {"event_time": 1, "product_label": None, "label": "Other"}

    assert mapper.map(record).event["custom_data"] == {"label": "Other"}


def test_invalid_customer_information_is_dropped_and_reported():
    mapped = flat_mapper().map({"email": "not-an-email", "phone": "12", "event_time": 1})
    assert mapped.event["user_data"] == {}
    assert mapped.dropped == [DroppedValue("em", "invalid"), DroppedValue("ph", "invalid")]


def test_external_id_is_only_trimmed_when_hash_external_id_is_false():
    event = flat_mapper(hash_external_id=False).map({"external_id": " C-1 ", "event_time": 1})
    assert event.event["user_data"] == {"external_id": "C-1"}


def test_stream_without_mapping_or_recognisable_fields_gets_no_mapper():
    assert build_event_mapper("animals", ["id"], {}, ["id", "name", "description"]) is None


def test_stream_with_customer_information_but_no_event_name_gets_no_mapper():
    assert build_event_mapper("users", ["id"], {}, ["id", "email"]) is None


def test_stream_with_customer_information_and_default_event_name_is_mapped():
    config = {"default_event_name": "Lead"}
    assert build_event_mapper("users", ["id"], config, ["id", "email", "event_time"]) is not None


def test_stream_with_customer_information_and_an_event_name_but_no_event_time_gets_no_mapper():
    # its every record would be refused for want of a time: skipped, as what is not an event
    config = {"default_event_name": "Lead"}
    assert build_event_mapper("users", ["id"], config, ["id", "email", "created_at"]) is None


def test_stream_with_a_user_data_column_and_event_name_column_is_mapped():
    columns = ["event_name", "event_time", "user_data"]
    assert build_event_mapper("events", [], {}, columns) is not None


def test_stream_listed_in_streams_is_mapped_even_with_an_unknown_schema():
    assert build_event_mapper("animals", [], {"streams": {"animals": {}}}, []) is not None


def test_stream_config_can_be_found_by_glob_pattern_with_exact_name_first():
    config = {
        "streams": {
            "public-*": {"event_name": "Glob"},
            "public-orders": {"event_name": "Exact"},
        },
    }
    record = {"event_time": 1}
    assert mapper_for(config, "public-orders").map(record).event["event_name"] == "Exact"
    assert mapper_for(config, "public-refunds").map(record).event["event_name"] == "Glob"


def test_streams_setting_given_as_json_text_is_parsed():
    config = {"streams": json.dumps({"orders": {"event_name": "Purchase"}})}
    event = mapper_for(config, "orders").map({"event_time": 1}).event
    assert event["event_name"] == "Purchase"


@pytest.mark.parametrize(
    ("streams", "message"),
    [
        ('{"orders": {"event_name": "Purchase"}', "streams is text that is not a JSON object"),
        ('["orders"]', "streams must be an object keyed by stream name"),
    ],
)
def test_a_streams_setting_that_is_no_object_is_a_config_error_reported_with_the_others(
    streams, message
):
    config = {"streams": streams, "time_zone": "Mars/Olympus_Mons"}

    errors = mapping_config_errors(config)

    assert errors[0] == message
    assert [error.split(" ")[0] for error in errors[1:]] == ["time_zone"]
    with pytest.raises(MappingConfigError, match=message):
        build_event_mapper("orders", [], config, [])


@pytest.mark.parametrize(
    ("stream_config", "message"),
    [
        ({"event": "Purchase"}, "unknown setting"),
        ({"fields": {"user_data.email": "email"}}, "not a customer information parameter"),
        ({"fields": {"price": "total"}}, "not a Conversions API event parameter"),
        ({"fields": {"event_time.x": "t"}}, "single value"),
        (
            {"fields": {"custom_data.value.amount": "total"}},
            "custom_data.value is a single value or a list, not an object",
        ),
        (
            {"constants": {"custom_data.contents.0.id": "sku"}},
            "custom_data.contents is a single value or a list, not an object",
        ),
        ({"fields": {"user_data.em": 5}}, "must name a column"),
        ({"fields": {"event_id": ["id", "order_id"]}}, "only the hashed customer parameters"),
        ({"fields": {"user_data.fbp": ["fbp", "fbp2"]}}, "only the hashed customer parameters"),
        ({"fields": {"user_data.ph": []}}, "one or more column names"),
        ({"fields": {"user_data.ph": ["phone", ""]}}, "one or more column names"),
        ({"event_name": ""}, "non-empty"),
        ({"fields": ["em"]}, "must be an object"),
        ({"pixel_id": "pixel-2"}, r"pixel_id must be a pixel \(dataset\) ID: .*, got 'pixel-2'"),
        ({"pixel_id": ""}, "pixel_id must be a pixel"),
        ({"fields": {"custom_data..value": "total"}}, "'custom_data..value' has an empty part"),
        ("Purchase", "^streams.s must be an object$"),
    ],
)
def test_unusable_stream_settings_are_config_errors(stream_config, message):
    with pytest.raises(MappingConfigError, match=message):
        build_event_mapper("s", [], {"streams": {"s": stream_config}}, [])


@pytest.mark.parametrize(
    "parameter",
    sorted(
        (Event.__required_keys__ | Event.__optional_keys__)
        - {"user_data", "custom_data", "app_data", "original_event_data", "attribution_data"}
    ),
)
def test_every_single_value_parameter_of_an_event_can_be_mapped_from_a_column(parameter):
    config = {"streams": {"s": {"fields": {parameter: "column"}}}}

    assert mapping_config_errors(config) == []


def test_a_setting_that_must_be_a_boolean_quotes_the_value_as_its_json_wrote_it():
    config = {"streams": {"s": {"unmapped_columns_to_custom_data": Decimal("1.0")}}}
    assert mapping_config_errors(config) == [
        "streams.s.unmapped_columns_to_custom_data must be true or false (a JSON boolean), got 1.0"
    ]


@pytest.mark.parametrize(
    ("constants", "problem"),
    [
        ({"custom_data.value": "12,50"}, "custom_data.value: the text is not a number"),
        ({"custom_data.net_revenue": "n/a"}, "custom_data.net_revenue: the text is not a number"),
        ({"custom_data.num_items": 2.5}, "custom_data.num_items: the value is not a whole number"),
        ({"opt_out": "maybe"}, "opt_out: the text is not a boolean"),
        ({"event_time": "yesterday"}, "event_time: the text is neither an ISO 8601 time"),
        ({"custom_data": ["EUR"]}, "custom_data: the value is not an object"),
        ({"app_data.advertiser_tracking_enabled": "maybe"}, "enabled: the text is not a boolean"),
        ({"user_data.em": "not an e-mail"}, "user_data.em: the text is not a usable em (invalid)"),
        ({"user_data.ph": "07700 900123"}, "the text is not a usable ph (no_country_code)"),
        ({"custom_data.shipping.cost": float("inf")}, "shipping.cost: the value is not a finite"),
        ({"event_id": "same-for-all"}, "event_id: gives every event the same event_id"),
    ],
)
def test_a_constant_that_could_never_be_sent_is_a_config_error_naming_it(constants, problem):
    config = {"streams": {"s": {"constants": constants}}}

    errors = mapping_config_errors(config)

    assert len(errors) == 1 and errors[0].startswith("streams.s.constants.")
    assert problem in errors[0]
    assert "e-mail" not in errors[0]  # a user_data constant is not shown
    with pytest.raises(MappingConfigError):
        build_event_mapper("s", [], config, [])


@pytest.mark.parametrize(
    ("setting", "streams_own"), [("GB", None), (None, 44)], ids=["setting", "stream's own"]
)
def test_a_phone_constant_written_with_a_trunk_zero_is_read_in_the_phone_country_code(
    setting, streams_own
):
    entry = ORDERS_CONFIG["streams"]["public-orders"]
    stream = {**entry, "constants": {**entry.get("constants", {}), "user_data.ph": "07700 900123"}}
    if streams_own is not None:
        stream["phone_country_code"] = streams_own
    config = {"streams": {"s": stream}, "phone_country_code": setting}

    assert mapping_config_errors(config) == []
    event = mapper_for(config, columns=ORDERS_COLUMNS).map({**ORDER}).event
    assert event["user_data"]["ph"] == sha("447700900123")


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        ({"constants": {"user_data.fbc": "abc"}}, "user_data.fbc: Meta refuses every event"),
        ({"constants": {"user_data.fbp": "fb.1"}}, "user_data.fbp: Meta refuses every event"),
        (
            {"constants": {"data_processing_options": "limited"}},
            "data_processing_options: Meta refuses every event it is used in (data_processing_"
            'options_invalid): data_processing_options must be ["LDU"] or []',
        ),
        (
            {
                "constants": {
                    "data_processing_options": "LDU",
                    "data_processing_options_country": 1,
                    "data_processing_options_state": 5,
                }
            },
            "data_processing_options_country: Meta refuses every event",
        ),
        (
            {"event_name": "Purchase", "constants": {"custom_data.currency": "euro"}},
            "custom_data.currency: Meta refuses every event it is used in "
            "(purchase_currency_invalid): Purchase events need custom_data.currency",
        ),
        (
            {"action_source": "website", "constants": {"event_source_url": "www.shop.com"}},
            "event_source_url: Meta refuses every event it is used in (website_source_url_invalid)",
        ),
        (
            # a fallback for the rows whose column is empty: refused whenever it is used
            {"fields": {"user_data.fbc": "fbc"}, "constants": {"user_data.fbc": "abc"}},
            "user_data.fbc: Meta refuses every event",
        ),
        (
            {
                "fields": {"data_processing_options_country": "ldu_country"},
                "constants": {
                    "data_processing_options": "LDU",
                    "data_processing_options_country": 1,
                    "data_processing_options_state": 5,
                },
            },
            "data_processing_options_country: Meta refuses every event",
        ),
    ],
)
def test_a_constant_meta_refuses_in_every_event_is_a_config_error_naming_it(stream, problem):
    config = {"streams": {"s": stream}}

    errors = mapping_config_errors(config)

    assert len(errors) == 1 and errors[0].startswith("streams.s.constants.")
    assert problem in errors[0]
    with pytest.raises(MappingConfigError):
        build_event_mapper("s", [], config, [])


@pytest.mark.parametrize(
    "stream",
    [
        # other event names need no currency: a column decides the event name
        {
            "event_name": "Purchase",
            "fields": {"event_name": "kind"},
            "constants": {"custom_data.currency": "euro"},
        },
        {"constants": {"custom_data.currency": "euro"}},
        # a URL is needed on website events only, and the action source is a column's
        {"constants": {"event_source_url": "www.shop.com"}},
        {
            "fields": {"action_source": "channel"},
            "action_source": "website",
            "constants": {"event_source_url": "www.shop.com"},
        },
        # the state is a column's, which may make the pair valid
        {"constants": {"data_processing_options": "LDU", "data_processing_options_country": 1}},
        {
            "fields": {"data_processing_options_state": "ldu_state"},
            "constants": {
                "data_processing_options": "LDU",
                "data_processing_options_country": 1,
                "data_processing_options_state": 5,
            },
        },
    ],
)
def test_a_constant_meta_refuses_only_with_values_from_columns_is_accepted(stream):
    assert mapping_config_errors({"streams": {"s": stream}}) == []


def test_constants_meta_takes_in_every_event_are_accepted():
    stream = {
        "event_name": "Purchase",
        "action_source": "website",
        "constants": {
            "custom_data.currency": "EUR",
            "event_source_url": "https://shop.example.com/",
            "user_data.fbp": "fb.1.1596403881668.1116446470",
            "data_processing_options": "LDU",
            "data_processing_options_country": 1,
            "data_processing_options_state": 1000,
        },
    }

    assert mapping_config_errors({"streams": {"s": stream}}) == []


def test_every_unusable_constant_is_reported_at_once():
    constants = {"custom_data.value": "12,50", "custom_data.currency": "EUR", "opt_out": "?"}

    errors = mapping_config_errors({"streams": {"s": {"constants": constants}}})

    assert [error.split(":")[0] for error in errors] == [
        "streams.s.constants.custom_data.value",
        "streams.s.constants.opt_out",
    ]


@pytest.mark.parametrize(
    "constants",
    [
        {"custom_data.value": "12.50", "custom_data.num_items": 2.0, "opt_out": "no"},
        {"event_time": "2026-11-27T10:00:00Z", "custom_data.currency": " "},
        {"user_data.country": "France", "original_event_data.event_time": 1795773600},
        {"custom_data.currency": "EUR", "custom_data.tier": "a", "custom_data.tier.level": 2},
    ],
)
def test_constants_that_convert_are_accepted(constants):
    assert mapping_config_errors({"streams": {"s": {"constants": constants}}}) == []


@pytest.mark.parametrize("pixel_id", ["2233445566", 2233445566])
def test_a_stream_may_name_its_own_pixel(pixel_id):
    mapper = build_event_mapper("s", [], {"streams": {"s": {"pixel_id": pixel_id}}}, [])
    assert mapper is not None
    assert mapper.mapping.pixel_id == "2233445566"


def test_fields_columns_missing_from_the_schema_are_reported():
    config = {"streams": {"s": {"fields": {"user_data.em": "emial", "event_time": "ts"}}}}
    mapper = mapper_for(config, columns=["email", "ts"])
    assert mapper.unknown_columns == {"emial": ("user_data.em",)}


def test_records_with_different_columns_in_one_stream_each_map_correctly():
    mapper = flat_mapper()
    first = mapper.map({"email": "a@b.com", "event_time": 1}).event
    second = mapper.map({"phone": "+1 616 954 7888", "event_time": 1}).event
    assert first["user_data"] == {"em": sha("a@b.com")}
    assert second["user_data"] == {"ph": sha("16169547888")}


@pytest.mark.parametrize("hash_external_id", [True, False])
def test_values_of_hashed_user_data_keys_are_always_sha256_hex(hash_external_id):
    # The target trusts these keys instead of re-checking them (rules' trusted_hashed_keys).
    record = {
        "event_name": "Lead",
        "event_time": 1,
        "user_data": {
            "em": [" Mary@Example.com", MARY_SHA256.upper(), "a" * 40],
            "ph": 4915112345678,
            "fn": MARY_SHA256.upper(),
            "zp": "not a zip?!",
            "external_id": 42,
        },
    }
    mapper = mapper_for({"hash_external_id": hash_external_id}, columns=list(record))
    user_data = mapper.map(record).event["user_data"]
    checked = [key for key in user_data if key in mapper.hashed_user_data_keys]
    assert checked
    assert "external_id" in checked if hash_external_id else "external_id" not in checked
    for key in checked:
        values = user_data[key] if isinstance(user_data[key], list) else [user_data[key]]
        assert all(re.fullmatch("[0-9a-f]{64}", value) for value in values), key


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_value_that_is_not_a_finite_number_is_a_mapping_error(raw):
    with pytest.raises(MappingError) as error:
        flat_mapper().map({"event_time": 1, "value": raw})
    assert error.value.field == "custom_data.value"


def test_whole_number_columns_become_text_ids_and_integer_counts():
    record = {"event_time": 1, "event_id": 1001, "order_id": 1001, "num_items": 3}
    event = flat_mapper().map(record).event
    assert event["event_id"] == "1001"
    assert event["custom_data"] == {"order_id": "1001", "num_items": 3}


@pytest.mark.parametrize("number", [float("nan"), float("inf"), Decimal("-Infinity")])
def test_an_id_that_is_not_a_finite_number_is_a_mapping_error(number):
    # as text ("nan"), every such row would have the same event_id: Meta keeps one of them
    record = {**ORDER, "order_id": number}
    with pytest.raises(MappingError) as error:
        mapper_for(ORDERS_CONFIG, "public-orders", columns=ORDERS_COLUMNS).map(record)
    assert error.value.message == "is not a finite number"
    assert error.value.field == "event_id"


@pytest.mark.parametrize("column", ["order_id", "total"])
def test_a_number_past_a_floats_range_is_a_mapping_error_saying_so(column):
    # JSON's 1e400 arrives as a finite Decimal: "not a finite number" would send a user to
    # look for a NaN
    record = {**ORDER, column: Decimal("1E+400")}
    with pytest.raises(MappingError) as error:
        mapper_for(ORDERS_CONFIG, "public-orders", columns=ORDERS_COLUMNS).map(record)
    assert error.value.message == "is a number past a float's range (±1.8e308)"


def test_a_whole_number_past_a_floats_range_as_a_value_is_a_mapping_error_saying_so():
    record = {**ORDER, "total": 10**400}
    with pytest.raises(MappingError) as error:
        mapper_for(ORDERS_CONFIG, "public-orders", columns=ORDERS_COLUMNS).map(record)
    assert error.value.message == "is a number past a float's range (±1.8e308)"


def test_an_id_holding_a_fraction_is_sent_as_its_text():
    record = {"event_time": 1, "order_id": Decimal("1001.50")}
    assert flat_mapper().map(record).event["custom_data"] == {"order_id": "1001.50"}


def test_column_names_that_need_quoting_are_read_as_written():
    column = "e\"mail's\\col\nx"
    config = {"default_event_name": "Lead", "streams": {"s": {"fields": {"user_data.em": column}}}}
    mapper = mapper_for(config, columns=[column, "event_time"])
    event = mapper.map({column: "mary@example.com", "event_time": 1}).event
    assert event["user_data"] == {"em": sha("mary@example.com")}


def test_deeper_custom_data_paths_build_nested_objects():
    config = {
        "default_event_name": "Lead",
        "streams": {
            "s": {
                "fields": {
                    "custom_data.shipping.city": "ship_city",
                    "custom_data.shipping.zip": "ship_zip",
                }
            }
        },
    }
    mapper = mapper_for(config, columns=["ship_city", "ship_zip", "event_time"])
    event = mapper.map({"ship_city": "Lyon", "ship_zip": "69001", "event_time": 1}).event
    assert event["custom_data"] == {"shipping": {"city": "Lyon", "zip": "69001"}}


def test_blank_column_falls_back_to_the_constant_and_list_constants_are_kept():
    config = {
        "default_event_name": "Lead",
        "streams": {
            "s": {
                "fields": {"custom_data.currency": "cur"},
                "constants": {"custom_data.currency": "EUR", "custom_data.content_ids": ["a", 1]},
            }
        },
    }
    mapper = mapper_for(config, columns=["cur", "event_time"])
    event = mapper.map({"cur": "  ", "event_time": 1}).event
    assert event["custom_data"] == {"currency": "EUR", "content_ids": ["a", "1"]}


def test_an_entry_named_like_a_pattern_matches_the_stream_of_exactly_its_name():
    config = {"streams": {"sales[eu]": {}, "sales[us]": {}, "web-*": {}}}

    unmatched = unmatched_stream_entries(config, ["sales[eu]", "sales-u", "web-orders"])

    assert unmatched == ["sales[us]"]


@pytest.mark.parametrize(
    ("entry", "columns", "expected"),
    [
        ({"event_name": "Purchase"}, ["event_name"], "Purchase"),
        ({"event_name": "Purchase", "fields": {"event_name": "kind"}}, ["kind"], None),
        ({"event_name": "Purchase", "fields": {"event_name": "kind"}}, ["email"], "Purchase"),
        ({}, ["event_name"], None),
        ({}, ["email"], "Lead"),
    ],
    ids=["literal", "mapped-column", "mapped-column-absent", "alias-column", "default"],
)
def test_the_fixed_event_name_is_the_one_no_column_can_override(entry, columns, expected):
    config = {"default_event_name": "Lead", "streams": {"s": entry}}
    assert mapper_for(config, columns=columns).fixed_event_name(columns) == expected


COUNTRY = ("user_data", "country")


@pytest.mark.parametrize(
    ("stream", "columns"),
    [
        ({}, ["email", "country"]),  # named like its alias
        ({"fields": {"user_data.country": "ship_to"}}, ["email", "ship_to"]),
        ({"fields": {"user_data.country": "address.country"}}, ["email", "address"]),
        ({"constants": {"user_data.country": "FR"}}, ["email"]),
        ({}, ["email", "user_data"]),  # a whole user_data object may hold one
        ({"fields": {"user_data": "customer"}}, ["customer"]),
    ],
    ids=["alias", "column", "inside a column", "constant", "user_data column", "object column"],
)
def test_a_parameter_is_known_to_be_given_by_whatever_may_feed_it(stream, columns):
    mapper = mapper_for({"streams": {"s": {"event_name": "Lead", **stream}}}, columns=columns)
    assert mapper.may_give(COUNTRY, columns)


@pytest.mark.parametrize(
    ("stream", "columns"),
    [
        ({}, ["email", "phone"]),
        ({"fields": {"user_data.country": "ship_to"}}, ["email"]),  # a column the SCHEMA lacks
    ],
    ids=["nothing", "a missing column"],
)
def test_a_parameter_nothing_feeds_is_known_not_to_be_given(stream, columns):
    mapper = mapper_for({"streams": {"s": {"event_name": "Lead", **stream}}}, columns=columns)
    assert not mapper.may_give(COUNTRY, columns)
