"""Local validation of a Conversions API event (capi/rules.py)."""

from __future__ import annotations

import copy
import time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

from target_meta_capi.capi.rules import RULES, validate_event

NOW = 1_760_000_000
# Meta's limits, written out rather than read from the module under test: a wrong constant
# there must fail these tests, not move them along with it.
SEVEN_DAYS = 7 * 24 * 3600
SIXTY_TWO_DAYS = 62 * 24 * 3600
HASH = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"  # sha256("mary")


def valid_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": NOW - 3600,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout",
        "user_data": {"em": [HASH], "client_user_agent": "Mozilla/5.0"},
        "custom_data": {"value": 12.5, "currency": "EUR"},
    }
    event.update(overrides)
    return event


def rules_broken(event: dict[str, Any], **kwargs: Any) -> list[str]:
    return [violation.rule for violation in validate_event(event, now=NOW, **kwargs)]


def with_user_data(**user_data: Any) -> dict[str, Any]:
    return valid_event(action_source="app", user_data=user_data)


def test_valid_event_has_no_violations():
    assert validate_event(valid_event(), now=NOW) == []


def test_rule_names_are_the_contracts():
    assert set(RULES) == {
        "event_name_missing",
        "event_time_invalid",
        "event_time_too_old",
        "event_time_in_future",
        "action_source_invalid",
        "website_user_agent_missing",
        "website_source_url_invalid",
        "user_data_missing_match_key",
        "user_data_not_hashed",
        "fbc_invalid",
        "fbp_invalid",
        "purchase_value_missing",
        "purchase_currency_invalid",
        "data_processing_options_invalid",
    }


def test_every_rule_has_a_2804_subcode():
    assert all(2804000 < spec.subcode < 2805000 for spec in RULES.values())
    assert len({spec.subcode for spec in RULES.values()}) == len(RULES)


def test_violation_carries_rule_subcode():
    [violation] = validate_event(valid_event(event_time=NOW - SEVEN_DAYS - 1), now=NOW)
    assert (violation.rule, violation.field, violation.subcode) == (
        "event_time_too_old",
        "event_time",
        2804003,
    )


@pytest.mark.parametrize("event_name", [None, "", "   ", 42])
def test_event_name_must_be_non_empty_string(event_name):
    assert rules_broken(valid_event(event_name=event_name)) == ["event_name_missing"]


def test_missing_event_name_is_reported():
    event = valid_event()
    del event["event_name"]
    assert rules_broken(event) == ["event_name_missing"]


@pytest.mark.parametrize("event_time", [None, float(NOW), str(NOW), True, NOW * 1.0 + 0.5])
def test_event_time_must_be_an_integer(event_time):
    assert rules_broken(valid_event(event_time=event_time)) == ["event_time_invalid"]


def test_event_time_exactly_seven_days_old_is_accepted():
    assert rules_broken(valid_event(event_time=NOW - SEVEN_DAYS)) == []


def test_event_time_older_than_seven_days_is_too_old():
    assert rules_broken(valid_event(event_time=NOW - SEVEN_DAYS - 1)) == ["event_time_too_old"]


def test_event_time_in_milliseconds_is_in_the_future():
    assert rules_broken(valid_event(event_time=NOW * 1000)) == ["event_time_in_future"]


def test_physical_store_events_may_be_62_days_old():
    event = valid_event(action_source="physical_store", event_time=NOW - SIXTY_TWO_DAYS)
    assert rules_broken(event) == []


def test_physical_store_events_older_than_62_days_are_too_old():
    event = valid_event(action_source="physical_store", event_time=NOW - SIXTY_TWO_DAYS - 1)
    assert rules_broken(event) == ["event_time_too_old"]


def test_max_age_margin_shortens_the_allowed_age():
    event = valid_event(event_time=NOW - SEVEN_DAYS + 100)
    assert rules_broken(event) == []
    assert rules_broken(event, max_age_margin_seconds=600) == ["event_time_too_old"]


def test_event_time_within_future_tolerance_is_accepted():
    assert rules_broken(valid_event(event_time=NOW + 60)) == []


def test_event_time_beyond_future_tolerance_is_in_the_future():
    assert rules_broken(valid_event(event_time=NOW + 61)) == ["event_time_in_future"]
    assert rules_broken(valid_event(event_time=NOW + 61), future_tolerance_seconds=120) == []


