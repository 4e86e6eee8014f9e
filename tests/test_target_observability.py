"""The run summary, progress and METRIC lines of real runs against the sandbox."""

from __future__ import annotations

import importlib.util
import json
import logging
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi import sink as sink_module
from target_meta_capi.capi.normalize import sha256_hex
from target_meta_capi.sandbox import SandboxServer

from ._target_support import (
    ACCESS_TOKEN,
    STREAM,
    order,
    order_stream,
    orders_config,
    record_line,
    run_in_process,
    schema_line,
    state_line,
)

TARGET = Path(sys.executable).with_name("target-meta-capi")
EIGHT_DAYS = 8 * 24 * 3600
SIX_AND_A_HALF_DAYS = 6 * 24 * 3600 + 12 * 3600

CUSTOMERS = "public-customers"
CUSTOMER_COLUMNS = (
    "email", "phone", "first_name", "last_name", "external_id", "fbc", "fbp", "client_ip",
    "user_agent",
)  # fmt: skip
CUSTOMER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "page_url": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"type": "string"},
        **{column: {"type": ["string", "null"]} for column in CUSTOMER_COLUMNS},
    },
}
CUSTOMERS_MAPPING = {
    "event_name": "Purchase",
    "action_source": "website",
    "fields": {
        "event_time": "created_at",
        "event_id": "id",
        "event_source_url": "page_url",
        "custom_data.value": "total",
    },
}
FBC = "fb.1.1596403881668.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"
FBP = "fb.1.1596403881668.1116446470"


def customer(customer_id: int, **columns: str) -> dict[str, Any]:
    base = order(customer_id)
    record = {
        "id": customer_id,
        "created_at": base["created_at"],
        "page_url": base["page_url"],
        "total": 10.0,
        "currency": "EUR",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    }
    record.update(columns)
    return record


def keyed_schema_line(stream: str, schema: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]}
    )


def run_with_summary(
    config: dict[str, Any], lines: list[str], tmp_path: Path
) -> tuple[dict[str, Any], Any]:
    summary_path = tmp_path / "summary.json"
    result = run_in_process({**config, "summary_path": str(summary_path)}, lines)
    return json.loads(summary_path.read_text()), result


