"""Bad Singer input: one clear error naming the line, stream or field; exit code 1; no state."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from target_meta_capi.reader import SingerInputError
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.sink import describe_schema_violation

from ._target_support import (
    ORDER_SCHEMA,
    ORDERS_MAPPING,
    STREAM,
    FastRetryTarget,
    order,
    order_stream,
    orders_config,
    read_dead_letters,
    record_line,
    run_in_process,
    schema_line,
    state_line,
)


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("target-meta-capi failed")
    ]


def test_non_json_line_is_named_by_its_line_number(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), record_line(order(1)), "{not json, customer@example.com"]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert "Input line 3 is not valid JSON" in failure
    assert "customer@example.com" not in caplog.text


def test_json_that_is_not_an_object_is_rejected(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), [schema_line(), "[1, 2]"])
    assert result.exit_code == 1
    assert "Input line 2 is not a Singer message" in _failure_lines(caplog)[0]


@pytest.mark.parametrize("opening", ["[", '{"a":'], ids=["arrays", "objects"])
def test_a_line_nested_too_deeply_to_read_is_named_by_its_line_number(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    nested = opening * 100_000 + "1" + closing * 100_000
    deep = record_line(order(2, email="jane@example.com")).replace('"USD"', nested)
    lines = [schema_line(), record_line(order(1)), state_line(1), deep, record_line(order(3))]

    result = run_in_process(orders_config(sandbox.url, tmp_path, batch_size=1), lines)

    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        "target-meta-capi failed: Input line 4 is not valid JSON (it nests arrays and objects "
        "too deeply to be read)"
    ]
    assert "jane@example.com" not in caplog.text
    assert result.states in ([], [{"bookmarks": {STREAM: 1}}])


def test_blank_lines_are_skipped(sandbox: SandboxServer, tmp_path: Path) -> None:
    lines = order_stream(2)
    lines.insert(1, "   ")
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


def test_record_before_its_schema_names_line_and_stream(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), [record_line(order(1))])
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert f"input line 1, stream '{STREAM}'" in failure
    assert "before a corresponding schema" in failure


def test_unknown_message_type_names_the_line(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), json.dumps({"type": "RECORDS", "stream": STREAM, "record": {}})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog)[0].endswith(
        "Input line 2 has unknown message type 'RECORDS' (expected SCHEMA, RECORD, STATE, "
        "BATCH or ACTIVATE_VERSION)"
    )


def test_a_message_type_that_is_not_text_is_named_by_its_json_kind(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the line is read with its numbers as Decimals: Python's repr said Decimal('5.5')
    lines = [schema_line(), json.dumps({"type": 5.5, "stream": STREAM, "record": {}})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog)[0].endswith(
        "Input line 2: its 'type' is a number, not a message type (expected SCHEMA, RECORD, "
        "STATE, BATCH or ACTIVATE_VERSION)"
    )


def test_a_message_without_a_type_says_the_key_is_missing(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), json.dumps({"stream": STREAM, "record": {}})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog)[0].endswith("Input line 2 lacks required key(s) 'type'")


def test_empty_input_is_an_error(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), [])
    assert result.exit_code == 1
    assert "No input" in _failure_lines(caplog)[0]


def test_record_violating_its_schema_names_the_field_but_not_the_value(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), record_line(order(1, total="a lot, ask jane@example.com"))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert "input line 2" in failure
    assert "field 'total'" in failure
    assert "jane@example.com" not in failure


def test_a_value_where_a_nested_schema_is_false_names_the_field(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    customer = {"type": "object", "properties": {"note": False}}
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "customer": customer}}
    lines = [
        schema_line(schema=schema),
        record_line(order(1, customer={"note": "call jane@example.com"})),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Record does not match its SCHEMA (input line 2, stream "
        f"'{STREAM}'): field 'customer.note' holds a value under the schema false, which allows "
        "none"
    ]


def test_a_long_list_a_value_breaks_is_not_quoted_in_the_failure(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    currencies = {"type": "string", "enum": [f"C{number:02}" for number in range(40)]}
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "currency": currencies}}
    lines = [schema_line(schema=schema), record_line(order(1, currency="EUR"))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert failure.endswith("field 'currency' breaks the schema's 'enum' ('…')")


def _untyped_orders(*records: dict) -> list[str]:
    """Orders whose time and total arrive as text the tap did not type (a CSV, a JSON column)."""
    schema = {
        "properties": {
            "order_id": {"type": "integer"},
            "created_at": {"type": "string"},
            "email": {"type": "string"},
            "client_ip": {"type": "string"},
            "user_agent": {"type": "string"},
            "page_url": {"type": "string"},
            "total": {"type": "string"},
            "currency": {"type": "string"},
        }
    }
    header = {"type": "SCHEMA", "stream": STREAM, "schema": schema, "key_properties": ["order_id"]}
    return [json.dumps(header), *map(record_line, records), state_line(len(records))]


def _untyped_order(order_id: int, **fields: str) -> dict:
    good = order(order_id)
    return {
        **{
            column: good[column] for column in ("created_at", "client_ip", "user_agent", "page_url")
        },
        "order_id": order_id,
        "email": f"customer{order_id}@example.com",
        "total": "12.50",
        "currency": "EUR",
        **fields,
    }


@pytest.mark.parametrize(
    ("field", "value", "mapped_field"),
    [
        ("created_at", "2024-02-30T00:00:00", "event_time"),
        ("created_at", "last tuesday jane@example.com", "event_time"),
        ("total", "12,50", "custom_data.value"),
        ("total", "NaN", "custom_data.value"),
    ],
)
def test_a_value_its_field_cannot_take_dead_letters_that_row_and_the_run_goes_on(
    sandbox: SandboxServer, tmp_path: Path, field: str, value: str, mapped_field: str
) -> None:
    records = [_untyped_order(1), _untyped_order(2, **{field: value}), _untyped_order(3)]
    result = run_in_process(orders_config(sandbox.url, tmp_path), _untyped_orders(*records))
    assert result.exit_code == 0
    assert result.states == [{"bookmarks": {STREAM: 3}}]
    assert sandbox.stats()["events_received"] == 2
    [letter] = read_dead_letters(tmp_path)
    assert letter["key"] == {"order_id": 2}
    assert (letter["reason"], letter["rule"], letter["field"]) == (
        "unmappable",
        "unmappable_value",
        mapped_field,
    )
    assert letter["event"] is None
    assert letter["message"].endswith("(input line 3)")  # after the SCHEMA and order 1
    assert value not in json.dumps(letter)
    summary = result.target.stats.snapshot()
    assert summary["dead_letters_by_reason"] == {f"mapping:{mapped_field}": 1}
    assert summary["totals"]["events_unsent"] == 0


def test_a_deeply_nested_user_data_value_is_left_out_and_its_event_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    schema = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "user_data": {"type": "object"}},
    }
    nested: object = "fb.1.1554763741205.AbCdEfGhIjKlMnOp"
    for _ in range(600):  # fbc takes one value, not a list: it is dropped, however deep
        nested = [nested]
    records = [order(1), order(2, user_data={"fbc": nested}), order(3)]
    lines = [schema_line(schema=schema), *map(record_line, records), state_line(3)]

    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)

    assert result.exit_code == 0
    assert result.states == [{"bookmarks": {STREAM: 3}}]
    events = {int(item["event"]["event_id"]): item["event"] for item in sandbox.accepted_events()}
    assert sorted(events) == [1, 2, 3]
    assert "fbc" not in events[2]["user_data"]
    assert read_dead_letters(tmp_path) == []


def test_with_on_invalid_event_fail_an_unmappable_value_stops_the_run_naming_it(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [_untyped_order(7, created_at="last tuesday jane@example.com")]
    config = orders_config(sandbox.url, tmp_path, on_invalid_event="fail")
    result = run_in_process(config, _untyped_orders(*records))
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    [failure] = _failure_lines(caplog)
    assert f"stream '{STREAM}'" in failure
    assert "order_id=7" in failure
    assert "'event_time'" in failure
    assert "record #1" in failure
    assert "at input line 2" in failure
    assert "jane@example.com" not in failure


def test_events_mapped_but_not_sent_when_the_run_stops_are_counted_and_warned_about(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = order_stream(3)
    lines.insert(4, "not json")  # after the third record: the batch is still half full
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    summary = result.target.stats.snapshot()
    assert summary["totals"]["events_unsent"] == 3
    assert (
        f"Stream {STREAM!r}: 3 mapped events were not sent: the run stopped before they were, "
        "and no state covers them (a rerun from the last state processes them again)."
    ) in summary["warnings"]


def test_bad_line_after_unacknowledged_records_writes_no_state_for_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The records before the bad line sit in a half-full batch: never sent, never in a state.
    config = orders_config(sandbox.url, tmp_path, batch_size=100)
    lines = [schema_line(), record_line(order(1)), state_line(1), record_line(order(2)), "oops"]
    result = run_in_process(config, lines)
    assert result.exit_code == 1
    acknowledged = {int(e["event"]["event_id"]) for e in sandbox.accepted_events()}
    for state in result.states:
        assert all(
            order_id in acknowledged for order_id in range(1, state["bookmarks"][STREAM] + 1)
        )
    assert 2 not in acknowledged


def test_message_missing_a_required_key_is_named_without_quoting_the_line(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), json.dumps({"type": "RECORD", "record": {"email": "jane@example.com"}})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert "Input line 2 lacks required key(s) 'stream'" in _failure_lines(caplog)[0]
    assert "jane@example.com" not in caplog.text


def test_the_sdks_own_check_of_a_messages_keys_names_the_line_without_quoting_it(
    tmp_path: Path,
) -> None:
    # singer-sdk's message hooks check required keys with this method, whose own version
    # quotes the whole message; the target checks first, but an SDK hook reaching it must
    # not put the customer data of the line in the error
    target = FastRetryTarget(config=orders_config("http://127.0.0.1:9", tmp_path))
    with pytest.raises(SingerInputError) as raised:
        target._assert_line_requires({"record": {"email": "jane@example.com"}}, {"stream"})
    assert str(raised.value) == "Input line 0 lacks required key(s) 'stream'"


@pytest.mark.parametrize(
    ("stream", "kind"),
    [(None, "null"), (5, "a number"), ([STREAM], "an array"), ("", "empty")],
)
def test_a_record_whose_stream_is_no_name_is_refused_naming_line_and_key(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stream: object,
    kind: str,
) -> None:
    # the SDK failed with a TypeError inside it, or looked for a SCHEMA of stream '5'
    lines = [schema_line(), json.dumps({"type": "RECORD", "stream": stream, "record": order(1)})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Input line 2, RECORD message: 'stream' is {kind}, "
        "not a stream name"
    ]


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        (None, "null"),
        ([1, 2], "an array"),
        ("jane@example.com", "a string"),
        (42, "a number"),
        (True, "true or false"),
    ],
)
def test_a_record_that_is_not_a_json_object_is_refused_naming_line_and_stream(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    record: object,
    kind: str,
) -> None:
    lines = [
        schema_line(),
        record_line(order(1)),
        state_line(1),
        json.dumps({"type": "RECORD", "stream": STREAM, "record": record}),
        record_line(order(2)),
        state_line(2),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path, batch_size=1), lines)

    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Input line 4, stream '{STREAM}': 'record' is {kind}, "
        "not a JSON object"
    ]
    assert "jane@example.com" not in caplog.text
    # state 1 only if Meta's answer for order 1 came before the run stopped
    assert result.states in ([], [{"bookmarks": {STREAM: 1}}])
    assert "2" not in [item["event"]["event_id"] for item in sandbox.accepted_events()]


def test_unparseable_date_names_the_field_but_not_the_value(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [schema_line(), record_line(order(1, created_at="31/02/1990 jane"))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert f"input line 2, stream '{STREAM}'" in failure
    assert "field 'created_at' is not an ISO 8601 date" in failure
    assert "jane" not in failure


@pytest.mark.parametrize(
    "extra_fields", [{}, {"coupon": "X"}], ids=["fields of the schema", "and one without schema"]
)
def test_a_value_that_is_not_text_in_a_date_column_is_a_date_that_cannot_be_parsed(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    extra_fields: dict[str, str],
) -> None:
    # a column typed as text or integer with a date-time format: a number in it is no date
    created_at = {"type": ["string", "integer"], "format": "date-time"}
    schema = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "created_at": created_at},
    }
    lines = [
        schema_line(schema=schema),
        record_line(order(1, created_at=1764396448, **extra_fields)),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert f"input line 2, stream '{STREAM}'" in failure
    assert "field 'created_at' is not an ISO 8601 date" in failure
    assert sandbox.accepted_events() == []


def test_schema_violations_from_jsonschema_are_described_without_the_value() -> None:
    validator = jsonschema.Draft202012Validator(
        {"properties": {"customer": {"properties": {"age": {"type": "integer"}}}}}
    )
    error = next(validator.iter_errors({"customer": {"age": "jane@example.com"}}))
    assert describe_schema_violation(error, validator.schema) == (
        "field 'customer.age' breaks the schema's 'type' ('integer')"
    )


def test_a_nested_key_the_schema_does_not_name_is_masked_as_it_may_be_customer_data() -> None:
    schema = {
        "properties": {
            "contacts": {"additionalProperties": {"properties": {"age": {"type": "integer"}}}}
        }
    }
    validator = jsonschema.Draft202012Validator(schema)
    error = next(validator.iter_errors({"contacts": {"jane@example.com": {"age": "x"}}}))
    assert describe_schema_violation(error, schema) == (
        "field 'contacts.<redacted>.age' breaks the schema's 'type' ('integer')"
    )


def test_nested_keys_the_schema_names_are_shown_through_lists_and_all_of() -> None:
    line = {"type": "object", "properties": {"sku": {"type": "string"}}}
    schema = {"properties": {"order": {"allOf": [{"properties": {"lines": {"items": line}}}]}}}
    validator = jsonschema.Draft202012Validator(schema)
    error = next(validator.iter_errors({"order": {"lines": [{"sku": "a"}, {"sku": 7}]}}))
    assert describe_schema_violation(error, schema) == (
        "field 'order.lines.1.sku' breaks the schema's 'type' ('string')"
    )


@pytest.mark.parametrize(
    "draft_2020_keyword",
    [{}, {"dependentRequired": {}}],  # fastjsonschema; jsonschema, for a keyword past Draft 7
    ids=["fastjsonschema", "jsonschema"],
)
def test_a_key_of_a_record_object_is_not_in_the_failure_whichever_validator_checks_it(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    draft_2020_keyword: dict,
) -> None:
    contacts = {"type": "object", "additionalProperties": {"type": "integer"}}
    schema = {
        **ORDER_SCHEMA,
        **draft_2020_keyword,
        "properties": {**ORDER_SCHEMA["properties"], "contacts": contacts},
    }
    lines = [
        schema_line(schema=schema),
        record_line(order(1, contacts={"jane@example.com": "x"})),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Record does not match its SCHEMA (input line 2, stream "
        f"'{STREAM}'): field 'contacts.<redacted>' breaks the schema's 'type' ('integer')"
    ]


def test_a_missing_required_field_is_named_not_only_the_list_of_required_ones() -> None:
    validator = jsonschema.Draft202012Validator(
        {"properties": {"customer": {"required": ["id", "email", "country"]}}}
    )
    error = next(validator.iter_errors({"customer": {"id": 7, "country": "jane@example.com"}}))
    assert describe_schema_violation(error, validator.schema) == (
        "field 'customer.email' is missing (the schema's 'required': "
        '["id", "email", "country"])'
    )


def test_a_record_missing_a_required_column_fails_the_run_naming_the_column(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    row = order(1)
    del row["total"]
    result = run_in_process(orders_config(sandbox.url, tmp_path), [schema_line(), record_line(row)])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        "target-meta-capi failed: Record does not match its SCHEMA (input line 2, stream "
        f"'{STREAM}'): field 'total' is missing (the schema's 'required': "
        '["order_id", "total"])'
    ]


def test_a_schemas_value_a_record_breaks_is_quoted_as_the_schemas_json_wrote_it(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the SCHEMA line is read with its numbers as Decimals: [Decimal('1.5'), Decimal('2.5')]
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"]}}
    schema["properties"]["total"] = {"type": "number", "enum": [1.5, 2.5]}
    lines = [schema_line(schema=schema), record_line(order(1, total=0.1))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog)[0].endswith(
        "field 'total' breaks the schema's 'enum' ([1.5, 2.5])"
    )


def test_a_column_the_schema_does_not_allow_is_named() -> None:
    validator = jsonschema.Draft202012Validator(
        {
            "properties": {"order_id": {}},
            "patternProperties": {"^x_": {}},
            "additionalProperties": False,
        }
    )
    error = next(validator.iter_errors({"order_id": 1, "x_note": 2, "coupon": "jane@example.com"}))
    assert describe_schema_violation(error) == (
        "field 'coupon' is not among the schema's properties, and its 'additionalProperties' "
        "is false"
    )


def test_a_schema_violation_of_unknown_origin_is_described_without_details() -> None:
    assert describe_schema_violation(None) == "the record does not match its SCHEMA"


def test_record_missing_its_key_property_fails_the_run(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schema = {**ORDER_SCHEMA, "required": ["total"]}
    record = order(1)
    del record["order_id"]
    lines = [schema_line(schema=schema), record_line(record)]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert failure.endswith(
        f"MissingKeyPropertiesError (input line 2, stream {STREAM!r}): Record has no "
        "'order_id', a key property of its stream (key_properties ['order_id']): the tap must "
        "send every key property in every record"
    )
    assert "\n" not in failure  # one line, as every failure
    assert sandbox.accepted_events() == []


# --- half a surrogate pair -----------------------------------------------------------------

# json.dumps writes each as an escape: "\ude00…(\ud83d) \ud83d\ude00 C:\\ud83d"
CUT_USER_AGENT = "\ude00Mozilla/5.0 (\ud83d) \U0001f600 C:\\ud83d"


def test_a_string_with_half_a_surrogate_pair_is_delivered_with_the_replacement_character(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = order_stream(3, records=[order(1), order(2, user_agent=CUT_USER_AGENT), order(3)])
    assert "\\ud83d)" in lines[2]  # as taps write it: an escape, not a character

    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)

    assert result.exit_code == 0, caplog.text
    assert result.states == [{"bookmarks": {STREAM: 3}}]
    agents = {
        int(item["event"]["event_id"]): item["event"]["user_data"]["client_user_agent"]
        for item in sandbox.accepted_events()
    }
    # lone halves replaced; a whole pair and an escaped backslash before "ud83d" kept
    assert agents[2] == "\ufffdMozilla/5.0 (\ufffd) \U0001f600 C:\\ud83d"
    assert sorted(agents) == [1, 2, 3]
    assert "Replaced 2 lone UTF-16 surrogate(s)" in caplog.text
    assert "the first at input line 3" in caplog.text


def test_a_line_with_half_a_surrogate_pair_and_another_flaw_is_refused_for_the_other_flaw(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flawed = record_line(order(2, email="jane@example.com\ud83d")).replace("19.99", "NaN")

    result = run_in_process(orders_config(sandbox.url, tmp_path), [schema_line(), flawed])

    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert failure.endswith(
        "Input line 2 is not valid JSON "
        f"(JSON is malformed: invalid character (byte {flawed.index('NaN')})): NaN and "
        "Infinity are no JSON numbers; the tap must write null for them"
    )
    assert "jane@example.com" not in caplog.text
    assert result.states == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"schema": None}, "'schema' is null, not a JSON object"),
        ({"schema": [1]}, "'schema' is an array, not a JSON object"),
        ({"schema": {"type": "object"}}, "the schema lacks 'properties' (its columns)"),
        ({"stream": None}, "'stream' is null, not a stream name"),
        ({"stream": ""}, "'stream' is empty, not a stream name"),
        ({"stream": {"name": "orders"}}, "'stream' is a JSON object, not a stream name"),
        ({"key_properties": "order_id"}, "'key_properties' is not an array of column names"),
        ({"key_properties": [1]}, "'key_properties' is not an array of column names"),
    ],
)
def test_a_schema_message_of_the_wrong_shape_is_refused_naming_the_part(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    changes: dict,
    problem: str,
) -> None:
    schema = {**json.loads(schema_line()), **changes}
    result = run_in_process(orders_config(sandbox.url, tmp_path), [json.dumps(schema)])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Input line 1, SCHEMA message: {problem}"
    ]


@pytest.mark.parametrize(
    ("properties", "kind"), [(None, "null"), (["order_id", "total"], "an array")]
)
def test_a_schema_whose_properties_are_not_an_object_is_refused_naming_them(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    properties: object,
    kind: str,
) -> None:
    schema = {**ORDER_SCHEMA, "properties": properties}
    result = run_in_process(orders_config(sandbox.url, tmp_path), [schema_line(schema=schema)])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        "target-meta-capi failed: Input line 1, SCHEMA message: the schema's 'properties' is "
        f"{kind}, not a JSON object"
    ]


@pytest.mark.parametrize("missing", ["stream", "schema"])
def test_a_schema_message_without_its_stream_or_schema_says_which_key_it_lacks(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, missing: str
) -> None:
    schema = json.loads(schema_line())
    del schema[missing]
    result = run_in_process(orders_config(sandbox.url, tmp_path), [json.dumps(schema)])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Input line 1 lacks required key(s) '{missing}'"
    ]


def test_a_schema_referring_to_a_definition_it_lacks_is_named_as_the_schemas_fault(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    properties = {**ORDER_SCHEMA["properties"], "currency": {"$ref": "#/definitions/currency"}}
    schema = {**ORDER_SCHEMA, "properties": properties}
    lines = [schema_line(schema=schema), record_line(order(1, currency="jane@example.com"))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: InvalidJSONSchema (input line 1, stream '{STREAM}'): the "
        "stream's SCHEMA has a $ref that cannot be resolved: '#/definitions/currency' (column "
        "'currency')"
    ]
    assert "jane@example.com" not in caplog.text


def test_a_schema_that_is_not_valid_json_schema_names_the_place_and_its_value_as_json(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # jsonschema's own text spanned a dozen lines of the metaschema, printed by Python
    properties = {**ORDER_SCHEMA["properties"], "currency": {"type": "string", "minLength": 1.5}}
    lines = [schema_line(schema={**ORDER_SCHEMA, "properties": properties})]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: InvalidJSONSchema (input line 1, stream '{STREAM}'): the "
        "stream's SCHEMA is not a valid JSON Schema at properties.currency.minLength: 1.5 is "
        "not of type 'integer' (the tap's schema or catalog must be fixed)"
    ]


def test_a_property_whose_schema_is_true_takes_any_value(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "email": True}}
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(schema=schema), record_line(order(1))]
    )
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 1


def test_a_property_whose_schema_is_false_is_refused_naming_it(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "email": False}}
    result = run_in_process(orders_config(sandbox.url, tmp_path), [schema_line(schema=schema)])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        "target-meta-capi failed: Input line 1, SCHEMA message: property 'email' has the "
        "schema false: no value is allowed in it"
    ]


@pytest.mark.parametrize("validate_records", [True, False])
def test_a_property_whose_schema_is_no_object_is_refused_naming_it(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    validate_records: bool,
) -> None:
    # without the check: a metaschema dump, or (records not validated) an AttributeError
    # deep in the SDK's date handling at the first record
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "email": "string"}}
    config = orders_config(sandbox.url, tmp_path, validate_records=validate_records)
    result = run_in_process(config, [schema_line(schema=schema), record_line(order(1))])
    assert result.exit_code == 1
    assert _failure_lines(caplog) == [
        "target-meta-capi failed: Input line 1, SCHEMA message: property 'email' has a string "
        "for its schema, not a JSON object"
    ]


def _orders_mapped_without(*paths: str) -> dict:
    """The orders' mapping with these CAPI fields (and an event name, for "event_name") left
    out: a `streams` entry that forgot them."""
    mapping = {key: value for key, value in ORDERS_MAPPING.items() if key not in paths}
    mapping["fields"] = {
        path: column for path, column in ORDERS_MAPPING["fields"].items() if path not in paths
    }
    return {STREAM: mapping}


def test_a_stream_whose_schema_gives_no_event_time_stops_the_run_at_its_schema(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, streams=_orders_mapped_without("event_time"))
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    assert _failure_lines(caplog) == [
        f"target-meta-capi failed: Stream {STREAM!r}: no column of its SCHEMA (input line 1) "
        "gives event_time, which every event needs, so each record under it would be "
        "dead-lettered; stopped before any was. Map a column to it in the stream's `fields`, e.g. "
        '{"event_time": "created_at"} (columns that look like times: \'created_at\').'
    ]


def test_a_stream_with_no_event_name_from_anywhere_stops_the_run_at_its_schema(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, streams=_orders_mapped_without("event_name"))
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 1
    assert read_dead_letters(tmp_path) == []
    [failure] = _failure_lines(caplog)
    assert f"Stream {STREAM!r}: no column of its SCHEMA (input line 1) gives event_name" in failure
    assert "or default_event_name" in failure


def test_a_stream_with_no_action_source_from_anywhere_stops_the_run_at_its_schema(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, streams=_orders_mapped_without("action_source"))
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    [failure] = _failure_lines(caplog)
    assert f"Stream {STREAM!r}: no column of its SCHEMA (input line 1) gives action_source" in (
        failure
    )
    assert "or default_action_source" in failure


@pytest.mark.parametrize("empty", ["", None, "   "], ids=["empty", "null", "blank"])
@pytest.mark.parametrize("parameter", ["event_time", "event_name"])
def test_a_constant_given_empty_gives_no_parameter_and_the_run_stops_at_the_schema(
    sandbox: SandboxServer, tmp_path: Path, parameter: str, empty: str | None
) -> None:
    # what a Meltano `$VARIABLE` left unset gives
    streams = _orders_mapped_without(parameter)
    streams[STREAM]["constants"] = {parameter: empty}
    result = run_in_process(orders_config(sandbox.url, tmp_path, streams=streams), order_stream(3))
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []


def test_a_stream_given_its_action_source_by_default_action_source_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(
        sandbox.url,
        tmp_path,
        streams=_orders_mapped_without("action_source"),
        default_action_source="website",
    )
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 3


def test_an_event_time_read_inside_an_object_column_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # `fields` may read a value inside an object column ("order.created_at"): that column
    # gives event_time, though no SCHEMA column is named so
    schema = {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}, "order": {"type": "object"}},
    }
    mapping = {
        "event_name": "Lead",
        "action_source": "system_generated",
        "fields": {"event_time": "order.created_at", "user_data.em": "order.email"},
    }
    placed = {"created_at": order(1)["created_at"], "email": "buyer@example.com"}
    record = {"order_id": 1, "order": placed}
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    result = run_in_process(config, [schema_line(schema=schema), record_line(record)])
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 1


def test_an_event_time_mapped_to_a_column_the_schema_lacks_is_named_in_the_stop(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a typo in `fields`: the stop says so, rather than to map a column, which is done
    streams = _orders_mapped_without("event_time")
    streams[STREAM]["fields"]["event_time"] = "created"
    result = run_in_process(orders_config(sandbox.url, tmp_path, streams=streams), order_stream(2))
    assert result.exit_code == 1
    [failure] = _failure_lines(caplog)
    assert (
        "`fields` maps it to 'created', which the SCHEMA does not have; did you mean "
        "'created_at'?" in failure
    )
    assert "Map a column to it" not in failure


def test_a_stream_whose_schema_lists_no_columns_is_mapped_from_its_records_columns(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a schemaless source (no properties listed): the SCHEMA cannot say what records hold
    lines = [schema_line(schema={"type": "object", "properties": {}}), *order_stream(2)[1:]]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 0
    assert len(result.states) == 1
    assert read_dead_letters(tmp_path) == []