def test_now_defaults_to_the_current_time():
    current = int(time.time())
    assert validate_event(valid_event(event_time=current)) == []
    too_old = valid_event(event_time=current - SEVEN_DAYS - 600)
    assert [violation.rule for violation in validate_event(too_old)] == ["event_time_too_old"]


@pytest.mark.parametrize("action_source", [None, "", "web", "WEBSITE", 1])
def test_action_source_must_be_known(action_source):
    assert rules_broken(valid_event(action_source=action_source)) == ["action_source_invalid"]


@pytest.mark.parametrize(
    "action_source",
    [
        "email",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    ],
)
def test_non_website_sources_need_no_user_agent_or_url(action_source):
    event = valid_event(action_source=action_source, user_data={"em": HASH})
    del event["event_source_url"]
    assert rules_broken(event) == []


@pytest.mark.parametrize("user_agent", [None, "", "  "])
def test_website_events_need_a_client_user_agent(user_agent):
    event = valid_event(user_data={"em": HASH, "client_user_agent": user_agent})
    assert rules_broken(event) == ["website_user_agent_missing"]


@pytest.mark.parametrize(
    "url", [None, "", "shop.example/checkout", "ftp://shop.example", "https://", "http:///x"]
)
def test_website_events_need_an_http_source_url(url):
    assert rules_broken(valid_event(event_source_url=url)) == ["website_source_url_invalid"]


def test_website_source_url_scheme_is_case_insensitive():
    assert rules_broken(valid_event(event_source_url="HTTP://shop.example")) == []


@pytest.mark.parametrize("user_data", [None, {}, "x", {"em": []}, {"unknown": "x"}])
def test_user_data_needs_a_customer_information_key(user_data):
    assert rules_broken(with_user_data() | {"user_data": user_data}) == [
        "user_data_missing_match_key"
    ]


