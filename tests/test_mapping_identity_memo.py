"""EventMapper memoizes a customer's hashed user_data on the raw values of its columns.

Every event must still get exactly what normalize_user_data gives for the values mapped to it
(same keys, same order, same dropped values) and a user_data dict of its own.
"""

from __future__ import annotations

import json

import pytest

import target_meta_capi.mapping as mapping_module
from target_meta_capi.capi.normalize import DroppedValue, normalize_user_data
from target_meta_capi.mapping import build_event_mapper

CONFIG = {
    "streams": {
        "orders": {
            "event_name": "Purchase",
            "action_source": "website",
            "fields": {
                "event_time": "created_at",
                "user_data.em": "email",
                "user_data.ph": "phone",
                "user_data.fn": "first_name",
                "user_data.zp": "zip",
                "user_data.client_ip_address": "ip",
            },
        }
    }
}
ORDER = {
    "created_at": 1_795_773_600,
    "email": " Mary@Example.com ",
    "phone": "12",  # too short: dropped
    "first_name": "Mary",
    "zip": "94035",
    "ip": "203.0.113.7",
}


def orders_mapper(config=CONFIG):
    mapper = build_event_mapper("orders", [], config, list(ORDER))
    assert mapper is not None
    return mapper


def expected_user_data(record):
    """normalize_user_data of the non-empty mapped values (the mapper skips empty ones)."""
    raw = {
        "em": record["email"],
        "ph": record["phone"],
        "fn": record["first_name"],
        "zp": record["zip"],
        "client_ip_address": record["ip"],
    }
    return normalize_user_data(
        {
            key: value
            for key, value in raw.items()
            if value is not None and not (isinstance(value, str) and not value.strip())
        }
    )


def test_repeated_customer_gets_what_normalize_user_data_gives_in_the_same_order():
    mapper = orders_mapper()
    for ip in ("203.0.113.7", "198.51.100.9"):
        record = {**ORDER, "ip": ip}
        mapped = mapper.map(record)
        expected = expected_user_data(record)
        assert json.dumps(mapped.event["user_data"]) == json.dumps(expected.user_data)
        assert mapped.dropped == expected.dropped


def test_dropped_values_are_reported_for_every_event_of_a_repeated_customer():
    mapper = orders_mapper()
    for _ in range(3):
        assert mapper.map(dict(ORDER)).dropped == [DroppedValue("ph", "invalid")]


def test_each_event_of_a_repeated_customer_has_its_own_user_data_and_dropped_list():
    mapper = orders_mapper()
    first = mapper.map(dict(ORDER))
    first.event["user_data"]["em"] = "changed by a caller"
    first.dropped.clear()
    second = mapper.map(dict(ORDER))
    assert second.event["user_data"] == expected_user_data(ORDER).user_data
    assert second.dropped == [DroppedValue("ph", "invalid")]


@pytest.mark.parametrize(
    "changes",
    [
        {"zip": 94035},  # a number: not a text for the memo
        {"phone": None, "zip": None, "first_name": None},  # a single hashed value
        {"email": "   ", "phone": None},  # blank and missing values
        {"ip": ["203.0.113.7"]},  # an unhashed value that is not a text
        {"ip": []},  # an empty list: dropped as empty
    ],
)
def test_values_outside_the_memo_give_the_same_result_as_normalize_user_data(changes):
    record = {**ORDER, **changes}
    mapper = orders_mapper()
    for _ in range(2):  # first sight and repeat
        mapped = mapper.map(record)
        expected = expected_user_data(record)
        assert json.dumps(mapped.event["user_data"]) == json.dumps(expected.user_data)
        assert mapped.dropped == expected.dropped


def test_a_number_and_a_boolean_that_compare_equal_are_not_mixed_up():
    mapper = orders_mapper()
    with_number = mapper.map({**ORDER, "phone": 1, "zip": 1}).event["user_data"]
    with_boolean = mapper.map({**ORDER, "phone": True, "zip": True}).event["user_data"]
    assert "zp" in with_number
    assert "zp" not in with_boolean


def test_memo_stays_correct_after_it_is_cleared_when_full(monkeypatch):
    monkeypatch.setattr(mapping_module, "_MAX_CACHED_IDENTITIES", 2)
    mapper = orders_mapper()
    customers = [{**ORDER, "first_name": name} for name in ("Ann", "Bob", "Cy", "Ann", "Bob")]
    for record in customers:
        assert mapper.map(record).event["user_data"] == expected_user_data(record).user_data


def test_user_data_object_column_merges_with_mapped_columns_as_before():
    config = json.loads(json.dumps(CONFIG))
    config["streams"]["orders"]["fields"]["user_data"] = "profile"
    mapper = build_event_mapper("orders", [], config, [*ORDER, "profile"])
    assert mapper is not None
    record = {**ORDER, "profile": {"ct": "Paris", "em": "other@example.com"}}
    mapped = mapper.map(record)
    expected = normalize_user_data(
        {
            "ct": "Paris",
            "em": record["email"],
            "ph": "12",
            "fn": "Mary",
            "zp": "94035",
            "client_ip_address": "203.0.113.7",
        }
    )
    assert mapped.event["user_data"] == expected.user_data
