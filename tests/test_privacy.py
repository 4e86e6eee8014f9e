"""capi/privacy.py's masking of event fields, beyond what the tests of customer information
outside user_data (test_customer_information_outside_user_data.py) drive."""

import pytest

from target_meta_capi.capi.privacy import (
    MASK,
    field_texts,
    mask_fields,
    page_url_secrets,
    redact_user_data,
    shown_event,
    shown_url,
    unhashed_user_data_values,
    url_secrets,
)


def test_mask_fields_leaves_a_path_through_a_value_that_is_no_object_as_it_is() -> None:
    event = {"custom_data": "a note from the buyer", "event_name": "Purchase"}
    assert mask_fields(event, [("custom_data", "buyer")]) == {
        "custom_data": "a note from the buyer",
        "event_name": "Purchase",
    }


DIGEST = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"


def test_redact_user_data_masks_every_user_data_value_but_sha256_digests() -> None:
    event = {
        "event_name": "Purchase",
        "user_data": {
            "em": DIGEST,
            "client_ip_address": "203.0.113.9",
            "fbc": "fb.1.1554763741205.AbCdEf",
            "lead_id": 525645896321548,
        },
    }

    assert redact_user_data(event) == {
        "event_name": "Purchase",
        "user_data": {"em": DIGEST, "client_ip_address": MASK, "fbc": MASK, "lead_id": MASK},
    }


def test_redact_user_data_masks_list_items_one_by_one_and_a_nested_list_whole() -> None:
    event = {"user_data": {"em": [DIGEST, "mary@example.com", ["nested@example.com"]]}}

    assert redact_user_data(event) == {"user_data": {"em": [DIGEST, MASK, MASK]}}


def test_unhashed_user_data_values_are_every_masked_value_as_text_nested_lists_too() -> None:
    event = {
        "user_data": {
            "em": DIGEST,
            "client_ip_address": "203.0.113.9",
            "ph": [DIGEST, ["+1 616 954 7888"], None, "mary@example.com"],
            "lead_id": 525645896321548,
        }
    }

    assert list(unhashed_user_data_values(event)) == [
        "203.0.113.9",
        "+1 616 954 7888",
        "mary@example.com",
        "525645896321548",
    ]


def test_unhashed_user_data_values_are_an_objects_values_each_by_itself() -> None:
    # an answer quoting the object writes it as JSON, not as str() shows a dict
    event = {"user_data": {"client_user_agent": {"ua": "LeakAgent/9.9", "ip": ["203.0.113.7"]}}}

    assert list(unhashed_user_data_values(event)) == ["LeakAgent/9.9", "203.0.113.7"]


def test_field_texts_are_the_values_at_the_paths_a_lists_items_one_by_one() -> None:
    event = {"custom_data": {"emails": ["mary@example.com", "jo@example.com"]}, "note": "hi"}

    assert list(field_texts(event, [("custom_data", "emails"), ("note", "text")])) == [
        "mary@example.com",
        "jo@example.com",
    ]