@pytest.mark.parametrize(
    "user_data",
    [
        {"external_id": "cust-42"},
        {"client_ip_address": "203.0.113.9"},
        {"fbp": "fb.1.1596403881668.1116446470"},
        {"madid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
        {"page_id": 123},
    ],
)
def test_unhashed_match_keys_count_as_customer_information(user_data):
    assert rules_broken(with_user_data(**user_data)) == []


@pytest.mark.parametrize(
    "key", ["client_ip_address", "client_user_agent", "external_id", "madid", "fbc", "fbp", "em"]
)
@pytest.mark.parametrize("blank", [" ", "  \t\n", ["   ", None, ""]])
def test_blank_text_is_no_customer_information(key, blank):
    assert rules_broken(with_user_data(**{key: blank})) == ["user_data_missing_match_key"]


@pytest.mark.parametrize("key", ["em", "external_id", "fbc"])
def test_a_null_value_is_no_customer_information_nor_a_malformed_value(key):
    assert rules_broken(with_user_data(**{key: None})) == ["user_data_missing_match_key"]


def test_blank_text_is_not_taken_for_a_malformed_value():
    assert rules_broken(with_user_data(em=HASH, ph="   ", fbc=" ", fbp="\t")) == []


# Meta's "baseline requirements for matching": only one of these combinations, or a part of
# one, is customer information too broad to match, and Meta rejects the event
TOO_BROAD_USER_DATA = {
    "user_agent_only": ["client_user_agent"],
    "metas_own_example": ["ge", "ct", "st", "country"],
    "location_gender_and_user_agent": ["ct", "country", "st", "zp", "ge", "client_user_agent"],
    "birth_date_and_user_agent": ["db", "client_user_agent"],
    "first_name_and_gender": ["fn", "ge"],
    "last_name_only": ["ln"],
}


def user_data_of(keys: list[str]) -> dict[str, Any]:
    return {key: "Mozilla/5.0" if key == "client_user_agent" else HASH for key in keys}


@pytest.mark.parametrize("keys", TOO_BROAD_USER_DATA.values(), ids=TOO_BROAD_USER_DATA.keys())
def test_customer_information_too_broad_to_match_is_refused(keys):
    assert rules_broken(with_user_data(**user_data_of(keys))) == ["user_data_missing_match_key"]


def test_too_broad_customer_information_is_refused_from_trusted_keys_too():
    event = with_user_data(ge=HASH, ct=HASH)
    assert rules_broken(event, trusted_hashed_keys=frozenset({"ge", "ct"})) == [
        "user_data_missing_match_key"
    ]


@pytest.mark.parametrize(
    "keys",
    [
        ["fn", "ln"],
        ["db", "ge"],
        ["client_ip_address"],
        ["client_ip_address", "client_user_agent"],
        ["ct", "country", "st", "zp", "ge", "client_user_agent", "em"],
        ["external_id", "client_user_agent"],
    ],
)
def test_customer_information_beyond_the_broad_combinations_is_enough(keys):
    assert rules_broken(with_user_data(**user_data_of(keys))) == []


def test_too_broad_message_names_the_combinations_not_the_values():
    (violation,) = validate_event(with_user_data(fn=HASH, ge=HASH), now=NOW)
    assert "fn+ge" in violation.message and HASH not in violation.message


@pytest.mark.parametrize(
    "value",
    ["mary@example.com", HASH[:-1], HASH + "0", "g" * 64, [HASH, "plain"], 42, {"a": HASH}],
)
def test_hashed_keys_must_be_sha256_hex(value):
    assert rules_broken(with_user_data(em=value)) == ["user_data_not_hashed"]


def test_uppercase_sha256_hex_is_accepted():
    assert rules_broken(with_user_data(ph=HASH.upper())) == []


def test_not_hashed_message_never_contains_the_value():
    [violation] = validate_event(with_user_data(em="mary@example.com"), now=NOW)
    assert "mary" not in violation.message
    assert violation.field == "user_data.em"


def test_trusted_hashed_key_is_not_rechecked_for_the_hex_format():
    event = with_user_data(em="not-a-hash-but-trusted")
    assert rules_broken(event, trusted_hashed_keys=frozenset({"em"})) == []


def test_untrusted_hashed_key_is_still_checked_when_others_are_trusted():
    event = with_user_data(em=HASH, ph="+1 616 954 7888")
    assert rules_broken(event, trusted_hashed_keys=frozenset({"em"})) == ["user_data_not_hashed"]


def test_trusted_hashed_key_still_needs_a_value_to_count_as_customer_information():
    event = with_user_data(em="")
    assert rules_broken(event, trusted_hashed_keys=frozenset({"em"})) == [
        "user_data_missing_match_key"
    ]


def test_trusting_keys_for_one_call_leaves_the_next_call_strict():
    rules_broken(with_user_data(em="plain"), trusted_hashed_keys=frozenset({"em"}))
    assert rules_broken(with_user_data(em="plain")) == ["user_data_not_hashed"]


def test_external_id_may_be_unhashed():
    assert rules_broken(with_user_data(external_id=["cust-42", "CUST-42"])) == []


@pytest.mark.parametrize(
    "fbc",
    [
        "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
        "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk.AQ",
    ],
)
def test_well_formed_fbc_is_accepted(fbc):
    assert rules_broken(with_user_data(fbc=fbc)) == []


@pytest.mark.parametrize(
    "fbc",
    [
        "IwAR2F4-dbP0l7",
        "fb.1.1554763741205",
        "fb.1.155476374120x.abc",
        "fbc.1.1554763741205.abc",
        "fb.1.1554763741205.",
        "fb.1.2.abc.def.ghi",
        1554763741205,
        "fb.1.1554763741205.a b/c?d",
        "fb.1.1554763741205.abc\n",
        "fb.1.1554763741205.abc.\tAQ",
        "fb.1.1554763741205.abc\x00",
    ],
)
def test_malformed_fbc_is_rejected_with_subcode_2804001(fbc):
    violations = validate_event(with_user_data(em=HASH, fbc=fbc), now=NOW)
    assert [(v.rule, v.subcode) for v in violations] == [("fbc_invalid", 2804001)]


@pytest.mark.parametrize(
    "fbp",
    [
        "1116446470",
        "fb.1.1596403881668",
        "fb.x.1596403881668.1",
        "fb.1.1596403881668.1116446470\r\n",
        "fb.1.1596403881668.1116 446470",
    ],
)
def test_malformed_fbp_is_rejected(fbp):
    assert rules_broken(with_user_data(em=HASH, fbp=fbp)) == ["fbp_invalid"]


@pytest.mark.parametrize(
    "value", [None, "", "12,5", "1e3", "nan", "12.5 EUR", True, float("nan"), float("inf")]
)
def test_purchase_needs_a_numeric_value(value):
    event = valid_event(custom_data={"value": value, "currency": "EUR"})
    assert rules_broken(event) == ["purchase_value_missing"]


@pytest.mark.parametrize("value", ["142.52", "10", "-3.5"])
def test_purchase_value_may_be_decimal_text_as_in_metas_example_payloads(value):
    assert rules_broken(valid_event(custom_data={"value": value, "currency": "USD"})) == []


def test_purchase_value_may_be_an_integer():
    assert rules_broken(valid_event(custom_data={"value": 0, "currency": "usd"})) == []


@pytest.mark.parametrize("value", [Decimal("49.90"), Decimal("0"), Decimal("1E+2")])
def test_purchase_value_may_be_a_decimal_which_the_body_holds_as_a_number(value):
    assert rules_broken(valid_event(custom_data={"value": value, "currency": "EUR"})) == []


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("1E+400")]
)
def test_purchase_value_may_not_be_a_decimal_no_float_holds(value):
    event = valid_event(custom_data={"value": value, "currency": "EUR"})
    assert rules_broken(event) == ["purchase_value_missing"]


