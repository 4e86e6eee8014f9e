"""What a user of Meta's business SDK (facebook_business.adobjects.serverside) reaches for,
sent through this client to the local sandbox."""

from __future__ import annotations

import hashlib
import time
from typing import Any, get_args

import pytest

from target_meta_capi.capi import (
    ConfigurationError,
    Content,
    CustomData,
    Event,
    EventRequest,
    InvalidRequestError,
    UserData,
    ext_info,
    normalize_user_data,
)
from target_meta_capi.capi.normalize import MATCH_KEYS
from target_meta_capi.capi.retry import RetryPolicy
from target_meta_capi.capi.rules import ACTION_SOURCES
from target_meta_capi.capi.shapes import ActionSource

TOKEN = "sandbox-token"
PIXEL = "1234567890"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def app_event(user_data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "event_name": "Lead",
        "event_time": int(time.time()) - 60,
        "event_id": "lead-1",
        "action_source": "app",
        "user_data": user_data,
        **fields,
    }


def send(sandbox, *events: dict[str, Any]) -> None:
    EventRequest(
        pixel_id=PIXEL,
        events=list(events),
        access_token=TOKEN,
        graph_url=sandbox.url,
        retry_policy=RetryPolicy(max_retries=0),
    ).execute()


def test_partial_names_and_birth_parts_are_sent_hashed_as_metas_sdk_sends_them(sandbox):
    normalized = normalize_user_data(
        {
            "f5first": "Maryann",
            "f5last": "Smithson",
            "fi": "M",
            "dobd": "7",
            "dobm": 2,
            "doby": "1997",
        }
    )
    assert normalized.dropped == []

    send(sandbox, app_event(normalized.user_data))

    assert sandbox.accepted_events()[0]["event"]["user_data"] == {
        "f5first": sha("marya"),
        "f5last": sha("smith"),
        "fi": sha("m"),
        "dobd": sha("07"),
        "dobm": sha("02"),
        "doby": sha("1997"),
    }


@pytest.mark.parametrize("key", ["f5first", "f5last", "fi", "dobd", "dobm", "doby"])
def test_a_partial_name_or_birth_part_sent_unhashed_is_refused(sandbox, key):
    with pytest.raises(InvalidRequestError) as caught:
        send(sandbox, app_event({"em": sha("a@b.co"), key: "07"}))

    assert caught.value.subcode == 2804011  # the sandbox's user_data_not_hashed
    assert sandbox.accepted_events() == []


# --- typed events (capi/shapes.py) ----------------------------------------------------------


def test_the_user_data_type_names_every_key_normalize_user_data_knows():
    assert set(UserData.__annotations__) == MATCH_KEYS


def test_the_action_source_type_names_exactly_the_action_sources_meta_documents():
    # written out from Meta's list, not read from the module: the rules take their set from
    # the type, so a value missing or added there would change both
    documented = {
        "email", "website", "app", "phone_call", "chat", "physical_store",
        "system_generated", "business_messaging", "other",
    }  # fmt: skip
    assert set(get_args(ActionSource)) == documented
    assert documented == ACTION_SOURCES


def test_event_requires_what_meta_requires_of_every_event():
    assert Event.__required_keys__ == {"event_name", "event_time", "action_source", "user_data"}


def test_every_field_of_a_typed_event_reaches_graph_as_it_was_given(sandbox):
    contents: list[Content] = [
        {
            "id": "sku-1",
            "quantity": 2,
            "item_price": 9.95,
            "title": "Mug",
            "description": "Blue",
            "brand": "Acme",
            "category": "kitchen",
            "delivery_category": "home_delivery",
        },
    ]
    custom_data: CustomData = {
        "value": 19.9,
        "net_revenue": 15.0,
        "currency": "EUR",
        "content_name": "Mug",
        "content_category": "kitchen",
        "content_ids": ["sku-1"],
        "contents": contents,
        "content_type": "product",
        "order_id": "o-1",
        "predicted_ltv": 120.0,
        "num_items": 2,
        "status": "paid",
        "search_string": "mug",
        "delivery_category": "home_delivery",
        "item_number": "i-1",
    }
    custom_data["loyalty_tier"] = "gold"  # type: ignore[typeddict-unknown-key]  # Meta's custom_properties
    event: Event = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {
            "em": sha("a@b.co"),
            "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD",
        },
        "event_id": "o-1",
        "referrer_url": "https://shop.example/",
        "opt_out": False,
        "custom_data": custom_data,
        "data_processing_options": ["LDU"],
        "data_processing_options_country": 1,
        "data_processing_options_state": 1000,
        "original_event_data": {
            "event_name": "Lead",
            "event_time": 1_760_000_000,
            "order_id": "o-1",
            "event_id": "lead-1",
        },
        "attribution_data": {
            "scope": "click",
            "visit_time": 1_760_000_000,
            "ad_id": "1",
            "attribution_share": 0.5,
            "attribution_model": "last_click",
        },
        "advanced_measurement_table": "amt",
    }

    send(sandbox, dict(event))

    assert sandbox.accepted_events()[0]["event"] == event


# Meta's ExtendedDeviceInfo indices, written out: a wrong order in ext_info must fail here
EXT_INFO_INDICES = {
    "ext_info_version": 0,
    "app_package_name": 1,
    "short_version": 2,
    "long_version": 3,
    "os_version": 4,
    "device_model_name": 5,
    "locale": 6,
    "timezone_abbreviation": 7,
    "carrier": 8,
    "screen_width": 9,
    "screen_height": 10,
    "screen_density": 11,
    "cpu_core_count": 12,
    "total_disk_space_gb": 13,
    "free_disk_space_gb": 14,
    "device_time_zone": 15,
}


def test_ext_info_puts_each_value_at_metas_index_as_text(sandbox):
    values: dict[str, Any] = {name: f"v{index}" for name, index in EXT_INFO_INDICES.items()}
    values.update(ext_info_version="a2", screen_width=1080, screen_density=2.75)
    extinfo = ext_info(**values)
    event = app_event(
        {"anon_id": "install-1"},
        app_data={
            "advertiser_tracking_enabled": True,
            "application_tracking_enabled": True,
            "extinfo": extinfo,
        },
    )

    send(sandbox, event)

    sent = sandbox.accepted_events()[0]["event"]["app_data"]["extinfo"]
    assert sent == [str(values[name]) for name in EXT_INFO_INDICES]
    assert sent[0] == "a2" and sent[9] == "1080" and sent[11] == "2.75"


@pytest.mark.parametrize("version", ["x9", "a1", "A2", "", None])
def test_ext_info_refuses_a_version_other_than_metas_a2_and_i2(version):
    with pytest.raises(ConfigurationError, match="must be 'a2' \\(Android\\) or 'i2' \\(iOS\\)"):
        ext_info(version)


def test_ext_info_fills_what_is_not_given_with_empty_strings_not_null():
    assert ext_info("i2", os_version="17.4") == ["i2", "", "", "", "17.4"] + [""] * 11