def test_field_texts_include_a_sha256_digest_mask_fields_masks_there_too() -> None:
    event = {"custom_data": {"email_hash": DIGEST}}

    assert list(field_texts(event, [("custom_data", "email_hash")])) == [DIGEST]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://graph.facebook.com/v19.0", "https://graph.facebook.com/v19.0"),
        (
            "https://me:pw@graph.example/v19.0/1/events?access_token=tok#frag",
            f"https://{MASK}@graph.example/v19.0/1/events?{MASK}#{MASK}",
        ),
        ("https://graph.example/v19.0#token", f"https://graph.example/v19.0#{MASK}"),
        ("https://graph.example/v19.0?token", f"https://graph.example/v19.0?{MASK}"),
        # a password holding "?": its userinfo runs into the query, one mask for both
        ("https://me:p?w@graph.example/v19.0?q=1", f"https://{MASK}"),
        # malformed, and masked as far as it goes
        ("me:pw@graph.example", f"{MASK}@graph.example"),
        ("me:pw@graph.example/x?next=https://a", f"{MASK}@graph.example/x?{MASK}"),
        # a "://" in the path is no scheme's: the userinfo before it is still masked
        ("me:pw@graph.example/x://y", f"{MASK}@graph.example/x://y"),
        ("me:pw@graph.example://", f"{MASK}@graph.example://"),
        ("://me:pw@graph.example", f"://{MASK}@graph.example"),
        ("?token", f"?{MASK}"),
        ("#token", f"#{MASK}"),
    ],
)
def test_shown_url_masks_userinfo_query_and_fragment(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_url_secrets_are_the_userinfo_query_and_fragment_shown_url_masks() -> None:
    url = "https://me:pw@graph.example/v19.0?access_token=tok#frag"

    assert url_secrets(url) == ["me:pw", "access_token=tok", "frag"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://shop.example/thanks?email=jane@example.com",
            f"https://shop.example/thanks?{MASK}",
        ),
        ("https://shop.example/thanks#jane@example.com", f"https://shop.example/thanks#{MASK}"),
        ("https://shop.example/a?u=1#b", f"https://shop.example/a?{MASK}"),
        ("https://shop.example/thanks", "https://shop.example/thanks"),
    ],
)
def test_shown_event_masks_the_query_and_fragment_of_its_page_urls(url: str, shown: str) -> None:
    event = {"event_name": "Lead", "event_source_url": url, "referrer_url": url}

    assert shown_event(event, []) == {**event, "event_source_url": shown, "referrer_url": shown}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # a profile's or channel's page: the "@" is no userinfo's, the host is medium.com
        (
            "https://medium.com/@jane/a-post?utm_source=mail",
            f"https://medium.com/@jane/a-post?{MASK}",
        ),
        ("https://www.youtube.com/@shop", "https://www.youtube.com/@shop"),
        (
            "https://shop.example/unsubscribe/jane@example.com",
            f"https://shop.example/unsubscribe/{MASK}",
        ),
        ("https://jane:pw@shop.example/thanks", f"https://{MASK}@shop.example/thanks"),
        # percent-encoded, as a site writes an address in a path
        (
            "https://shop.example/unsubscribe/jane.doe%40example.com",
            f"https://shop.example/unsubscribe/{MASK}",
        ),
        # an apostrophe is an e-mail address's too: none of it is left
        (
            "https://shop.example/unsubscribe/o'brien@example.com",
            f"https://shop.example/unsubscribe/{MASK}",
        ),
    ],
)
def test_shown_event_keeps_the_host_of_a_page_url_with_an_at_sign_in_its_path(
    url: str, shown: str
) -> None:
    event = {"event_name": "ViewContent", "event_source_url": url}

    assert shown_event(event, [])["event_source_url"] == shown


def test_page_url_secrets_hold_an_e_mail_address_in_a_page_urls_path() -> None:
    event = {"event_source_url": "https://shop.example/unsubscribe/jane@example.com?src=mail"}

    assert list(page_url_secrets(event)) == ["jane@example.com", "src=mail"]


def test_page_url_secrets_hold_a_percent_encoded_e_mail_address_in_a_page_urls_path() -> None:
    event = {"event_source_url": "https://shop.example/unsubscribe/jane%40example.com"}

    assert list(page_url_secrets(event)) == ["jane%40example.com"]


def test_page_url_secrets_are_what_shown_event_masks_of_page_urls() -> None:
    event = {
        "event_source_url": "https://shop.example/thanks?email=jane@example.com",
        "referrer_url": "https://mail.example/#inbox/jane",
        "custom_data": {"link": "https://shop.example/?not=a-page-url"},
    }

    assert list(page_url_secrets(event)) == ["email=jane@example.com", "inbox/jane"]


def test_shown_event_masks_what_a_visitor_typed_and_the_devices_details() -> None:
    event = {
        "event_name": "Search",
        "custom_data": {"search_string": "gift for jane doe", "currency": "usd"},
        "app_data": {"extinfo": ["i2", "com.example.shop", "iPhone14,2", "Europe/Berlin"]},
    }

    assert shown_event(event, []) == {
        "event_name": "Search",
        "custom_data": {"search_string": MASK, "currency": "usd"},
        "app_data": {"extinfo": MASK},
    }


def test_shown_event_masks_custom_properties_keeping_metas_own_parameters() -> None:
    # a custom property holds whatever a table has: a note, an address, a gift's recipient
    event = {
        "custom_data": {
            "value": 49.9,
            "currency": "usd",
            "order_id": "A-17",
            "note": "call Jane at +1 616 954 7888",
            "shipping": {"name": "Jane Doe", "street": "1 Main St"},
            "coupon": None,
            "contents": [{"id": "SKU-1", "quantity": 2, "gift_to": "Jane Doe"}, "SKU-2"],
        }
    }

    assert shown_event(event, []) == {
        "custom_data": {
            "value": 49.9,
            "currency": "usd",
            "order_id": "A-17",
            "note": MASK,
            "shipping": MASK,
            "coupon": None,
            "contents": [{"id": "SKU-1", "quantity": 2, "gift_to": MASK}, "SKU-2"],
        }
    }
