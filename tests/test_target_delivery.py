"""What the target delivers to the sandbox: counts, hashing, ids, request parameters, dry run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from target_meta_capi.dry_run import DryRunHttpService, DryRunWriteError
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.settings import DEFAULT_PARTNER_AGENT
from tests._http_fixture import RecordingHttpService

from ._target_support import (
    ORDER_SCHEMA,
    ORDERS_MAPPING,
    PIXEL_ID,
    STREAM,
    TEST_EVENT_CODE,
    order,
    order_stream,
    orders_config,
    record_line,
    run_in_process,
    schema_line,
    state_line,
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_record_arrives_exactly_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path, batch_size=7), order_stream(25))
    assert result.exit_code == 0
    event_ids = sorted(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
    assert event_ids == list(range(1, 26))


def test_requests_carry_at_most_batch_size_events(sandbox: SandboxServer, tmp_path: Path) -> None:
    run_in_process(orders_config(sandbox.url, tmp_path, batch_size=7), order_stream(25))
    assert sandbox.stats()["requests"] == 4


def test_customer_data_arrives_normalized_and_hashed(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run_in_process(orders_config(sandbox.url, tmp_path), order_stream(1))
    user_data = sandbox.accepted_events()[0]["event"]["user_data"]
    assert user_data == {
        "em": _sha256("customer1@example.com"),
        "client_ip_address": "203.0.113.7",
        "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    }


def test_mapped_fields_arrive_in_the_event(sandbox: SandboxServer, tmp_path: Path) -> None:
    run_in_process(orders_config(sandbox.url, tmp_path), order_stream(1))
    event = sandbox.accepted_events()[0]["event"]
    assert event["event_name"] == "Purchase"
    assert event["action_source"] == "website"
    assert event["event_source_url"] == "https://shop.example.com/thanks?order=1"
    assert event["custom_data"]["value"] == 19.99
    assert event["custom_data"]["currency"] == "USD"


def test_every_request_carries_test_event_code_and_partner_agent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run_in_process(orders_config(sandbox.url, tmp_path, batch_size=3), order_stream(10))
    params = [item["params"] for item in sandbox.accepted_events()]
    assert len(params) == 10
    assert all(p["test_event_code"] == TEST_EVENT_CODE for p in params)
    assert all(p["partner_agent"] == DEFAULT_PARTNER_AGENT for p in params)
    assert all(p["pixel_id"] == PIXEL_ID for p in params)


def test_derived_event_ids_are_the_same_in_a_second_run(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    mapping = {**ORDERS_MAPPING, "fields": dict(ORDERS_MAPPING["fields"])}
    del mapping["fields"]["event_id"]
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    run_in_process(config, order_stream(5))
    first = [item["event"]["event_id"] for item in sandbox.accepted_events()]
    sandbox.reset()
    run_in_process(config, order_stream(5))
    second = [item["event"]["event_id"] for item in sandbox.accepted_events()]
    assert len(set(first)) == 5
    assert sorted(first) == sorted(second)
    assert all(event_id not in {"1", "2", "3", "4", "5"} for event_id in first)


def test_final_state_is_written_once_everything_is_acknowledged(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(12, state_every=4))
    assert result.states[-1] == {"bookmarks": {STREAM: 12}}
    assert result.target.ledger.unsettled_count == 0


def test_stream_without_mapping_is_skipped_and_its_state_still_written(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = [
        json.dumps(
            {
                "type": "SCHEMA",
                "stream": "inventory",
                "schema": {"properties": {"sku": {"type": "string"}}},
                "key_properties": ["sku"],
            }
        ),
        json.dumps({"type": "RECORD", "stream": "inventory", "record": {"sku": "A-1"}}),
        json.dumps({"type": "STATE", "value": {"inventory": "A-1"}}),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 0
    assert result.states == [{"inventory": "A-1"}]
    assert sandbox.stats()["requests"] == 0


def test_dry_run_sends_nothing_and_writes_payloads_without_token(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    payload_path = tmp_path / "payloads.jsonl"
    config = orders_config(
        sandbox.url, tmp_path, dry_run=True, dry_run_path=str(payload_path), batch_size=2
    )
    del config["access_token"]
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    assert sandbox.stats()["requests"] == 0
    # requests are sent on threads: their lines may come in either order
    lines = sorted(
        (json.loads(line) for line in payload_path.read_text().splitlines()),
        key=lambda line: -len(line["payload"]["data"]),
    )
    assert [len(line["payload"]["data"]) for line in lines] == [2, 1]
    assert all("access_token" not in line["payload"] for line in lines)
    assert lines[0]["url"] == f"{sandbox.url}/v24.0/{PIXEL_ID}/events"
    assert lines[0]["payload"]["test_event_code"] == TEST_EVENT_CODE
    assert lines[0]["payload"]["data"][0]["user_data"]["em"] == _sha256("customer1@example.com")


def test_a_dry_run_into_the_log_masks_the_ip_address_and_user_agent(
    sandbox: SandboxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run=True)  # no dry_run_path: stderr
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 0
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith('{"url"')]
    assert json.loads(line)["payload"]["data"][0]["user_data"] == {
        "em": _sha256("customer1@example.com"),
        "client_ip_address": "<redacted>",
        "client_user_agent": "<redacted>",
    }


def test_dry_run_writes_state_as_if_acknowledged(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=str(tmp_path / "p"))
    result = run_in_process(config, order_stream(3))
    assert result.states == [{"bookmarks": {STREAM: 3}}]


def test_dry_run_says_so_at_start_and_in_the_summary(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=str(tmp_path / "p"))
    with caplog.at_level(logging.INFO):
        result = run_in_process(config, order_stream(3))
    messages = [record.getMessage() for record in caplog.records]
    announcement = (
        "DRY RUN: nothing is sent to Meta; request payloads (without the token) go to "
        f"{tmp_path / 'p'}, and state is written as if Meta had acknowledged them."
    )
    assert announcement in messages
    assert any(
        message.startswith("Run summary of a DRY RUN: nothing was sent to Meta;")
        for message in messages
    )
    assert result.target.stats.snapshot()["dry_run"] is True


def test_a_dry_run_under_meltano_warns_that_meltano_stores_its_state(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Meltano stores the state as if sent: its next real run would skip the dry run's rows
    monkeypatch.setenv("MELTANO_PROJECT_ROOT", str(tmp_path))  # what Meltano sets for plugins
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=str(tmp_path / "p"))
    run_in_process(config, order_stream(1))
    assert (
        "DRY RUN under Meltano: Meltano stores the state this run writes, so its next run "
        "starts after these rows and never sends them, unless this run is "
        "`meltano run --no-state-update ...`."
    ) in [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_a_dry_run_by_hand_does_not_mention_meltano(
    sandbox: SandboxServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MELTANO_PROJECT_ROOT", raising=False)
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=str(tmp_path / "p"))
    run_in_process(config, order_stream(1))
    assert not any("Meltano" in record.getMessage() for record in caplog.records)


def test_a_real_run_is_not_called_a_dry_run(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(1))
    assert result.target.stats.snapshot()["dry_run"] is False


def test_a_run_with_a_test_event_code_says_so_at_start_and_in_the_summary(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a code left in a live config turns every conversion into a test event, and exit 0
    with caplog.at_level(logging.INFO):
        result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(1))
    messages = [record.getMessage() for record in caplog.records]
    note = "test_event_code is set, so Meta shows the events in Events Manager's Test Events tool"
    assert any(message.startswith(f"TEST EVENTS: {note}") for message in messages)
    assert any(
        message.startswith("Run summary (") and f"unsettled. TEST EVENTS: {note}" in message
        for message in messages
    )
    assert result.target.stats.snapshot()["test_events"] is True


def test_a_run_without_a_test_event_code_is_not_called_one_of_test_events(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        result = run_in_process(
            orders_config(sandbox.url, tmp_path, test_event_code=None), order_stream(1)
        )
    assert not any("TEST EVENTS" in record.getMessage() for record in caplog.records)
    assert result.target.stats.snapshot()["test_events"] is False


def _orders_and_refunds_alternating() -> list[str]:
    """Orders 1, 3, 5 on the orders stream, 2, 4, 6 on `refunds`, then a state."""
    lines = [schema_line(), schema_line("refunds")]
    for order_id in range(1, 7):
        stream = STREAM if order_id % 2 else "refunds"
        lines.append(record_line(order(order_id), stream=stream))
    lines.append(state_line(6))
    return lines


def test_records_of_two_streams_settle_independently(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: ORDERS_MAPPING, "refunds": ORDERS_MAPPING}
    )
    result = run_in_process(config, _orders_and_refunds_alternating())
    assert result.states == [{"bookmarks": {STREAM: 6}}]
    assert len(sandbox.accepted_events()) == 6


def test_a_stream_with_its_own_pixel_id_sends_its_events_there(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    store_pixel = "2233445566"
    sandbox = sandbox_factory(pixel_ids=(PIXEL_ID, store_pixel))
    refunds_mapping = {**ORDERS_MAPPING, "pixel_id": store_pixel}
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: ORDERS_MAPPING, "refunds": refunds_mapping}
    )
    result = run_in_process(config, _orders_and_refunds_alternating())
    assert result.exit_code == 0
    pixels = {
        int(item["event"]["custom_data"]["order_id"]): item["params"]["pixel_id"]
        for item in sandbox.accepted_events()
    }
    assert pixels == {
        1: PIXEL_ID,
        3: PIXEL_ID,
        5: PIXEL_ID,
        2: store_pixel,
        4: store_pixel,
        6: store_pixel,
    }


def test_a_stream_pixel_meta_does_not_know_stops_the_run_naming_the_stream(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refunds_mapping = {**ORDERS_MAPPING, "pixel_id": "999"}
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: ORDERS_MAPPING, "refunds": refunds_mapping}
    )
    lines = [schema_line("refunds"), record_line(order(1), stream="refunds"), state_line(1)]
    with caplog.at_level(logging.ERROR):
        result = run_in_process(config, lines)
    assert result.exit_code == 1
    assert result.states == []
    assert sandbox.accepted_events() == []
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "stream 'refunds'" in error
    assert "streams.<stream>.pixel_id" in error


def test_app_secret_adds_the_proof_graph_requires(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    strict = sandbox_factory(app_secret="app-secret-for-tests")
    config = orders_config(strict.url, tmp_path, app_secret="app-secret-for-tests")
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 0
    assert len(strict.accepted_events()) == 2


@pytest.mark.parametrize("app_secret", [None, "not-the-apps-secret"])
def test_a_missing_or_wrong_app_secret_stops_the_run_saying_to_check_app_secret(
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    app_secret: str | None,
) -> None:
    strict = sandbox_factory(app_secret="app-secret-for-tests")
    config = orders_config(strict.url, tmp_path, app_secret=app_secret)
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "appsecret_proof" in error
    assert error.endswith(
        "Check app_secret: the app requires appsecret_proof, which the target makes from "
        "app_secret and access_token; set app_secret to the secret of the token's app."
    )


def test_a_graph_url_leading_to_an_unknown_path_stops_the_run_saying_to_check_graph_url(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(f"{sandbox.url}/graph", tmp_path)  # a proxy's prefix, say
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "code=2500" in error
    assert error.endswith(
        "Check graph_url: Graph's base URL alone (the target adds "
        "/<api_version>/<pixel_id>/events), or that of a proxy serving it."
    )


def test_state_numbers_are_written_back_unchanged(sandbox: SandboxServer, tmp_path: Path) -> None:
    lines = [*order_stream(1)[:-1], '{"type": "STATE", "value": {"position": 12.50, "n": 3}}']
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.states == [{"position": 12.5, "n": 3}]


def test_run_summary_is_written_to_summary_path(sandbox: SandboxServer, tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(sandbox.url, tmp_path, summary_path=str(summary_path), batch_size=2)
    run_in_process(config, order_stream(3, records=[order(1), order(2, currency="?"), order(3)]))
    totals = json.loads(summary_path.read_text())["totals"]
    assert (totals["records_read"], totals["events_acknowledged"]) == (3, 2)
    assert totals["events_dead_lettered"] == 1


def test_records_before_and_after_a_schema_change_are_all_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    wider = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "coupon": {"type": "string"}},
    }
    lines = [schema_line(), record_line(order(1)), record_line(order(2))]
    lines += [schema_line(schema=wider), record_line(order(3, coupon="SPRING")), state_line(3)]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert sorted(e["event"]["event_id"] for e in sandbox.accepted_events()) == ["1", "2", "3"]
    assert result.states == [{"bookmarks": {STREAM: 3}}]


def test_batch_size_rows_can_only_make_requests_smaller(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, batch_size=4, batch_size_rows=3)
    run_in_process(config, order_stream(9))
    assert sandbox.stats()["requests"] == 3


def test_streams_setting_may_be_given_as_json_text(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = orders_config(sandbox.url, tmp_path, streams=json.dumps({STREAM: ORDERS_MAPPING}))
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


def test_a_customer_parameter_mapped_to_two_columns_arrives_as_a_list_of_hashes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    schema = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "billing_email": {"type": ["string", "null"]}},
    }
    mapping = {**ORDERS_MAPPING, "fields": {**ORDERS_MAPPING["fields"]}}
    mapping["fields"]["user_data.em"] = ["email", "billing_email"]
    lines = [
        schema_line(schema=schema),
        record_line(order(1, billing_email="Billing@Example.com")),
        record_line(order(2, billing_email=None)),
    ]

    result = run_in_process(orders_config(sandbox.url, tmp_path, streams={STREAM: mapping}), lines)

    assert result.exit_code == 0
    by_id = {item["event"]["event_id"]: item["event"] for item in sandbox.accepted_events()}
    assert by_id["1"]["user_data"]["em"] == [
        _sha256("customer1@example.com"),
        _sha256("billing@example.com"),
    ]
    assert by_id["2"]["user_data"]["em"] == [_sha256("customer2@example.com")]


def test_requests_go_through_the_http_service_class_of_the_config(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    RecordingHttpService.sent_urls.clear()
    config = orders_config(
        sandbox.url, tmp_path, http_service_class="tests._http_fixture:RecordingHttpService"
    )
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 0
    [url] = RecordingHttpService.sent_urls
    assert url.startswith(sandbox.url) and url.endswith(f"/{PIXEL_ID}/events")
    assert len(sandbox.accepted_events()) == 2


def test_a_dry_run_leaves_the_appsecret_proof_out_of_what_it_writes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    payload_path = tmp_path / "payloads.jsonl"
    config = orders_config(
        sandbox.url, tmp_path, dry_run=True, dry_run_path=str(payload_path), app_secret="s3cr3t"
    )
    result = run_in_process(config, order_stream(1))
    assert result.exit_code == 0
    [line] = [json.loads(line) for line in payload_path.read_text().splitlines()]
    assert "appsecret_proof" not in line["payload"]


def _dry_run_body(content_name: str) -> bytes:
    event = {"event_name": "Purchase", "custom_data": {"content_name": content_name}}
    return json.dumps({"data": [event]}).encode()


def test_a_dry_run_request_is_in_the_file_as_soon_as_it_is_sent(tmp_path: Path) -> None:
    # a run stopped or followed with `tail -f` shows the requests made so far
    service = DryRunHttpService(tmp_path / "payloads.jsonl")
    service.execute("POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("a"), None)
    lines = (tmp_path / "payloads.jsonl").read_text().splitlines()
    service.close()
    assert [json.loads(line)["payload"]["data"] for line in lines] == [
        [{"event_name": "Purchase", "custom_data": {"content_name": "a"}}]
    ]


def test_a_dry_run_into_a_pipe_nobody_reads_is_a_clear_error_not_a_wait_without_end(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "payloads.fifo"
    os.mkfifo(fifo)
    service = DryRunHttpService(fifo)
    with pytest.raises(DryRunWriteError, match=r"payloads\.fifo: a FIFO nobody reads within 2 s"):
        service.execute("POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("a"), None)
    service.close()


def test_a_dry_run_into_a_pipe_writes_each_request_for_its_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "payloads.fifo"
    os.mkfifo(fifo)
    # the reader is there before the first write, however late a thread of its would run
    reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    service = DryRunHttpService(fifo)
    service.execute("POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("a"), None)
    service.close()
    os.set_blocking(reading, True)
    with open(reading, encoding="utf-8") as received:
        lines = received.read().splitlines()
    assert [json.loads(line)["payload"]["data"][0]["event_name"] for line in lines] == ["Purchase"]


def test_a_dry_run_writes_text_in_another_script_as_is(tmp_path: Path) -> None:
    service = DryRunHttpService(tmp_path / "payloads.jsonl")
    service.execute("POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("Crème"), None)
    service.close()
    assert '"content_name": "Crème"' in (tmp_path / "payloads.jsonl").read_text()


def test_a_dry_run_to_stderr_that_cannot_write_names_stderr_not_dry_run_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no dry_run_path set: before, 'Cannot write dry_run_path None', a setting never given
    # the file's close fails too: the line stays in its buffer
    with contextlib.suppress(OSError), open("/dev/full", "w", encoding="utf-8") as full:
        monkeypatch.setattr(sys, "stderr", full)
        with pytest.raises(DryRunWriteError) as refused:
            DryRunHttpService().execute(
                "POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("a"), None
            )
        monkeypatch.undo()
    assert str(refused.value).startswith(
        "Cannot write the dry run's payloads to stderr: No space left on device"
    )
    assert "None" not in str(refused.value)


def test_the_directories_of_a_dry_run_path_are_created(tmp_path: Path) -> None:
    path = tmp_path / "out" / "dry" / "payloads.jsonl"
    service = DryRunHttpService(path)
    service.execute("POST", "http://127.0.0.1:1/v24.0/1/events", {}, _dry_run_body("a"), None)
    service.close()
    assert len(path.read_text().splitlines()) == 1