@pytest.mark.parametrize(
    "currency", [None, "", "EURO", "E1R", "€€€", 978, "XYZ", "USS", "u\u017fd", "\u0131nr"]
)
def test_purchase_needs_an_iso_4217_currency(currency):
    event = valid_event(custom_data={"value": 1, "currency": currency})
    assert rules_broken(event) == ["purchase_currency_invalid"]


def test_purchase_without_custom_data_breaks_both_purchase_rules():
    event = valid_event()
    del event["custom_data"]
    assert rules_broken(event) == ["purchase_value_missing", "purchase_currency_invalid"]


@pytest.mark.parametrize("currency", ["EUR", "usd", "Jpy", "HRK", "ZWG"])
def test_purchase_takes_a_currency_iso_4217_knows_in_any_case_withdrawn_ones_too(currency):
    event = valid_event(custom_data={"value": 1, "currency": currency})
    assert rules_broken(event) == []


def test_other_events_need_no_value_or_currency():
    event = valid_event(event_name="Lead")
    del event["custom_data"]
    assert rules_broken(event) == []


def limited_data_use(options: Any = None, country: Any = None, state: Any = None) -> dict:
    given = {
        "data_processing_options": options,
        "data_processing_options_country": country,
        "data_processing_options_state": state,
    }
    return valid_event(**{name: value for name, value in given.items() if value is not None})


def test_limited_data_use_is_ldu_or_nothing_with_country_and_state_as_graphs_pairs():
    cases = {
        "not set": limited_data_use(),
        "explicitly off": limited_data_use([]),
        "on, geolocated": limited_data_use(["LDU"], 0, 0),
        "on, California": limited_data_use(["LDU"], 1, 1000),
        "on, neither country nor state": limited_data_use(["LDU"]),
        "unknown option": limited_data_use(["XYZ"]),
        "lowercase": limited_data_use(["ldu"]),
        "LDU twice": limited_data_use(["LDU", "LDU"]),
        "a string, not a list": limited_data_use("LDU"),
        "unknown country and state": limited_data_use(["LDU"], 42, 7),
        "US without California": limited_data_use(["LDU"], 1, 0),
        "country alone": limited_data_use(["LDU"], 1),
        "state alone": limited_data_use(["LDU"], state=1000),
        "numbers as text": limited_data_use(["LDU"], "1", "1000"),
        "booleans": limited_data_use(["LDU"], False, False),
        "country alone, no option": limited_data_use(country=1),
        "state alone, no option": limited_data_use(state=1000),
        "on, as a tuple": limited_data_use(("LDU",), 1, 1000),
    }
    broken = {name: rules_broken(event) for name, event in cases.items()}
    valid = ["not set", "explicitly off", "on, geolocated", "on, California", "on, as a tuple"]
    valid.append("on, neither country nor state")
    assert broken == {
        name: [] if name in valid else ["data_processing_options_invalid"] for name in cases
    }


