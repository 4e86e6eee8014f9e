"""RunStats counting, coverage, percentiles, METRIC lines, progress and the run summary."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from target_meta_capi.capi.errors import (
    EventsReceivedMismatch,
    InvalidRequestError,
    RequestTimeout,
    ThrottledError,
    TransientError,
)
from target_meta_capi.capi.normalize import DroppedValue, sha256_hex
from target_meta_capi.capi.rules import MAX_AGE_SECONDS, PHYSICAL_STORE_MAX_AGE_SECONDS
from target_meta_capi.pace import Wait
from target_meta_capi.summary import (
    ProgressReporter,
    RunStats,
    is_near_cutoff,
    summary_file,
    write_run_summary,
)
from target_meta_capi.summary.counts import COVERAGE_KEYS
from target_meta_capi.summary.latency import LatencyHistogram
from target_meta_capi.summary.reasons import error_reason
from target_meta_capi.summary.report import format_summary
from target_meta_capi.summary.stats import (
    MESSAGES_FROM_META_KEPT,
    OTHER_MESSAGES_FROM_META,
    coverage_percent,
)
from target_meta_capi.summary.summary_file import SummaryWriteError

HASHED_EMAIL = sha256_hex("mary@example.com")
HASHED_PHONE = sha256_hex("16169547888")
METRICS_LOGGER = "singer_sdk.metrics"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def metric_points(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [
        json.loads(record.getMessage().removeprefix("METRIC: "))
        for record in caplog.records
        if record.name == METRICS_LOGGER
    ]


def wait_for(stats: RunStats, clock: FakeClock, what: Wait, seconds: float) -> None:
    """The run's main thread waits `seconds` for input or for Meta's answers."""
    with stats.pace_clock.waiting_for(what):
        clock.now += seconds


def send_all(stats: RunStats, events_by_stream: dict[str, int]) -> None:
    """The events are sent, one request per stream, and acknowledged."""
    for stream, count in events_by_stream.items():
        stats.request_submitted(stream, count)
        stats.request_acknowledged(stream, count)


def map_events(stats: RunStats, stream: str, user_datas: list[dict]) -> None:
    for user_data in user_datas:
        stats.record_read(stream)
        stats.event_mapped(stream, {"event_name": "Purchase", "user_data": user_data}, [])


# --- counting ------------------------------------------------------------------------------


def test_counts_are_kept_per_stream_and_totalled():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    map_events(stats, "leads", [{"em": HASHED_EMAIL}])
    stats.request_submitted("orders", 3)
    stats.request_acknowledged("orders", 3)
    stats.request_submitted("leads", 1)

    summary = stats.snapshot()

    orders, leads = summary["streams"]["orders"], summary["streams"]["leads"]
    assert (orders["records_read"], orders["events_mapped"], orders["requests"]) == (3, 3, 1)
    assert (orders["events_sent"], orders["events_acknowledged"]) == (3, 3)
    assert (leads["events_sent"], leads["events_acknowledged"], leads["events_in_flight"]) == (
        1,
        0,
        1,
    )
    assert summary["totals"]["records_read"] == 4
    assert summary["totals"]["events_acknowledged"] == 3
    assert summary["requests"]["submitted"] == 2


def test_events_rejected_by_meta_are_no_longer_in_flight_but_local_dead_letters_never_were():
    stats = RunStats()
    stats.request_submitted("orders", 10)
    stats.request_acknowledged("orders", 7)
    stats.events_dead_lettered("orders", "meta:100/2804019", 2)
    stats.events_dead_lettered("orders", "rule:event_time_too_old", 5)

    orders = stats.snapshot()["streams"]["orders"]

    assert orders["events_dead_lettered"] == 7
    assert orders["events_in_flight"] == 1


def test_dead_letters_are_counted_by_reason_per_stream_and_in_total():
    stats = RunStats()
    stats.events_dead_lettered("orders", "rule:event_time_too_old", 2)
    stats.events_dead_lettered("orders", "meta:100/2804019")
    stats.events_dead_lettered("leads", "rule:event_time_too_old")

    summary = stats.snapshot()

    assert summary["streams"]["orders"]["dead_letters_by_reason"] == {
        "meta:100/2804019": 1,
        "rule:event_time_too_old": 2,
    }
    assert summary["dead_letters_by_reason"] == {
        "meta:100/2804019": 1,
        "rule:event_time_too_old": 3,
    }


def test_dropped_values_are_counted_per_field_and_reason():
    stats = RunStats()
    stats.event_mapped("orders", {"user_data": {}}, [DroppedValue("ph", "too_few_digits")])
    stats.event_mapped(
        "orders",
        {"user_data": {}},
        [DroppedValue("ph", "too_few_digits"), DroppedValue("em", "invalid_email")],
    )
    stats.event_mapped("leads", {"user_data": {}}, [DroppedValue("em", "invalid_email")])

    summary = stats.snapshot()

    assert summary["streams"]["orders"]["dropped_values"] == {
        "em": {"invalid_email": 1},
        "ph": {"too_few_digits": 2},
    }
    assert summary["dropped_values"] == {"em": {"invalid_email": 2}, "ph": {"too_few_digits": 2}}


def test_events_received_mismatches_are_summed():
    stats = RunStats()
    stats.events_received_mismatch("orders", sent=10, received=9)
    stats.events_received_mismatch("leads", sent=5, received=0)

    summary = stats.snapshot()

    assert summary["streams"]["orders"]["events_received_mismatches"] == {
        "requests": 1,
        "events_sent": 10,
        "events_received": 9,
    }
    assert summary["events_received_mismatches"] == {
        "requests": 2,
        "events_sent": 15,
        "events_received": 9,
    }


def test_records_of_a_skipped_stream_are_reported_as_skipped():
    stats = RunStats()
    stats.stream_skipped("audit_log", "no mapping")
    for _ in range(4):
        stats.record_read("audit_log")

    audit_log = stats.snapshot()["streams"]["audit_log"]

    assert (audit_log["events_skipped"], audit_log["skipped_reason"]) == (4, "no mapping")
    assert audit_log["match_key_coverage"] == {}


def test_counts_from_concurrent_threads_are_exact():
    stats = RunStats()

    def work() -> None:
        for _ in range(5000):
            stats.record_read("orders")
            stats.event_mapped("orders", {"user_data": {"em": HASHED_EMAIL}}, [])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    orders = stats.snapshot()["streams"]["orders"]
    assert (orders["records_read"], orders["events_mapped"]) == (20000, 20000)
    assert orders["match_key_coverage"]["em"] == 100.0


# --- match-key coverage ----------------------------------------------------------------------


def test_coverage_is_the_share_of_events_carrying_each_key():
    stats = RunStats()
    map_events(
        stats,
        "orders",
        [
            {"em": HASHED_EMAIL, "ph": [HASHED_PHONE], "client_ip_address": "203.0.113.9"},
            {"em": [HASHED_EMAIL, HASHED_EMAIL], "fbp": "fb.1.1596403881668.1116446470"},
            {"em": HASHED_EMAIL, "ph": HASHED_PHONE},
        ],
    )

    coverage = stats.snapshot()["streams"]["orders"]["match_key_coverage"]

    assert coverage == {
        "em": 100.0,
        "ph": 66.7,
        "fn": 0.0,
        "ln": 0.0,
        "external_id": 0.0,
        "fbc": 0.0,
        "fbp": 33.3,
        "client_ip_address": 33.3,
        "client_user_agent": 0.0,
    }


def test_empty_values_do_not_count_as_carrying_a_key():
    stats = RunStats()
    map_events(stats, "orders", [{"em": "", "ph": [], "fn": None, "ln": HASHED_EMAIL}])

    coverage = stats.snapshot()["streams"]["orders"]["match_key_coverage"]

    assert (coverage["em"], coverage["ph"], coverage["fn"], coverage["ln"]) == (
        0.0,
        0.0,
        0.0,
        100.0,
    )


def test_keys_outside_the_coverage_list_are_not_reported():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL, "zp": sha256_hex("94035")}])

    assert list(stats.snapshot()["streams"]["orders"]["match_key_coverage"]) == list(COVERAGE_KEYS)


@pytest.mark.parametrize(
    ("count", "total", "expected"),
    [(1, 16, 6.3), (1, 3, 33.3), (2, 3, 66.7), (0, 5, 0.0), (7, 7, 100.0), (1, 8, 12.5)],
)
def test_coverage_percent_has_one_decimal_rounding_halves_up(count, total, expected):
    assert coverage_percent(count, total) == expected


# --- requests, latency, retries ----------------------------------------------------------------


def test_latency_percentiles_use_nearest_rank():
    stats = RunStats()
    for milliseconds in range(20, 0, -1):
        stats.on_attempt(10, 200, milliseconds / 1000, None)

    latency = stats.snapshot()["requests"]["latency_seconds"]

    assert latency == {"p50": 0.010, "p95": 0.019, "max": 0.020}


def test_latency_is_none_without_requests():
    latency = RunStats().snapshot()["requests"]["latency_seconds"]

    assert latency == {"p50": None, "p95": None, "max": None}


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([5.0], 0.5, 5.0), ([1.0, 2.0], 0.5, 1.0), ([1.0, 2.0, 3.0, 4.0], 0.95, 4.0)],
)
def test_percentile_of_small_samples(values, fraction, expected):
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)

    assert histogram.percentile(fraction) == expected


def test_latencies_are_kept_to_the_millisecond_below_a_second_and_3_digits_above():
    histogram = LatencyHistogram()
    for seconds in (0.0574, 0.0576, 12.345, 12.36, 123.4):
        histogram.add(seconds)

    assert [histogram.percentile(rank / 5) for rank in range(1, 6)] == [
        0.057,
        0.058,
        12.3,
        12.4,
        123.0,
    ]
    assert histogram.max == 123.4  # exact
    assert histogram.count == 5


def test_a_percentile_rounded_up_is_never_above_the_exact_max():
    # 1.2351 s is kept as 1.24: the summary said "p50 1.240 s, p95 1.240 s, max 1.235 s"
    stats = RunStats()
    stats.on_attempt(1, 200, 1.2351, None)

    latency = stats.snapshot()["requests"]["latency_seconds"]

    assert latency == {"p50": 1.2351, "p95": 1.2351, "max": 1.2351}


def test_a_long_run_keeps_a_bounded_number_of_latencies():
    # a quiet tap sends a request a second for days: one kept value per request grew forever.
    # 20,000 different latencies, five times the bound: a list of them all would break it
    stats = RunStats()
    attempts = 20_000
    for index in range(attempts):
        # spread over 0.1 ms to 60 s, every value different
        stats.on_attempt(1, 200, 0.0001 + (index * 7919 % attempts) * 60 / attempts, None)

    requests = stats.snapshot()["requests"]
    assert requests["attempts"] == attempts
    assert len(stats._latencies) < 4000
    assert requests["latency_seconds"]["p50"] == pytest.approx(30, rel=0.01)
    assert requests["latency_seconds"]["p95"] == pytest.approx(57, rel=0.01)


def test_attempts_are_counted_by_status_and_failures_by_reason():
    stats = RunStats()
    stats.on_attempt(10, 200, 0.01, None)
    stats.on_attempt(10, 503, 0.01, TransientError("Service Unavailable", http_status=503))
    stats.on_attempt(10, None, 1.5, RequestTimeout("timed out"))
    invalid = InvalidRequestError("Invalid parameter", http_status=400, code=100, subcode=2804019)
    stats.on_attempt(10, 400, 0.01, invalid)

    requests = stats.snapshot()["requests"]

    assert requests["attempts"] == 4
    assert requests["attempts_by_status"] == {"200": 1, "400": 1, "503": 1, "none": 1}
    assert requests["failures_by_reason"] == {
        "http:503": 1,
        "meta:100/2804019": 1,
        "network:RequestTimeout": 1,
    }


def retried(stats: RunStats, error: Exception) -> None:
    """A retry announced (before its wait) and then made (its attempt answered)."""
    stats.on_retry(error, 1, 0.5)
    stats.on_attempt(1, 200, 0.02, None)


def test_retries_are_counted_by_reason():
    stats = RunStats()
    throttled = ThrottledError("Too many calls", http_status=400, code=17, subcode=2446079)
    retried(stats, throttled)
    retried(stats, throttled)
    retried(stats, TransientError("Unknown error", http_status=500, code=1))

    requests = stats.snapshot()["requests"]

    assert requests["retries"] == 3
    assert requests["retries_by_reason"] == {"meta:1": 1, "meta:17/2446079": 2}


def test_a_retry_whose_wait_the_end_of_the_run_cut_short_is_not_counted():
    stats = RunStats()
    retried(stats, TransientError("Unknown error", http_status=500, code=1))
    stats.on_retry(TransientError("Unknown error", http_status=500, code=1), 2, 1.0)

    requests = stats.snapshot()["requests"]

    assert (requests["attempts"], requests["retries"]) == (1, 1)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (InvalidRequestError("x", http_status=400, code=100, subcode=33), "meta:100/33"),
        (TransientError("x", http_status=500, code=2), "meta:2"),
        (TransientError("<html>", http_status=502), "http:502"),
        (RequestTimeout("x"), "network:RequestTimeout"),
        (EventsReceivedMismatch(sent=3, received=2), "events_received_mismatch"),
        (ValueError("x"), "ValueError"),
    ],
)
def test_error_reason_labels(error, reason):
    assert error_reason(error) == reason


# --- METRIC lines ----------------------------------------------------------------------------


def test_each_attempt_logs_an_http_request_duration_timer(caplog):
    stats = RunStats()
    with caplog.at_level(logging.INFO, logger=METRICS_LOGGER):
        stats.on_attempt(3, 200, 0.25, None)
        stats.on_attempt(3, 500, 0.5, TransientError("x", http_status=500, code=1))

    points = metric_points(caplog)

    assert [
        (p["type"], p["metric"], p["value"], p["tags"]["status"], p["tags"]["http_status_code"])
        for p in points
    ] == [
        ("timer", "http_request_duration", 0.25, "succeeded", 200),
        ("timer", "http_request_duration", 0.5, "failed", 500),
    ]
    assert {p["tags"]["endpoint"] for p in points} == {"events"}


def test_metric_counters_log_increments_since_the_previous_flush(caplog):
    stats = RunStats()
    stats.request_submitted("orders", 100)
    stats.request_acknowledged("orders", 100)
    stats.events_dead_lettered("orders", "rule:event_time_too_old", 2)
    retried(stats, TransientError("x", http_status=503))
    with caplog.at_level(logging.INFO, logger=METRICS_LOGGER):
        stats.emit_metric_counters()
        stats.emit_metric_counters()
        stats.request_submitted("orders", 50)
        stats.emit_metric_counters()

    points = [
        (p["type"], p["metric"], p["value"], p["tags"].get("stream"), p["tags"].get("reason"))
        for p in metric_points(caplog)
        if p["type"] == "counter"  # not the retry's attempt, which other tests' levels may let in
    ]
    assert points == [
        ("counter", "events_sent", 100, "orders", None),
        ("counter", "events_acknowledged", 100, "orders", None),
        ("counter", "events_dead_lettered", 2, "orders", "rule:event_time_too_old"),
        ("counter", "http_request_retry_count", 1, None, "http:503"),
        ("counter", "events_sent", 50, "orders", None),
    ]


def test_per_record_hooks_log_nothing(caplog):
    stats = RunStats()
    with caplog.at_level(logging.DEBUG):
        map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 10)

    assert caplog.records == []


# --- warnings ----------------------------------------------------------------------------------


def test_skipped_stream_is_warned_about_once_when_first_seen(caplog):
    stats = RunStats(logger=logging.getLogger("test.target"))
    with caplog.at_level(logging.INFO):
        stats.stream_skipped("audit_log", "no mapping")
        stats.stream_skipped("audit_log", "no mapping")
        warned_when_seen = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        write_run_summary(stats, logging.getLogger("test.target"), None)

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned_when_seen) == 1
    assert warnings == warned_when_seen
    assert "audit_log" in warnings[0]


def test_a_run_warning_given_twice_is_logged_and_listed_once(caplog):
    stats = RunStats(logger=logging.getLogger("test.target"))
    with caplog.at_level(logging.WARNING):
        stats.run_warning("Replaced 2 lone UTF-16 surrogate(s)")
        stats.run_warning("Replaced 2 lone UTF-16 surrogate(s)")

    assert [r.getMessage() for r in caplog.records] == ["Replaced 2 lone UTF-16 surrogate(s)"]
    assert stats.snapshot()["warnings"] == ["Replaced 2 lone UTF-16 surrogate(s)"]


def test_messages_from_meta_past_the_kept_number_are_counted_together_and_warned_about_once(
    caplog,
):
    stats = RunStats(logger=logging.getLogger("test.target"))
    with caplog.at_level(logging.WARNING):
        for request in range(MESSAGES_FROM_META_KEPT + 5):
            stats.message_from_meta(f"Event at index {request} has a malformed fbc")
        stats.message_from_meta("Event at index 0 has a malformed fbc")

    counted = stats.snapshot()["requests"]["messages_from_meta"]
    assert len(counted) == MESSAGES_FROM_META_KEPT + 1
    assert counted["Event at index 0 has a malformed fbc"] == 2  # a kept one, still its own
    assert counted[OTHER_MESSAGES_FROM_META] == 5
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == MESSAGES_FROM_META_KEPT + 1
    assert warnings[-1].startswith(
        f"Meta's answers carried more than {MESSAGES_FROM_META_KEPT} different messages"
    )


def test_stream_without_any_match_key_is_warned_about():
    stats = RunStats()
    map_events(stats, "orders", [{"ct": sha256_hex("menlopark")}] * 2)
    map_events(stats, "leads", [{"ct": sha256_hex("menlopark")}, {"fbc": "fb.1.1.abc"}])
    send_all(stats, {"orders": 2, "leads": 2})

    warnings = stats.snapshot()["warnings"]

    assert len(warnings) == 1
    assert "'orders'" in warnings[0]
    assert "none of its 2 events carries a match key" in warnings[0]


def test_phone_numbers_dropped_for_lacking_their_country_code_are_warned_about():
    stats = RunStats()
    for _ in range(2):
        stats.record_read("orders")
        user_data = {"em": HASHED_EMAIL}
        stats.event_mapped(
            "orders", {"user_data": user_data}, [DroppedValue("ph", "no_country_code")]
        )
    send_all(stats, {"orders": 2})

    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 2 phone numbers were left out: written as dialled inside their "
        "country (with a leading 0, or as a US or Canadian number without its 1), they lack the "
        "country code without which Meta matches no one. Set phone_country_code (or this "
        "stream's own, in `streams`) to their country, or, for customers of several countries, "
        "phone_country_from_country to read each number in its event's user_data.country."
    ]


def test_phone_numbers_dropped_as_invalid_are_not_warned_about_as_lacking_a_country_code():
    stats = RunStats()
    stats.record_read("orders")
    stats.event_mapped(
        "orders", {"user_data": {"em": HASHED_EMAIL}}, [DroppedValue("ph", "invalid")]
    )
    send_all(stats, {"orders": 1})

    assert stats.snapshot()["warnings"] == []


def test_events_near_the_cutoff_are_warned_about_with_their_count():
    stats = RunStats()
    for _ in range(3):
        stats.near_cutoff_event("orders")

    summary = stats.snapshot()

    assert summary["streams"]["orders"]["events_near_cutoff"] == 3
    assert len(summary["warnings"]) == 1
    assert summary["warnings"][0].startswith("Stream 'orders': 3 events were within 24 h")


def test_one_event_near_the_cutoff_is_warned_about_in_the_singular():
    stats = RunStats()
    stats.near_cutoff_event("orders")

    [warning] = stats.snapshot()["warnings"]
    assert warning.startswith("Stream 'orders': 1 event was within 24 h")
    assert "a day's delay would get it rejected." in warning


def test_a_clean_run_has_no_warnings():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    send_all(stats, {"orders": 1})

    assert stats.snapshot()["warnings"] == []


def test_events_mapped_and_never_sent_are_warned_about():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    send_all(stats, {"orders": 1})

    assert stats.snapshot()["streams"]["orders"]["events_unsent"] == 2
    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 2 mapped events were not sent: the run stopped before they were, and "
        "no state covers them (a rerun from the last state processes them again)."
    ]


def test_dead_lettered_events_are_warned_about_with_their_reasons():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    stats.events_dead_lettered("orders", "rule:purchase_value_missing", 2)
    send_all(stats, {"orders": 1})

    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 2 events were dead-lettered (rule:purchase_value_missing=2): Meta has "
        "not taken them; each is in the dead-letter file with its reason."
    ]


def test_a_warning_about_one_event_puts_it_in_the_singular():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 2)
    stats.events_dead_lettered("orders", "rule:purchase_value_missing", 1)

    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 1 event was dead-lettered (rule:purchase_value_missing=1): Meta has "
        "not taken it; it is in the dead-letter file with its reason.",
        "Stream 'orders': 1 mapped event was not sent: the run stopped before it was, and "
        "no state covers it (a rerun from the last state processes it again).",
    ]


def test_events_too_old_for_meta_are_warned_about_with_the_window_meta_takes():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    stats.events_dead_lettered("orders", "rule:event_time_too_old", 1)

    [warning] = stats.snapshot()["warnings"]
    assert warning.endswith(
        "Meta takes events at most 7 days old (62 for physical_store): older rows cannot be "
        "sent through the Conversions API."
    )


def test_events_meta_refused_as_too_old_are_warned_about_as_aged_after_they_were_read():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 2)
    stats.request_submitted("orders", 2)
    stats.request_acknowledged("orders", 1)
    stats.events_dead_lettered("orders", "meta:100/2804003", 1)

    [warning] = stats.snapshot()["warnings"]
    assert warning.endswith(
        "Meta refused as too old events that were not when read: their requests waited "
        "(throttling, retries) longer than the safety margin kept before Meta's cutoff, or this "
        "machine's clock is behind Meta's."
    )


def test_events_in_the_future_are_warned_about_with_what_puts_times_ahead():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    stats.events_dead_lettered("orders", "rule:event_time_in_future", 1)

    [warning] = stats.snapshot()["warnings"]
    assert warning.endswith(
        "Meta refuses event times ahead of now (each dead letter says by how much): whole hours "
        "ahead are local times read as UTC (a `timestamp without time zone` column, or text "
        "without an offset while `time_zone` is unset; docs/meltano.md), minutes ahead a "
        "source clock ahead of this machine's."
    )


def test_events_sent_and_never_answered_are_warned_about():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    stats.request_submitted("orders", 3)

    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 3 sent events were not acknowledged before the run stopped (waiting "
        "for an answer, or to be retried), and no state covers them (a rerun sends them again; "
        "Meta deduplicates those it did receive, by event_id)."
    ]


def test_events_of_a_request_that_failed_the_run_are_warned_about_as_failed():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    stats.request_submitted("orders", 3)
    stats.request_failed("orders", 3)

    assert stats.snapshot()["streams"]["orders"]["events_in_flight"] == 0
    assert stats.snapshot()["warnings"] == [
        "Stream 'orders': 3 events were in requests that failed the run (its error says whether "
        "they reached Meta), and no state covers them (a rerun sends them again; Meta "
        "deduplicates by event_id any it did store)."
    ]


def test_events_breaking_rules_are_dead_lettered_not_unsent():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 3)
    stats.events_dead_lettered("orders", "rule:event_time_too_old", 2)
    send_all(stats, {"orders": 1})

    assert stats.snapshot()["streams"]["orders"]["events_unsent"] == 0


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("age_seconds", "action_source", "near"),
    [
        (MAX_AGE_SECONDS - 3600, "website", True),
        (MAX_AGE_SECONDS - 24 * 3600 + 1, "website", True),
        (MAX_AGE_SECONDS - 24 * 3600, "website", False),
        (MAX_AGE_SECONDS + 1, "website", False),
        (MAX_AGE_SECONDS - 3600, "physical_store", False),
        (PHYSICAL_STORE_MAX_AGE_SECONDS - 3600, "physical_store", True),
    ],
)
def test_is_near_cutoff(age_seconds, action_source, near):
    event = {"event_time": int(NOW) - age_seconds, "action_source": action_source}

    assert is_near_cutoff(event, NOW) is near


def test_an_unparsed_event_time_is_not_near_cutoff():
    assert is_near_cutoff({"event_time": "1700000000"}, NOW) is False


# --- run summary -------------------------------------------------------------------------------


def test_run_summary_file_holds_the_returned_summary(tmp_path):
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    path = tmp_path / "reports" / "summary.json"

    summary = write_run_summary(stats, logging.getLogger("test.target"), str(path))

    assert json.loads(path.read_text()) == summary
    assert list(path.parent.iterdir()) == [path]


def test_a_summary_path_that_is_a_symlink_replaces_the_file_it_points_to_and_keeps_the_link(
    tmp_path: Path,
) -> None:
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "summary.json"
    real.write_text("the previous run's summary\n")
    link = tmp_path / "summary.json"
    link.symlink_to(real)

    summary = write_run_summary(RunStats(), logging.getLogger("test.target"), str(link))

    assert json.loads(real.read_text()) == summary
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert set(tmp_path.rglob("*")) == {link, tmp_path / "reports", real}  # no .partial


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_a_summary_replacing_a_file_keeps_that_files_permissions(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "summary.json"
    path.write_text("the previous run's summary\n")
    path.chmod(mode)

    write_run_summary(RunStats(), logging.getLogger("test.target"), str(path))

    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_summary_path_that_is_a_dangling_symlink_creates_the_file_it_points_to(
    tmp_path: Path,
) -> None:
    link = tmp_path / "summary.json"
    link.symlink_to(tmp_path / "reports" / "latest.json")

    summary = write_run_summary(RunStats(), logging.getLogger("test.target"), str(link))

    assert link.is_symlink()
    assert json.loads((tmp_path / "reports" / "latest.json").read_text()) == summary


def test_a_link_found_at_the_summarys_temporary_name_is_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the name is random; here it is known in advance, as a link planted for it would need
    monkeypatch.setattr(summary_file, "secrets", SimpleNamespace(token_hex=lambda n: "0" * 2 * n))
    other_file = tmp_path / "someone_elses.txt"
    other_file.write_text("not the target's\n")
    (tmp_path / f"summary.json.{'0' * 16}.partial").symlink_to(other_file)

    with pytest.raises(SummaryWriteError, match="File exists"):
        write_run_summary(RunStats(), logging.getLogger("test.target"), tmp_path / "summary.json")

    assert other_file.read_text() == "not the target's\n"


@pytest.mark.parametrize("through_a_symlink", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_a_summary_path_that_is_a_fifo_is_written_into_and_stays_a_fifo(
    tmp_path: Path, through_a_symlink: bool
) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    path = fifo
    if through_a_symlink:
        path = tmp_path / "summary.json"
        path.symlink_to(fifo)
    received: list[str] = []
    # daemon: if the FIFO were replaced, its reader would wait for a writer forever
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()

    summary = write_run_summary(RunStats(), logging.getLogger("test.target"), str(path))
    reader.join(timeout=10)

    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert path.is_symlink() == through_a_symlink
    assert [json.loads(text) for text in received] == [summary]
    assert set(tmp_path.iterdir()) == {fifo, path}  # no .partial


def test_run_summary_is_logged_and_not_printed_to_stdout(caplog, capsys):
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    stats.events_dead_lettered("orders", "rule:event_time_too_old")
    stats.on_attempt(1, 200, 0.02, None)
    with caplog.at_level(logging.INFO, logger="test.target"):
        write_run_summary(stats, logging.getLogger("test.target"), None)

    lines = [r.getMessage() for r in caplog.records if r.name == "test.target"]
    assert lines[0].startswith("Run summary (")
    assert "match-key coverage: em 100.0%, ph 0.0%" in lines[1]
    assert "dead letters: rule:event_time_too_old=1" in lines[1]
    assert "latency p50 0.020 s, p95 0.020 s, max 0.020 s" in lines[2]
    assert capsys.readouterr().out == ""


def test_summary_and_logs_hold_no_user_data_value(caplog, tmp_path):
    stats = RunStats()
    ip_address = "203.0.113.9"
    with caplog.at_level(logging.DEBUG):
        map_events(stats, "orders", [{"em": HASHED_EMAIL, "client_ip_address": ip_address}])
        stats.on_attempt(1, 200, 0.02, None)
        reporter = ProgressReporter(stats, logging.getLogger("test.target"), interval=0)
        reporter.stop()
        write_run_summary(stats, logging.getLogger("test.target"), tmp_path / "summary.json")

    written = (tmp_path / "summary.json").read_text() + caplog.text
    assert HASHED_EMAIL not in written
    assert ip_address not in written


def test_summary_lines_put_a_count_of_one_in_the_singular():
    stats = RunStats()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}])
    send_all(stats, {"orders": 1})
    stats.on_retry(TransientError("x", http_status=503), 1, 0.5)
    stats.on_attempt(1, 200, 0.02, None)

    totals_line, stream_line, requests_line = format_summary(stats.snapshot())[:3]

    assert "): 1 record read, 1 event mapped, 1 sent," in totals_line
    assert ": 1 read, 1 mapped, 1 sent in 1 request, 1 acknowledged," in stream_line
    assert requests_line.startswith("Requests: 1 submitted, 1 attempt (by status: 200=1;")
    assert "), 1 retry (http:503=1);" in requests_line


def test_summary_lines_say_none_where_nothing_was_counted():
    stats = RunStats()
    stats.record_read("orders")

    _, stream_line, requests_line = format_summary(stats.snapshot())[:3]

    assert stream_line.endswith("; dead letters: none; dropped values: none.")
    assert requests_line.startswith(
        "Requests: 0 submitted, 0 attempts (by status: none; failures: none), 0 retries (none);"
    )


def test_summary_lines_report_events_meta_counted_short():
    stats = RunStats()
    stats.events_received_mismatch("orders", sent=10, received=9)

    assert (
        "events_received mismatches: 1 request, 10 events sent, 9 counted by Meta."
        in format_summary(stats.snapshot())
    )


# --- progress ----------------------------------------------------------------------------------


def clocked_reporter() -> tuple[FakeClock, RunStats, ProgressReporter]:
    """A progress reporter and the run statistics it reads, both on one fake clock."""
    clock = FakeClock()
    stats = RunStats(clock=clock)
    return clock, stats, ProgressReporter(stats, logging.getLogger("test.target"), clock=clock)


def test_progress_line_reports_counts_in_flight_and_rate_since_the_previous_line(caplog):
    clock, stats, reporter = clocked_reporter()
    map_events(stats, "orders", [{"em": HASHED_EMAIL}] * 5)
    stats.request_submitted("orders", 5)
    stats.request_acknowledged("orders", 3)
    retried(stats, TransientError("x", http_status=503))
    stats.events_dead_lettered("orders", "rule:event_time_too_old")
    clock.now += 2.0

    line = reporter.report()

    assert line == (
        "Progress: 5 records read, 5 events sent, 3 acknowledged, 2 in flight, 1 retry, "
        "1 dead-lettered, 1.5 events/s "
        "[orders: 5 read, 5 sent, 3 acknowledged, 2 in flight, 1 dead-lettered]; "
        "since the last line 0% waiting for input, 0% for Meta's answers, 100% working "
        "(pace set by the target's own work)"
    )


def test_progress_line_says_who_set_the_pace_since_the_previous_line():
    clock, stats, reporter = clocked_reporter()
    wait_for(stats, clock, "input", 9.0)  # the tap was slow
    wait_for(stats, clock, "meta", 0.5)
    clock.now += 0.5
    assert reporter.report().endswith(
        "since the last line 90% waiting for input, 5% for Meta's answers, 5% working "
        "(pace set by the tap)"
    )
    wait_for(stats, clock, "input", 1.0)
    wait_for(stats, clock, "meta", 8.0)  # then Meta was
    clock.now += 1.0
    assert reporter.report().endswith(
        "since the last line 10% waiting for input, 80% for Meta's answers, 10% working "
        "(pace set by Meta's answers)"
    )


def test_final_progress_line_reports_the_rate_over_the_whole_run():
    clock, stats, reporter = clocked_reporter()
    stats.request_submitted("orders", 40)
    stats.request_acknowledged("orders", 40)
    clock.now += 4.0
    reporter.report()
    clock.now += 4.0

    line = reporter.report(final=True)

    assert line.startswith("Final progress: ")
    assert "5.0 events/s" in line


def test_progress_line_names_only_streams_that_moved_and_at_most_ten():
    # a tap with 200 tables made lines of 15 kB, mostly about tables that had not moved
    clock, stats, reporter = clocked_reporter()
    for index in range(30):
        stats.request_submitted(f"table_{index:02d}", 1)
    clock.now += 1.0
    first = reporter.report()
    stats.request_acknowledged("table_25", 1)
    clock.now += 1.0
    second = reporter.report()
    clock.now += 1.0
    third = reporter.report()
    final = reporter.report(final=True)

    assert re.findall(r"table_\d\d", first) == [f"table_{index:02d}" for index in range(10)]
    assert "; 20 more streams]" in first
    assert "[table_25: 0 read, 1 sent, 1 acknowledged, 0 in flight, 0 dead-lettered]" in second
    assert "table_" not in third  # nothing moved
    assert "; 20 more streams]" in final  # the summary that follows lists every stream


def test_progress_line_quotes_a_stream_name_that_would_break_the_line():
    clock, stats, reporter = clocked_reporter()
    map_events(stats, "orders\n2026-11-29 | ERROR | not from the target", [{"em": HASHED_EMAIL}])
    clock.now += 1.0

    line = reporter.report()

    assert "\n" not in line
    assert "['orders\\n2026-11-29 | ERROR | not from the target': 1 read, " in line


def progress_threads() -> int:
    return sum(thread.name == "target-meta-capi-progress" for thread in threading.enumerate())


def test_no_progress_thread_runs_while_paused_for_a_fork_and_one_runs_again_after():
    reporter = ProgressReporter(RunStats(), logging.getLogger("test.target"), interval=0.01)
    with reporter.paused():  # before it started: nothing to pause, nothing started after
        pass
    assert progress_threads() == 0
    reporter.start()
    try:
        with reporter.paused():
            assert progress_threads() == 0
        assert progress_threads() == 1
    finally:
        reporter.stop()
    assert progress_threads() == 0


class LineWaiter(logging.Handler):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.seen = threading.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if record.getMessage().startswith(self.prefix):
            self.seen.set()


def test_reporter_thread_logs_periodically_and_a_final_line_at_stop():
    logger = logging.getLogger("test.progress.periodic")
    logger.setLevel(logging.INFO)
    waiter = LineWaiter("Progress: ")
    logger.addHandler(waiter)
    try:
        reporter = ProgressReporter(RunStats(), logger, interval=0.01)
        reporter.start()
        assert waiter.seen.wait(timeout=10)
        reporter.stop()
        reporter.stop()
    finally:
        logger.removeHandler(waiter)

    assert waiter.lines[-1].startswith("Final progress: ")
    assert sum(line.startswith("Final progress: ") for line in waiter.lines) == 1
    assert not reporter._thread.is_alive()


def test_reporter_thread_flushes_metric_counters_every_metric_interval(caplog):
    stats = RunStats()
    stats.request_submitted("orders", 7)
    metrics = logging.getLogger(METRICS_LOGGER)
    waiter = LineWaiter("METRIC: ")
    metrics.addHandler(waiter)
    reporter = ProgressReporter(
        stats, logging.getLogger("test.target"), interval=0.01, metric_interval=0
    )
    try:
        with caplog.at_level(logging.INFO, logger=METRICS_LOGGER):
            reporter.start()
            assert waiter.seen.wait(timeout=10)  # while the run goes on, before stop()
    finally:
        reporter.stop()
        metrics.removeHandler(waiter)

    assert [(p["metric"], p["value"]) for p in metric_points(caplog)] == [("events_sent", 7)]


def test_reporter_with_interval_zero_logs_only_the_final_line():
    logger = logging.getLogger("test.progress.off")
    logger.setLevel(logging.INFO)
    waiter = LineWaiter("Final progress: ")
    logger.addHandler(waiter)
    try:
        with ProgressReporter(RunStats(), logger, interval=0) as reporter:
            assert reporter._thread is None
    finally:
        logger.removeHandler(waiter)

    assert len(waiter.lines) == 1
    assert waiter.seen.is_set()


def test_reporter_started_after_stop_starts_no_thread():
    reporter = ProgressReporter(RunStats(), logging.getLogger("test.target"), interval=0.01)
    reporter.stop()

    reporter.start()

    assert reporter._thread is None


def test_stopping_the_reporter_flushes_metric_counters(caplog):
    stats = RunStats()
    stats.request_submitted("orders", 7)
    reporter = ProgressReporter(stats, logging.getLogger("test.target"), interval=0)
    with caplog.at_level(logging.INFO, logger=METRICS_LOGGER):
        reporter.stop()

    assert [(p["metric"], p["value"]) for p in metric_points(caplog)] == [("events_sent", 7)]


# --- pace ----------------------------------------------------------------------------------


def test_summary_gives_each_share_of_the_run_and_who_set_the_pace() -> None:
    clock = FakeClock()
    stats = RunStats(clock=clock)
    wait_for(stats, clock, "input", 17.0)
    wait_for(stats, clock, "meta", 1.0)
    clock.now += 2.0
    summary = stats.snapshot()
    assert summary["pace"] == {
        "waiting_for_input_seconds": 17.0,
        "waiting_for_meta_seconds": 1.0,
        "working_seconds": 2.0,
        "set_by": "tap",
    }
    assert (
        "Pace: 17.0 s (85%) waiting for input, 1.0 s (5%) waiting for Meta's answers, "
        "2.0 s (10%) working: the tap set the pace." in format_summary(summary)
    )


def test_pace_line_of_a_short_run_shows_hundredths() -> None:
    clock = FakeClock()
    stats = RunStats(clock=clock)
    wait_for(stats, clock, "meta", 0.11)
    clock.now += 0.39
    [pace_line] = [line for line in format_summary(stats.snapshot()) if line.startswith("Pace")]
    assert pace_line.startswith(
        "Pace: 0.00 s (0%) waiting for input, 0.11 s (22%) waiting for Meta's answers, "
        "0.39 s (78%) working"
    )


def test_pace_line_of_a_run_that_took_no_time_counts_it_all_as_working() -> None:
    stats = RunStats(clock=FakeClock())
    [pace_line] = [line for line in format_summary(stats.snapshot()) if line.startswith("Pace")]
    assert pace_line.startswith(
        "Pace: 0.00 s (0%) waiting for input, 0.00 s (0%) waiting for Meta's answers, "
        "0.00 s (100%) working"
    )


@pytest.mark.parametrize(
    ("waited_for", "verdict"),
    [
        (
            "meta",
            "Meta's answers set the pace (latency, throttling or retries; concurrent_requests "
            "widens the window)",
        ),
        (None, "the target's own work set the pace (record_workers and CPUs add to it)"),
    ],
)
def test_summary_says_what_to_turn_when_meta_or_the_target_set_the_pace(
    waited_for: Wait | None, verdict: str
) -> None:
    clock = FakeClock()
    stats = RunStats(clock=clock)
    if waited_for is not None:
        wait_for(stats, clock, waited_for, 8.0)
    clock.now += 2.0
    [pace_line] = [line for line in format_summary(stats.snapshot()) if line.startswith("Pace")]
    assert pace_line.endswith(f"working: {verdict}.")


class TickingClock(FakeClock):
    """Once started, time passes between any two readings, as between two lines of code."""

    ticking = False

    def __call__(self) -> float:
        if self.ticking:
            self.now += 0.01
        return self.now


def pace_shares(line: str) -> list[int]:
    return [int(share) for share in re.findall(r"(\d+)%", line)]


def test_a_wait_as_long_as_the_run_and_still_going_on_is_never_longer_than_the_run() -> None:
    clock = TickingClock()
    stats = RunStats(clock=clock)
    with stats.pace_clock.waiting_for("input"):  # from the start, e.g. a tap that never wrote
        clock.ticking = True
        summary = stats.snapshot()  # e.g. for a failure while waiting
    assert summary["pace"]["waiting_for_input_seconds"] <= summary["duration_seconds"]


@pytest.mark.parametrize(
    ("input_wait", "answer_wait", "working"),
    [(0.0215, 0.0605, 0.0), (1.0, 1.0, 1.0), (0.005, 0.005, 0.99), (2.0, 0.0, 0.0)],
)
def test_pace_shares_add_up_to_a_hundred(
    input_wait: float, answer_wait: float, working: float
) -> None:
    clock = FakeClock()
    stats = RunStats(clock=clock)
    wait_for(stats, clock, "input", input_wait)
    wait_for(stats, clock, "meta", answer_wait)
    clock.now += working
    [pace_line] = [line for line in format_summary(stats.snapshot()) if line.startswith("Pace")]
    assert sum(pace_shares(pace_line)) == 100


def test_a_summary_path_that_is_a_fifo_nobody_reads_is_given_up_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fifo = tmp_path / "summary.fifo"
    os.mkfifo(fifo)
    write_run_summary(RunStats(), logging.getLogger("test.target"), str(fifo))
    assert f"summary_path {fifo} is a FIFO nobody reads" in caplog.text
