"""normalize_user_data memoizes a customer's hashed values as a group: results stay per call.

normalize_hashed_values gives the same without that memo, for a caller that keeps its own.
"""

from __future__ import annotations

import datetime as dt

import pytest

from target_meta_capi.capi import normalize
from target_meta_capi.capi.normalize import (
    DroppedValue,
    normalize_hashed_values,
    normalize_user_data,
    sha256_hex,
)

CUSTOMER = {
    "em": " Mary.Smith@Example.COM ",
    "fn": "Mary",
    "ph": "12",  # too short to be a phone: dropped
    "client_ip_address": "203.0.113.7",
}


def test_repeated_customer_gets_the_same_hashes_and_the_event_its_own_unhashed_values() -> None:
    first = normalize_user_data(CUSTOMER)
    second = normalize_user_data({**CUSTOMER, "client_ip_address": "198.51.100.9"})
    assert first.user_data["em"] == second.user_data["em"] == sha256_hex("mary.smith@example.com")
    assert first.user_data["fn"] == sha256_hex("mary")
    assert first.user_data["client_ip_address"] == "203.0.113.7"
    assert second.user_data["client_ip_address"] == "198.51.100.9"


def test_dropped_values_are_reported_on_every_call_not_only_the_first() -> None:
    for _ in range(2):
        assert normalize_user_data(CUSTOMER).dropped == [DroppedValue("ph", "invalid")]


def test_each_call_returns_its_own_user_data_dict() -> None:
    normalize_user_data(CUSTOMER).user_data["em"] = "changed by a caller"
    assert normalize_user_data(CUSTOMER).user_data["em"] == sha256_hex("mary.smith@example.com")


def test_grouped_and_key_by_key_paths_agree_on_mixed_value_types() -> None:
    mixed = {**CUSTOMER, "em": [" Mary.Smith@Example.COM ", "mary.smith@example.com"], "zp": 94035}
    normalized = normalize_user_data(mixed)
    assert normalized.user_data["em"] == [sha256_hex("mary.smith@example.com")]
    assert normalized.user_data["zp"] == sha256_hex("94035")
    assert normalized.user_data["fn"] == sha256_hex("mary")


@pytest.mark.parametrize(
    "hashed",
    [
        {"em": " Mary.Smith@Example.COM ", "fn": "Mary", "ph": "12"},
        {"db": dt.date(1990, 5, 17), "em": "mary@example.com", "fn": "Mary"},  # texts first
        {"db": dt.date(1990, 5, 17), "fn": "Mary"},  # a single text: in the given order
        {"em": "   ", "zp": "94035-1234", "external_id": "CUST-7"},
        # values this module's rules drop or rewrite: a float, a date out of range, an extension
        {"ph": "616-954-7888 ext 12", "zp": 94035.0, "db": dt.date(1800, 1, 1), "fn": "Mary"},
    ],
)
def test_hashed_values_alone_give_what_normalize_user_data_gives_in_the_same_order(
    hashed,
) -> None:
    alone = normalize_hashed_values(hashed)
    grouped = normalize_user_data(hashed)
    assert list(alone.user_data.items()) == list(grouped.user_data.items())
    assert alone.dropped == grouped.dropped


def test_hashed_values_alone_are_not_kept_in_the_group_memo() -> None:
    normalize._normalize_identity.cache_clear()
    normalize_hashed_values({"em": "only.once@example.com", "fn": "Mary"})
    assert normalize._normalize_identity.cache_info().currsize == 0


def test_hashed_values_alone_leave_external_id_unhashed_when_asked() -> None:
    alone = normalize_hashed_values(
        {"external_id": " Cust-7 ", "fn": "Mary"}, hash_external_id=False
    )
    assert alone.user_data["external_id"] == "Cust-7"