def test_invalid_limited_data_use_names_the_field_and_graphs_valid_pairs():
    [options] = validate_event(limited_data_use(["XYZ"]), now=NOW)
    [pair] = validate_event(limited_data_use(["LDU"], 42, 7), now=NOW)
    assert (options.field, options.subcode) == ("data_processing_options", 2804014)
    assert pair.field == "data_processing_options_country"
    assert "valid combinations are 0 and 0, or 1 and 1000" in pair.message


def test_all_violations_are_reported_together():
    event = {"event_name": "Purchase", "event_time": "yesterday", "action_source": "website"}
    assert rules_broken(event) == [
        "event_time_invalid",
        "website_user_agent_missing",
        "website_source_url_invalid",
        "user_data_missing_match_key",
        "purchase_value_missing",
        "purchase_currency_invalid",
    ]


@pytest.mark.parametrize(
    ("event", "kwargs", "field", "message"),
    [
        (valid_event(event_name=""), {}, "event_name", "event_name must be a non-empty string"),
        (
            valid_event(event_time=str(NOW)),
            {},
            "event_time",
            "event_time must be an integer Unix timestamp",
        ),
        (
            valid_event(event_time=NOW - SEVEN_DAYS - 1),
            {},
            "event_time",
            "event_time is more than 7 days in the past",
        ),
        (
            valid_event(event_time=NOW - SEVEN_DAYS + 599),
            {"max_age_margin_seconds": 600},
            "event_time",
            "event_time is more than 7 days in the past (less a safety margin of 600 s)",
        ),
        (
            valid_event(event_time=NOW + 9 * 3600),  # a Tokyo local time read as UTC
            {},
            "event_time",
            "event_time is 32400 s in the future, more than the 60 s allowed",
        ),
        (
            valid_event(action_source="web"),
            {},
            "action_source",
            "action_source must be one of app, business_messaging, chat, email, other,"
            " phone_call, physical_store, system_generated, website",
        ),
        (
            valid_event(user_data={"em": [HASH]}),
            {},
            "user_data.client_user_agent",
            "website events need user_data.client_user_agent",
        ),
        (
            valid_event(event_source_url="shop.example"),
            {},
            "event_source_url",
            "website events need an http(s) event_source_url",
        ),
        (
            with_user_data(),
            {},
            "user_data",
            "user_data needs at least one customer-information parameter",
        ),
        (
            valid_event(action_source="app", user_data=["mary"]),
            {},
            "user_data",
            "user_data must be an object with at least one customer-information parameter",
        ),
        (
            with_user_data(em="mary@example.com"),
            {},
            "user_data.em",
            "user_data.em must be a SHA-256 hex digest or a list of them",
        ),
        (
            with_user_data(fbc="fbclid"),
            {},
            "user_data.fbc",
            "user_data.fbc must look like fb.{subdomainIndex}.{creationTimeMs}.{fbclid}",
        ),
        (
            with_user_data(fbp="random"),
            {},
            "user_data.fbp",
            "user_data.fbp must look like fb.{subdomainIndex}.{creationTimeMs}.{random}",
        ),
        (
            valid_event(custom_data={"currency": "EUR"}),
            {},
            "custom_data.value",
            "Purchase events need a numeric custom_data.value",
        ),
        (
            valid_event(custom_data={"value": 12.5, "currency": "euro"}),
            {},
            "custom_data.currency",
            "Purchase events need custom_data.currency as a 3-letter ISO 4217 code",
        ),
        (
            valid_event(data_processing_options="LDU"),
            {},
            "data_processing_options",
            'data_processing_options must be ["LDU"] or []',
        ),
    ],
)
def test_a_broken_rule_names_its_field_and_says_what_it_needs(event, kwargs, field, message):
    [violation] = validate_event(event, now=NOW, **kwargs)
    assert (violation.field, violation.message) == (field, message)


def test_website_event_with_user_data_in_a_mapping_other_than_a_dict_has_its_user_agent():
    event = valid_event(
        user_data=MappingProxyType({"em": [HASH], "client_user_agent": "Mozilla/5.0"})
    )
    assert rules_broken(event) == []


def test_validation_does_not_modify_the_event():
    event = valid_event(user_data={"em": "plain", "fbc": "bad"})
    before = copy.deepcopy(event)
    validate_event(event, now=NOW)
    assert event == before
