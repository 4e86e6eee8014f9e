"""Fast paths for plain dicts and lists of texts give what the general code gives."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest

from target_meta_capi.capi.rules import validate_event
from target_meta_capi.mapping.values import _to_text_list, to_text
from target_meta_capi.summary import RunStats

SHA = "a" * 64
EVENT = {
    "event_name": "Purchase",
    "event_time": 0,
    "action_source": "website",
    "event_source_url": "https://shop.example.com/",
    "user_data": {"em": SHA, "client_user_agent": "", "fbp": "not-a-cookie"},
    "custom_data": {"currency": "usd"},
}


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        ([" SKU-1 ", "SKU-2", ""], ["SKU-1", "SKU-2", ""]),
        ([], []),
        (["a", None, 3, 2.0], ["a", "3", "2"]),
        (("x ", " y"), ["x", "y"]),
    ],
)
def test_text_list_is_each_item_as_text(value: list, texts: list[str]) -> None:
    assert [to_text(item) for item in value if item is not None] == texts
    assert _to_text_list(value) == texts


def test_text_list_holding_a_list_is_refused_as_its_item_is() -> None:
    with pytest.raises(ValueError, match=r"^is an array, not a text$"):
        to_text(["nested"])
    with pytest.raises(ValueError, match=r"^is an array, not a text$"):
        _to_text_list([["nested"]])


def test_rules_give_the_same_violations_for_a_dict_and_another_mapping() -> None:
    now = time.time()
    event = {**EVENT, "event_time": int(now)}
    proxied = {
        **event,
        "user_data": MappingProxyType(event["user_data"]),
        "custom_data": MappingProxyType(event["custom_data"]),
    }
    violations = validate_event(event, now=now)
    assert violations  # user agent missing, fbp invalid, value missing
    assert validate_event(proxied, now=now) == violations


def test_rules_treat_a_user_data_that_is_no_mapping_as_missing() -> None:
    now = time.time()
    rules = {
        violation.rule
        for violation in validate_event({**EVENT, "event_time": int(now), "user_data": []}, now=now)
    }
    assert {"user_data_missing_match_key", "website_user_agent_missing"} <= rules


def test_run_statistics_count_match_keys_of_any_mapping_alike() -> None:
    by_dict, by_proxy = RunStats(), RunStats()
    by_dict.event_mapped("orders", {"user_data": {"em": SHA, "ph": ""}}, [])
    by_proxy.event_mapped("orders", {"user_data": MappingProxyType({"em": SHA, "ph": ""})}, [])
    assert by_dict.snapshot()["streams"] == by_proxy.snapshot()["streams"]