def test_match_key_coverage_and_dropped_values_of_a_known_input(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [
        customer(
            1, email="ann@example.com", phone="+1 616 954 7888", first_name="Ann",
            last_name="Lee", external_id="c-1", fbc=FBC, fbp=FBP, client_ip="203.0.113.1",
        ),
        customer(2, email="bo@example.com", phone="+44 844 412 4653", client_ip="203.0.113.2"),
        customer(3, email="cy@example.com", fbp=FBP),
        customer(4, email="di@example.com"),
        customer(5, external_id="c-5"),
        # with its email and phone dropped, a user agent alone would be too broad to match (Meta
        # rejects the event): the IP keeps it deliverable
        customer(6, email="not-an-email", phone="12", client_ip="203.0.113.6"),
    ]  # fmt: skip
    lines = [
        keyed_schema_line(CUSTOMERS, CUSTOMER_SCHEMA),
        *(record_line(record, CUSTOMERS) for record in records),
    ]
    config = orders_config(sandbox.url, tmp_path, streams={CUSTOMERS: CUSTOMERS_MAPPING})

    summary, result = run_with_summary(config, lines, tmp_path)

    assert result.exit_code == 0
    stream = summary["streams"][CUSTOMERS]
    assert stream["match_key_coverage"] == {
        "em": 66.7,
        "ph": 33.3,
        "fn": 16.7,
        "ln": 16.7,
        "external_id": 33.3,
        "fbc": 16.7,
        "fbp": 33.3,
        "client_ip_address": 50.0,
        "client_user_agent": 100.0,
    }
    assert stream["dropped_values"] == {"em": {"invalid": 1}, "ph": {"invalid": 1}}
    assert (stream["events_mapped"], stream["events_acknowledged"]) == (6, 6)
    assert summary["warnings"] == []


def test_a_malformed_click_cookie_is_left_out_counted_and_its_event_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a tag's "undefined", a cookie cut short: Meta would fail the request, not match on it
    records = [
        customer(1, email="ann@example.com", fbc="undefined", fbp=FBP),
        customer(2, email="bo@example.com", fbc=FBC, fbp="fb.1"),
        customer(3, email="cy@example.com", fbc=FBC, fbp=FBP),
    ]
    lines = [
        keyed_schema_line(CUSTOMERS, CUSTOMER_SCHEMA),
        *(record_line(record, CUSTOMERS) for record in records),
    ]
    config = orders_config(sandbox.url, tmp_path, streams={CUSTOMERS: CUSTOMERS_MAPPING})

    summary, result = run_with_summary(config, lines, tmp_path)

    assert result.exit_code == 0
    user_data = {
        int(item["event"]["event_id"]): item["event"]["user_data"]
        for item in sandbox.accepted_events()
    }
    assert [sorted(set(user_data[n]) & {"fbc", "fbp"}) for n in (1, 2, 3)] == [
        ["fbp"],
        ["fbc"],
        ["fbc", "fbp"],
    ]
    stream = summary["streams"][CUSTOMERS]
    assert stream["dropped_values"] == {"fbc": {"invalid": 1}, "fbp": {"invalid": 1}}
    assert stream["events_dead_lettered"] == 0


def test_an_event_left_with_no_customer_information_but_a_malformed_cookie_is_dead_lettered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    mapping = {**CUSTOMERS_MAPPING, "action_source": "system_generated"}
    lines = [
        keyed_schema_line(CUSTOMERS, CUSTOMER_SCHEMA),
        record_line(customer(1, fbc="undefined"), CUSTOMERS),
    ]
    config = orders_config(sandbox.url, tmp_path, streams={CUSTOMERS: mapping})

    summary, result = run_with_summary(config, lines, tmp_path)

    assert result.exit_code == 0
    [letter] = [json.loads(line) for line in (tmp_path / "dead_letters.jsonl").open()]
    assert letter["rule"] == "user_data_missing_match_key"
    assert "fbc invalid" in letter["message"]
    assert summary["streams"][CUSTOMERS]["dead_letters_by_reason"] == {
        "rule:user_data_missing_match_key": 1
    }


def run_customers(
    sandbox: SandboxServer,
    tmp_path: Path,
    records: list[dict[str, Any]],
    schema: dict[str, Any] = CUSTOMER_SCHEMA,
    **settings: Any,
) -> tuple[dict[str, Any], list[str | None]]:
    """A run of the customers' stream that succeeds: its summary, and the phone hash of each
    event the sandbox accepted."""
    lines = [
        keyed_schema_line(CUSTOMERS, schema),
        *(record_line(record, CUSTOMERS) for record in records),
    ]
    config = orders_config(
        sandbox.url, tmp_path, streams={CUSTOMERS: CUSTOMERS_MAPPING}, **settings
    )
    summary, result = run_with_summary(config, lines, tmp_path)
    assert result.exit_code == 0
    return summary, [item["event"]["user_data"].get("ph") for item in sandbox.accepted_events()]


@pytest.mark.parametrize("phone", ["07700 900123", "(616) 954-7888"])
def test_phones_dialled_inside_their_country_are_left_out_and_warned_about_without_a_country(
    sandbox: SandboxServer, tmp_path: Path, phone: str
) -> None:
    records = [customer(n, email=f"c{n}@example.com", phone=phone) for n in (1, 2)]

    summary, phones = run_customers(sandbox, tmp_path, records)

    assert summary["streams"][CUSTOMERS]["dropped_values"] == {"ph": {"no_country_code": 2}}
    assert phones == [None, None]
    [warning] = summary["warnings"]
    assert warning.startswith(f"Stream {CUSTOMERS!r}: 2 phone numbers were left out")
    assert "Set phone_country_code" in warning


def test_phones_written_with_a_trunk_zero_are_sent_with_the_phone_country_code_they_lack(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [customer(1, email="c1@example.com", phone="07700 900123")]

    summary, phones = run_customers(sandbox, tmp_path, records, phone_country_code="GB")

    assert summary["streams"][CUSTOMERS]["dropped_values"] == {}
    assert phones == [sha256_hex("447700900123")]
    assert summary["warnings"] == []


def test_phone_country_from_country_on_a_stream_without_a_country_is_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [customer(1, email="c1@example.com", phone="07700 900123")]

    summary, phones = run_customers(
        sandbox, tmp_path, records, phone_country_from_country=True, phone_country_code="44"
    )

    assert summary["warnings"] == [
        f"Stream {CUSTOMERS!r}: phone_country_from_country reads each phone number in its "
        "event's user_data.country, which nothing in this stream gives: its numbers written "
        "without + or 00 are read in GB. Map user_data.country to the column holding the "
        "customer's country."
    ]
    assert phones == [sha256_hex("447700900123")]


def test_phone_country_from_country_on_a_stream_with_a_country_column_reads_it_unwarned(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    schema = {**CUSTOMER_SCHEMA, "properties": {**CUSTOMER_SCHEMA["properties"]}}
    schema["properties"]["country"] = {"type": ["string", "null"]}
    records = [customer(1, email="c1@example.com", phone="06 12 34 56 78", country="France")]

    summary, phones = run_customers(
        sandbox, tmp_path, records, schema, phone_country_from_country=True
    )

    assert summary["warnings"] == []
    assert phones == [sha256_hex("33612345678")]


def test_local_dead_letters_are_counted_by_rule(sandbox: SandboxServer, tmp_path: Path) -> None:
    records = [
        order(1),
        order(2, currency="dollars"),
        order(3, age_seconds=EIGHT_DAYS),
        order(4, currency="€"),
        order(5),
    ]

    summary, _ = run_with_summary(
        orders_config(sandbox.url, tmp_path), order_stream(5, records=records), tmp_path
    )

    assert summary["dead_letters_by_reason"] == {
        "rule:event_time_too_old": 1,
        "rule:purchase_currency_invalid": 2,
    }
    stream = summary["streams"][STREAM]
    assert (stream["events_sent"], stream["events_acknowledged"]) == (2, 2)
    assert (stream["events_dead_lettered"], stream["events_in_flight"]) == (3, 0)
    assert summary["requests"]["attempts_by_status"] == {"200": 1}


@pytest.fixture
def no_local_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let events through that only Meta (the sandbox) rejects, as if our rules missed them."""
    monkeypatch.setattr(sink_module, "validate_event", lambda event, **_: [])


@pytest.mark.usefixtures("no_local_validation")
def test_events_meta_rejects_are_counted_by_code_and_subcode(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [order(1), order(2, age_seconds=EIGHT_DAYS)]

    summary, _ = run_with_summary(
        orders_config(sandbox.url, tmp_path), order_stream(2, records=records), tmp_path
    )

    assert summary["dead_letters_by_reason"] == {"meta:100/2804003": 1}
    requests = summary["requests"]
    # the pair is rejected, then each half is sent alone: one accepted, one rejected
    assert requests["attempts_by_status"] == {"200": 1, "400": 2}
    assert requests["failures_by_reason"] == {"meta:100/2804003": 2}
    assert requests["retries"] == 0
    stream = summary["streams"][STREAM]
    assert (stream["events_acknowledged"], stream["events_in_flight"]) == (1, 0)


def seeded_faults(seed: int, requests: int, rates: dict[str, float]) -> Counter[str]:
    """Replay the sandbox's documented draws: two per request, the second picks the fault."""
    draws = random.Random(seed)
    faults: Counter[str] = Counter()
    successes = 0
    while successes < requests:
        draws.random()
        fault_draw = draws.random()
        threshold = 0.0
        for reason, rate in rates.items():
            threshold += rate
            if fault_draw < threshold:
                faults[reason] += 1
                break
        else:
            successes += 1
    return faults


def test_retries_under_injected_faults_are_counted_by_reason(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(
        html_502_rate=0.1, transient_error_rate=0.1, throttle_rate=0.1, seed=3
    )
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, concurrent_requests=1, max_retries=12
    )
    # in the sandbox's order of fault kinds: html_502, transient_error, throttle
    expected = seeded_faults(
        3, requests=8, rates={"http:502": 0.1, "meta:2": 0.1, "meta:17/2446079": 0.1}
    )

    summary, result = run_with_summary(config, order_stream(40), tmp_path)

    assert result.exit_code == 0
    requests = summary["requests"]
    assert requests["retries_by_reason"] == dict(sorted(expected.items()))
    assert requests["retries"] == sum(expected.values()) == sum(sandbox.stats()["faults"].values())
    assert requests["failures_by_reason"] == requests["retries_by_reason"]
    assert requests["attempts_by_status"] == {
        "200": 8,
        **{
            status: count
            for status, count in (
                ("400", expected["meta:17/2446079"]),
                ("500", expected["meta:2"]),
                ("502", expected["http:502"]),
            )
            if count
        },
    }
    assert summary["totals"]["events_acknowledged"] == 40


@pytest.mark.parametrize(("usage", "warned"), [(40, False), (95, True)])
def test_peak_rate_limit_usage_meta_reports_is_summarized_and_warned_about_once_from_90(
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    usage: int,
    warned: bool,
) -> None:
    sandbox = sandbox_factory(usage_percent=usage)
    config = orders_config(sandbox.url, tmp_path, batch_size=5)
    with caplog.at_level(logging.WARNING):
        summary, result = run_with_summary(config, order_stream(20), tmp_path)
    assert result.exit_code == 0
    assert summary["requests"]["peak_rate_limit_usage_percent"] == usage
    warnings = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert len(warnings) == int(warned)
    assert all("Lower concurrent_requests" in warning for warning in warnings)
    assert summary["warnings"] == warnings


def test_a_run_without_usage_headers_reports_no_usage(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    summary, _ = run_with_summary(orders_config(sandbox.url, tmp_path), order_stream(3), tmp_path)
    assert summary["requests"]["peak_rate_limit_usage_percent"] is None


def test_skipped_stream_is_counted_and_warned_about_once(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    audit_schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    lines = [
        *order_stream(2)[:-1],
        keyed_schema_line("public-audit", audit_schema),
        *(record_line({"id": i}, "public-audit") for i in range(3)),
        state_line(2),
    ]

    with caplog.at_level(logging.WARNING):
        summary, result = run_with_summary(orders_config(sandbox.url, tmp_path), lines, tmp_path)

    assert result.exit_code == 0
    audit = summary["streams"]["public-audit"]
    assert (audit["records_read"], audit["events_skipped"], audit["events_sent"]) == (3, 3, 0)
    assert summary["totals"]["events_acknowledged"] == 2
    warnings = [r.getMessage() for r in caplog.records if "public-audit" in r.getMessage()]
    assert len(warnings) == 1
    assert summary["warnings"] == warnings


def test_a_skipped_streams_warning_says_the_state_moves_past_its_records(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # An incremental tap's bookmark for the stream advances over rows never sent: an entry
    # added to `streams` later sends only newer ones, unless the bookmark is reset.
    audit_schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    lines = [
        *order_stream(1)[:-1],
        keyed_schema_line("public-audit", audit_schema),
        record_line({"id": 1}, "public-audit"),
        state_line(1),
    ]

    summary, _ = run_with_summary(orders_config(sandbox.url, tmp_path), lines, tmp_path)

    (warning,) = [w for w in summary["warnings"] if "public-audit" in w]
    assert warning.endswith(
        "its records are not sent to Meta, and the state written moves past them: an entry "
        "added to `streams` later sends only the rows the tap reads after that, unless this "
        "stream's bookmark is reset first."
    )


def test_a_stream_with_customer_fields_but_no_event_name_is_skipped_saying_so(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    people_schema = {"type": "object", "properties": {"email": {"type": "string"}}}
    lines = [
        *order_stream(1)[:-1],
        keyed_schema_line("public-people", people_schema),
        record_line({"email": "mary@example.com"}, "public-people"),
        state_line(1),
    ]

    summary, _ = run_with_summary(orders_config(sandbox.url, tmp_path), lines, tmp_path)

    # it has customer fields (an e-mail): what it lacks is an event name
    assert summary["streams"]["public-people"]["skipped_reason"] == (
        "no entry in `streams` and not recognisable customer fields, an event name and an "
        "event_time column"
    )


def test_a_stream_with_customer_fields_and_an_event_name_but_no_event_time_is_skipped(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # default_event_name gives every stream an event name: a users table is not an event
    people_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "created_at": {"type": "string"},
        },
    }
    person = {"id": 1, "email": "mary@example.com", "created_at": "2026-11-29"}
    lines = [
        *order_stream(1)[:-1],
        keyed_schema_line("public-people", people_schema),
        record_line(person, "public-people"),
        state_line(1),
    ]
    config = orders_config(sandbox.url, tmp_path, default_event_name="Lead")

    summary, result = run_with_summary(config, lines, tmp_path)

    assert result.exit_code == 0
    people = summary["streams"]["public-people"]
    assert people["skipped_reason"].endswith("an event name and an event_time column")
    assert people["dead_letters_by_reason"] == {}


def test_events_near_the_cutoff_are_counted_and_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [order(1), order(2, age_seconds=SIX_AND_A_HALF_DAYS), order(3)]
    records.append(order(4, age_seconds=SIX_AND_A_HALF_DAYS))

    summary, _ = run_with_summary(
        orders_config(sandbox.url, tmp_path), order_stream(4, records=records), tmp_path
    )

    stream = summary["streams"][STREAM]
    assert (stream["events_near_cutoff"], stream["events_acknowledged"]) == (2, 4)
    [warning] = summary["warnings"]
    assert warning.startswith(f"Stream {STREAM!r}: 2 events were within 24 h")


def test_stream_without_match_keys_is_warned_about(sandbox: SandboxServer, tmp_path: Path) -> None:
    store_schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "city": {"type": "string"},
        },
    }
    store_mapping = {
        "event_name": "Lead",
        "action_source": "physical_store",
        # a lead_id, which Meta takes, and a city: events Meta accepts and can hardly attribute
        "fields": {"event_time": "created_at", "event_id": "id", "user_data.lead_id": "id"},
    }
    created_at = order(1)["created_at"]
    lines = [
        keyed_schema_line("public-visits", store_schema),
        *(
            record_line({"id": i, "created_at": created_at, "city": "Menlo Park"}, "public-visits")
            for i in range(4)
        ),
    ]
    config = orders_config(sandbox.url, tmp_path, streams={"public-visits": store_mapping})

    summary, _ = run_with_summary(config, lines, tmp_path)

    visits = summary["streams"]["public-visits"]
    assert set(visits["match_key_coverage"].values()) == {0.0}
    assert visits["events_acknowledged"] == 4
    [warning] = summary["warnings"]
    assert "'public-visits': none of its 4 events carries a match key" in warning


def metric_points(stderr: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.split("METRIC: ", 1)[1])
        for line in stderr.splitlines()
        if "METRIC: " in line
    ]


@pytest.fixture
def cli_run(sandbox: SandboxServer, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The installed command, 30 orders with a STATE every 10, progress every 50 ms."""
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url,
        tmp_path,
        batch_size=10,
        progress_interval=0.05,
        summary_path=str(summary_path),
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input="\n".join(order_stream(30, state_every=10)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed, json.loads(summary_path.read_text())


def test_stdout_carries_only_state_lines(cli_run) -> None:
    completed, _ = cli_run

    states = [json.loads(line) for line in completed.stdout.splitlines()]

    assert states
    assert all(set(state) == {"bookmarks"} for state in states)
    assert states[-1] == {"bookmarks": {STREAM: 30}}


def test_stderr_carries_the_final_progress_line_and_the_summary(cli_run) -> None:
    completed, _ = cli_run

    assert (
        "Final progress: 30 records read, 30 events sent, 30 acknowledged, 0 in flight, "
        "0 retries, 0 dead-lettered" in completed.stderr
    )
    assert "Run summary (" in completed.stderr
    assert "match-key coverage: em 100.0%, ph 0.0%" in completed.stderr


def test_metric_lines_count_events_and_time_each_request(cli_run) -> None:
    completed, summary = cli_run

    points = metric_points(completed.stderr)

    counters = Counter()
    for point in points:
        if point["type"] == "counter" and point["tags"].get("stream") == STREAM:
            counters[point["metric"]] += point["value"]
    assert counters["events_sent"] == 30
    assert counters["events_acknowledged"] == 30
    timers = [p for p in points if p["metric"] == "http_request_duration"]
    assert len(timers) == summary["requests"]["attempts"]
    assert {(p["tags"]["http_status_code"], p["tags"]["status"]) for p in timers} == {
        (200, "succeeded")
    }


def test_logs_hold_no_token_and_no_raw_customer_data(cli_run) -> None:
    completed, _ = cli_run

    assert ACCESS_TOKEN not in completed.stderr
    assert "@example.com" not in completed.stderr.lower()


def test_a_stream_map_failing_on_a_record_names_the_error_without_quoting_the_record(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # int() quotes the text it cannot read: Python's message holds the e-mail address
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: {"n": "int(email)"}})
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    completed = subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input="\n".join(order_stream(1)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    last_line = completed.stderr.splitlines()[-1]
    assert "ValueError at " in last_line
    assert f"while processing a record (input line 2, stream '{STREAM}'," in last_line
    assert "@example.com" not in completed.stderr.lower()


def test_a_stream_map_failing_on_a_record_names_the_property_and_its_expression(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    maps = {STREAM: {"domain": "email.split('@')[1]", "n": "int(email)"}}
    config = orders_config(sandbox.url, tmp_path, stream_maps=maps)
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 1
    assert "ValueError at " in caplog.text
    assert (
        f"while processing a record (input line 2, stream '{STREAM}', "
        "stream map property 'n': int(email))"
    ) in caplog.text


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("coupon + 1", "the name 'coupon' is not defined (a column this record lacks?"),
        pytest.param(
            "fake.email()",
            "the name 'fake' is not defined: it is Faker's, which is not installed",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("faker") is not None, reason="Faker is installed"
            ),
        ),
        ("shout(email)", "the function 'shout' is not one stream maps offer"),
        ("lambda: 1", "stream maps do not allow what it uses (Sorry, Lambda is not available"),
        ("2 ** 9999999", "a number it computes is past what stream maps allow"),
        ("'x' * 10000000", "a text or list it makes is longer than stream maps allow"),
    ],
)
def test_a_failing_stream_map_expression_is_named_once_with_why_and_where_to_correct_it(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    expression: str,
    why: str,
) -> None:
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: {"n": expression}})
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 1
    [failure] = [line for line in caplog.text.splitlines() if "target-meta-capi failed" in line]
    assert f"stream map property 'n': {expression})" in failure
    assert why in failure
    assert failure.endswith("; correct it in stream_maps")
    assert failure.count(expression) == 1


@pytest.mark.parametrize(
    ("stream_map", "where", "why"),
    [
        ({"n": "1 +"}, "stream map property 'n': 1 +", "it is not a Python expression"),
        ({"n": ""}, "stream map property 'n': ", "it is empty"),
        ({"n": "  "}, "stream map property 'n':   ", "it is empty"),
        (
            {"__filter__": "email =="},
            "stream map property '__filter__': email ==",
            "it is not a Python expression",
        ),
    ],
)
def test_a_stream_map_expression_that_does_not_parse_is_named_with_its_property(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stream_map: dict[str, str],
    where: str,
    why: str,
) -> None:
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: stream_map})
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 1
    [failure] = [line for line in caplog.text.splitlines() if "target-meta-capi failed" in line]
    assert f"Stream map expression does not parse (input line 1, stream '{STREAM}', {where})" in (
        failure
    )
    assert why in failure
    assert failure.endswith("; correct it in stream_maps")
    assert sandbox.stats()["requests"] == 0


def test_a_message_in_metas_success_answers_is_logged_once_and_counted_per_answer(
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    note = "Parameter partner_agent is deprecated, see https://developers.facebook.com/x?k=v"
    sandbox = sandbox_factory(answer_messages=(note,))
    summary_path = tmp_path / "summary.json"
    config = orders_config(sandbox.url, tmp_path, batch_size=1, summary_path=str(summary_path))
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    shown = (
        "Parameter partner_agent is deprecated, see https://developers.facebook.com/x?<redacted>"
    )
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged.count(f"Meta accepted a request and said: {shown}") == 1
    summary = json.loads(summary_path.read_text())
    assert summary["requests"]["messages_from_meta"] == {shown: 3}


def test_a_stream_map_failing_on_a_records_values_says_to_make_its_expression_handle_them(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: {"n": "int(email)"}})
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 1
    [failure] = [line for line in caplog.text.splitlines() if "target-meta-capi failed" in line]
    assert failure.endswith(
        "its message is not shown, as it may quote the record's values; make the expression "
        "in stream_maps handle them"
    )


def test_a_stream_maps_failing_filter_is_named_as_the_filter(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    maps = {STREAM: {"__filter__": "int(email) > 0"}}
    config = orders_config(sandbox.url, tmp_path, stream_maps=maps)
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 1
    assert "stream map property '__filter__': int(email) > 0)" in caplog.text


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_failure_at_the_end_of_input_after_a_record_is_reported_as_at_the_end_of_input(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    # the last line is a RECORD, fully processed; then the summary cannot be written (a
    # directory took its path meanwhile): no record's failure, and its message hides nothing
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url, tmp_path, summary_path=str(summary_path), record_workers=record_workers
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    target = subprocess.Popen(
        [str(TARGET), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert target.stdin is not None and target.stdout is not None
    target.stdin.write(schema_line() + "\n" + state_line(0) + "\n")
    target.stdin.flush()
    assert json.loads(target.stdout.readline()) == {"bookmarks": {STREAM: 0}}  # started, line 2
    summary_path.mkdir()
    target.stdin.write(record_line(order(1)) + "\n")

    _, stderr = target.communicate(timeout=60)

    assert target.returncode == 1
    assert stderr.splitlines()[-1].endswith(
        "target-meta-capi failed: SummaryWriteError (at the end of input, after line 3): "
        f"Cannot write the run summary file {summary_path}: Is a directory"
    )


# --- pace: who was the slowest side -------------------------------------------------------


def _run_cli_with_summary(
    config: dict[str, Any], tmp_path: Path, write_input: Callable[[Any], None]
) -> dict[str, Any]:
    """The installed command, its stdin written by `write_input` (given the process); the
    run summary it wrote."""
    summary_path = tmp_path / "summary.json"
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({**config, "summary_path": str(summary_path)}))
    process = subprocess.Popen(
        [str(TARGET), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path,
    )  # fmt: skip
    assert process.stdin is not None
    write_input(process)
    _, stderr = process.communicate(timeout=60)  # closes stdin: the end of the input
    assert process.returncode == 0, stderr[-2000:]
    assert "| INFO     | target-meta-capi               | Pace: " in stderr
    return json.loads(summary_path.read_text())


def test_a_tap_slower_than_the_target_is_named_as_setting_the_pace(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = order_stream(40, state_every=10)

    def tap_that_stops_for_a_while(process: Any) -> None:
        process.stdin.write("\n".join(lines[:20]) + "\n")
        process.stdin.flush()
        # the pause starts once the target is at work (its start-up on a busy machine would
        # otherwise take part of it): its first state says it read and sent the first lines
        assert process.stdout.readline().startswith('{"bookmarks"')
        time.sleep(2.0)
        process.stdin.write("\n".join(lines[20:]) + "\n")

    summary = _run_cli_with_summary(
        orders_config(sandbox.url, tmp_path), tmp_path, tap_that_stops_for_a_while
    )
    assert summary["pace"]["set_by"] == "tap"
    assert summary["pace"]["waiting_for_input_seconds"] >= 1.5


def test_slow_answers_from_meta_are_named_as_setting_the_pace(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=800)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1)
    lines = order_stream(20)  # 4 requests, one at a time

    summary = _run_cli_with_summary(
        config, tmp_path, lambda process: process.stdin.write("\n".join(lines) + "\n")
    )
    assert summary["pace"]["set_by"] == "meta"
    assert summary["pace"]["waiting_for_meta_seconds"] >= 2.4


def test_input_read_at_once_never_leaves_the_pace_to_the_tap(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # whether the target's work or the sandbox's answer weighs more depends on which of the
    # two a loaded machine starves (the sandbox runs in the test's process): the verdict
    # between them is checked on a clock of its own in test_summary.py
    lines = order_stream(300)
    summary = _run_cli_with_summary(
        orders_config(sandbox.url, tmp_path),
        tmp_path,
        lambda process: process.stdin.write("\n".join(lines) + "\n"),
    )
    assert summary["pace"]["set_by"] in ("target", "meta")


def test_events_meta_accepted_in_a_request_failing_the_run_on_a_rejection_count_as_acknowledged(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # on_invalid_event 'fail': Meta rejects order 3 of four, and the bisection got the other
    # three accepted before the run stopped. Meta has them: they are acknowledged, not failed.
    sandbox = sandbox_factory(reject_event_ids=("3",))
    config = orders_config(sandbox.url, tmp_path, on_invalid_event="fail")

    summary, result = run_with_summary(config, order_stream(4), tmp_path)

    assert result.exit_code == 1
    accepted = {event["event"]["event_id"] for event in sandbox.accepted_events()}
    assert accepted == {"1", "2", "4"}
    stream = summary["streams"][STREAM]
    assert (stream["events_sent"], stream["events_acknowledged"]) == (4, 3)
    assert (stream["events_failed"], stream["events_in_flight"]) == (1, 0)
    [failed] = [warning for warning in summary["warnings"] if "failed the run" in warning]
    assert failed.startswith(f"Stream {STREAM!r}: 1 event was in requests that failed")


def test_a_failed_run_still_logs_the_record_count_metric_of_the_records_it_processed(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # singer-sdk logs record_count every 60 s and when a stream is cleaned up at the end of
    # the input; a run failing before either must not leave its records uncounted
    config = orders_config(sandbox.url, tmp_path, on_invalid_event="fail")
    records = [order(1), order(2), order(3, currency="dollars"), order(4)]

    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"):
        result = run_in_process(config, order_stream(4, records=records))

    assert result.exit_code == 1
    points = metric_points(caplog.text)
    counted_records = sum(
        point["value"]
        for point in points
        if point["metric"] == "record_count" and point["tags"].get("stream") == STREAM
    )
    assert counted_records == 2  # orders 1 and 2; the run stopped at order 3


@pytest.mark.parametrize("record_workers", [0, 2])
def test_record_count_metric_counts_every_record_once_across_drained_batches(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, record_workers: int
) -> None:
    # singer-sdk counts at moments of its own (0.54 as its record path hands a record over,
    # 0.55 as a batch is drained): the target counts each record once, dead-lettered included
    config = orders_config(sandbox.url, tmp_path, batch_size=2, record_workers=record_workers)
    records = [order(i) for i in range(1, 8)]
    records[3]["currency"] = "dollars"

    with caplog.at_level(logging.INFO, logger="singer_sdk.metrics"):
        result = run_in_process(config, order_stream(7, state_every=3, records=records))

    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 6
    counted_records = sum(
        point["value"]
        for point in metric_points(caplog.text)
        if point["metric"] == "record_count" and point["tags"].get("stream") == STREAM
    )
    assert counted_records == 7


def test_events_meta_accepted_before_their_requests_bisection_failed_for_good_count_as_acknowledged(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # Meta rejects order 3 of four: [1, 2] is accepted, [3] rejected, and [4] meets a transient
    # error (the fifth request, seed 20) that no retry is left for. Meta has orders 1 and 2.
    assert seeded_faults(20, requests=4, rates={"meta:2": 0.5}) == Counter()
    assert seeded_faults(20, requests=5, rates={"meta:2": 0.5}) == Counter({"meta:2": 1})
    sandbox = sandbox_factory(reject_event_ids=("3",), transient_error_rate=0.5, seed=20)
    config = orders_config(sandbox.url, tmp_path, max_retries=0)

    summary, result = run_with_summary(config, order_stream(4), tmp_path)

    assert result.exit_code == 1
    accepted = {event["event"]["event_id"] for event in sandbox.accepted_events()}
    assert accepted == {"1", "2"}
    stream = summary["streams"][STREAM]
    assert (stream["events_sent"], stream["events_acknowledged"]) == (4, 2)
    assert (stream["events_failed"], stream["events_in_flight"]) == (2, 0)
