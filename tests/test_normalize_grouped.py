"""normalize_user_data memoizes a customer's hashed values as a group: results stay per call."""

from __future__ import annotations

from target_meta_capi.capi.normalize import (
    DroppedValue,
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


def test_a_group_not_memoized_gives_the_same_result_and_is_not_kept() -> None:
    from target_meta_capi.capi import normalize

    customer = {**CUSTOMER, "em": "only.once@example.com"}
    normalize._normalize_identity.cache_clear()
    unkept = normalize_user_data(customer, memoize_group=False)
    assert normalize._normalize_identity.cache_info().currsize == 0
    kept = normalize_user_data(customer)
    assert normalize._normalize_identity.cache_info().currsize == 1
    assert (unkept.user_data, unkept.dropped) == (kept.user_data, kept.dropped)
