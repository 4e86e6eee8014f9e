"""Meta's rate-limit usage headers: the wait a throttled business is asked for, and how close
an app or business is to its limits."""

import json

import pytest

from target_meta_capi.capi.usage import rate_limit_usage_percent, regain_access_seconds

# a whole number JSON holds but no float does
LONG = "9" * 400


def usage(*entries: dict, business: str = "100000000000001") -> dict[str, str]:
    return {"X-Business-Use-Case-Usage": json.dumps({business: list(entries)})}


def test_metas_time_to_regain_access_is_read_in_seconds_from_the_usage_header():
    headers = usage({"type": "ads_management", "estimated_time_to_regain_access": 12})
    assert regain_access_seconds(headers) == 720.0


def test_the_longest_time_to_regain_access_over_every_business_and_entry_counts():
    headers = {
        "x-business-use-case-usage": json.dumps(
            {
                "1": [{"estimated_time_to_regain_access": 2}],
                "2": [
                    {"estimated_time_to_regain_access": 0},
                    {"estimated_time_to_regain_access": 5},
                ],
            }
        )
    }
    assert regain_access_seconds(headers) == 300.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        usage({"type": "ads_management", "call_count": 80, "estimated_time_to_regain_access": 0}),
        usage({"estimated_time_to_regain_access": "soon"}),
        usage({"estimated_time_to_regain_access": True}),
        {"X-Business-Use-Case-Usage": f'{{"1": [{{"estimated_time_to_regain_access": {LONG}}}]}}'},
        {"X-Business-Use-Case-Usage": "not json"},
        {"X-Business-Use-Case-Usage": "[1, 2]"},
        {"X-Business-Use-Case-Usage": '{"1": "not a list"}'},
        {"X-Business-Use-Case-Usage": '{"1": 5}'},
    ],
)
def test_no_usage_header_or_no_throttling_in_it_asks_for_no_wait(headers):
    assert regain_access_seconds(headers) is None


def test_a_time_to_regain_access_of_one_minute_asks_for_sixty_seconds():
    assert regain_access_seconds(usage({"estimated_time_to_regain_access": 1})) == 60.0


def test_usage_is_the_highest_share_of_any_limit_of_any_business_entry():
    headers = usage(
        {"type": "ads_management", "call_count": 12, "total_cputime": 40, "total_time": 7},
        {"type": "custom_audience", "call_count": 3, "total_cputime": 1, "total_time": 1},
    )
    assert rate_limit_usage_percent(headers) == 40.0


def test_total_time_is_a_share_of_a_limit_too():
    headers = usage({"call_count": 12, "total_cputime": 40, "total_time": 93})
    assert rate_limit_usage_percent(headers) == 93.0


def test_app_usage_counts_too_and_the_higher_of_the_two_wins():
    headers = {
        **usage({"call_count": 30}),
        "X-App-Usage": json.dumps({"call_count": 55, "total_time": 9, "total_cputime": 2}),
    }
    assert rate_limit_usage_percent(headers) == 55.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-App-Usage": "not json"},
        {"X-App-Usage": "[50]"},
        usage({"type": "ads_management", "call_count": "high"}),
        {"X-App-Usage": f'{{"call_count": {LONG}}}'},
        {"X-App-Usage": "[" * 100_000},  # nested past Python's recursion limit
    ],
)
def test_no_readable_usage_header_reports_no_usage(headers):
    assert rate_limit_usage_percent(headers) is None
