"""Bad events, Meta's rejections and failed sends: dead letters, bisection, fatal errors."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from target_meta_capi import sink as sink_module
from target_meta_capi.capi.errors import NetworkError, RequestTimeout
from target_meta_capi.dead_letter import DeadLetter, DeadLetterWriter
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.state import AckLedger
from tests._http_fixture import FakeGraphServer, closed_port, graph_error, html_page, success

from ._target_support import (
    STREAM,
    FastRetryTarget,
    order,
    order_stream,
    orders_config,
    read_dead_letters,
    run_in_process,
)

EIGHT_DAYS = 8 * 24 * 3600


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_event_breaking_a_rule_is_dead_lettered_with_its_rule_and_field(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    bad = order(2, currency="dollars")
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(3, records=[order(1), bad, order(3)]),
    )
    assert result.exit_code == 0
    [letter] = read_dead_letters(tmp_path)
    event = letter.pop("event")
    assert letter == {
        "stream": STREAM,
        "key": {"order_id": 2},
        "event_id": "2",
        "event_name": "Purchase",
        "reason": "local_validation",
        "rule": "purchase_currency_invalid",
        "field": "custom_data.currency",
        "message": (
            "custom_data.currency: Purchase events need custom_data.currency as a 3-letter "
            "ISO 4217 code"
        ),
        "meta_error": None,
    }
    assert event["user_data"]["em"] == _sha256("customer2@example.com")
    assert event["custom_data"]["currency"] == "dollars"


def test_event_left_without_customer_information_says_which_of_its_values_were_left_out(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    bad = order(2, email="not an e-mail", client_ip=None)
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(3, records=[order(1), bad, order(3)]),
    )
    assert result.exit_code == 0
    [letter] = read_dead_letters(tmp_path)
    assert letter["rule"] == "user_data_missing_match_key"
    assert letter["message"].endswith(" (left out of user_data: em invalid)")
    assert "e-mail" not in json.dumps(letter)


def test_event_with_invalid_limited_data_use_options_is_dead_lettered_with_the_rule(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    ldu = {"data_processing_options": "LDU", "data_processing_options_country": 1}
    records = [
        order(1, **ldu, data_processing_options_state=1000),  # California: valid
        order(2, **ldu, data_processing_options_state=7),
    ]
    result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(2, records=records))
    assert result.exit_code == 0
    [letter] = read_dead_letters(tmp_path)
    assert (letter["key"], letter["reason"], letter["rule"], letter["field"]) == (
        {"order_id": 2},
        "local_validation",
        "data_processing_options_invalid",
        "data_processing_options_country",
    )
    [accepted] = sandbox.accepted_events()
    assert accepted["event"]["event_id"] == "1"
    assert accepted["event"]["data_processing_options"] == ["LDU"]


def test_dead_lettered_event_is_not_sent_but_the_others_are(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(3, records=[order(1), order(2, currency="dollars"), order(3)]),
    )
    assert sorted(e["event"]["event_id"] for e in sandbox.accepted_events()) == ["1", "3"]


def test_state_moves_past_dead_lettered_events(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(
            2, records=[order(1, age_seconds=EIGHT_DAYS), order(2, age_seconds=EIGHT_DAYS)]
        ),
    )
    assert result.states == [{"bookmarks": {STREAM: 2}}]
    assert [letter["rule"] for letter in read_dead_letters(tmp_path)] == [
        "event_time_too_old",
        "event_time_too_old",
    ]


def test_an_empty_dead_letter_path_writes_the_letters_to_the_default_file(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default, dead_letters.jsonl, is in the working directory

    result = run_in_process(
        orders_config(sandbox.url, tmp_path, dead_letter_path=""),
        order_stream(1, records=[order(1, age_seconds=EIGHT_DAYS)]),
    )

    assert result.exit_code == 0
    assert [letter["rule"] for letter in read_dead_letters(tmp_path)] == ["event_time_too_old"]


def test_dead_letters_are_made_durable_before_a_state_that_covers_them_is_written(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a state passes its dead-lettered records: after a crash their letters must still be
    # on disk. Whether they were synced first cannot be seen from outside, so calls are noted.
    happened: list[str] = []
    sync = DeadLetterWriter.sync

    def noting_sync(writer: DeadLetterWriter) -> None:
        happened.append("letters synced")
        sync(writer)

    class NotingStdout(io.StringIO):
        def write(self, text: str) -> int:
            happened.append("state written")
            return super().write(text)

    monkeypatch.setattr(DeadLetterWriter, "sync", noting_sync)
    target = FastRetryTarget(config=orders_config(sandbox.url, tmp_path), parse_env_config=False)
    lines = order_stream(2, records=[order(1, age_seconds=EIGHT_DAYS), order(2)])
    with contextlib.redirect_stdout(NotingStdout()):
        assert target.run(io.StringIO("".join(line + "\n" for line in lines))) == 0
    assert happened == ["letters synced", "state written"]


def test_a_dead_letter_keeps_hashed_customer_data_and_masks_ip_address_and_user_agent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(1, records=[order(1, age_seconds=EIGHT_DAYS)]),
    )
    [letter] = read_dead_letters(tmp_path)
    user_data = letter["event"]["user_data"]
    assert user_data["em"] == hashlib.sha256(b"customer1@example.com").hexdigest()
    assert user_data["client_ip_address"] == "<redacted>"
    assert user_data["client_user_agent"] == "<redacted>"
    assert "203.0.113.7" not in json.dumps(letter)


def test_event_within_the_safety_margin_of_the_cutoff_is_dead_lettered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Meta would still take it now, but perhaps not after retries: it is not sent.
    almost_too_old = 7 * 24 * 3600 - sink_module.EVENT_TIME_SAFETY_MARGIN_SECONDS // 2
    run_in_process(
        orders_config(sandbox.url, tmp_path),
        order_stream(1, records=[order(1, age_seconds=almost_too_old)]),
    )
    assert [letter["rule"] for letter in read_dead_letters(tmp_path)] == ["event_time_too_old"]
    assert sandbox.stats()["requests"] == 0


def test_on_invalid_event_fail_stops_the_run_at_the_first_bad_event(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, on_invalid_event="fail"),
        order_stream(3, records=[order(1), order(2, currency="dollars"), order(3)]),
    )
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    assert "record #2" in caplog.text
    assert "purchase_currency_invalid" in caplog.text


@pytest.fixture
def no_local_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let events through that only Meta (the sandbox) rejects, as if our rules missed them."""
    monkeypatch.setattr(sink_module, "validate_event", lambda event, **_: [])


@pytest.mark.usefixtures("no_local_validation")
def test_event_meta_rejects_is_isolated_and_the_others_delivered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [order(i, age_seconds=EIGHT_DAYS if i == 13 else 3600) for i in range(1, 21)]
    result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(20, records=records))
    assert result.exit_code == 0
    delivered = sorted(int(e["event"]["event_id"]) for e in sandbox.accepted_events())
    assert delivered == [i for i in range(1, 21) if i != 13]
    assert result.states == [{"bookmarks": {STREAM: 20}}]


@pytest.mark.usefixtures("no_local_validation")
def test_event_meta_rejects_is_dead_lettered_with_metas_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [order(i, age_seconds=EIGHT_DAYS if i == 3 else 3600) for i in range(1, 5)]
    run_in_process(orders_config(sandbox.url, tmp_path), order_stream(4, records=records))
    [letter] = read_dead_letters(tmp_path)
    meta_error = letter["meta_error"]
    assert (letter["reason"], letter["key"], letter["event_id"]) == (
        "meta_rejected",
        {"order_id": 3},
        "3",
    )
    assert (meta_error["code"], meta_error["error_subcode"]) == (100, 2804003)
    assert meta_error["fbtrace_id"]
    assert letter["message"] == meta_error["message"]


@pytest.mark.usefixtures("no_local_validation")
def test_an_event_meta_rejects_is_dead_lettered_before_its_record_is_settled(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # once settled, any thread may write a state past the record: its letter must be in the
    # file by then. Which comes first cannot be seen from outside, so both calls are noted.
    happened: list[str] = []
    write_letter, settle = DeadLetterWriter.write, AckLedger.settle

    def noting_write(writer: DeadLetterWriter, letter: DeadLetter) -> None:
        happened.append(f"dead letter {letter.key['order_id']}")
        write_letter(writer, letter)

    def noting_settle(ledger: AckLedger, numbers: Iterable[int]) -> None:
        numbers = list(numbers)
        if 3 in numbers:
            happened.append("record 3 settled")
        settle(ledger, numbers)

    monkeypatch.setattr(DeadLetterWriter, "write", noting_write)
    monkeypatch.setattr(AckLedger, "settle", noting_settle)
    records = [order(i, age_seconds=EIGHT_DAYS if i == 3 else 3600) for i in range(1, 5)]
    run_in_process(orders_config(sandbox.url, tmp_path), order_stream(4, records=records))
    assert happened == ["dead letter 3", "record 3 settled"]


@pytest.mark.usefixtures("no_local_validation")
def test_meta_rejection_with_on_invalid_event_fail_exits_without_state_or_dead_letter(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [order(1), order(2, age_seconds=EIGHT_DAYS)]
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, on_invalid_event="fail"),
        order_stream(2, records=records),
    )
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []  # the rerun would write it a second time
    [failure] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "Meta rejected an event of stream 'public-orders'" in failure
    assert "(key order_id=2)" in failure
    assert "input line" not in failure  # found when answered, not where reading was then


@pytest.mark.usefixtures("no_local_validation")
def test_a_dead_letter_file_that_cannot_take_metas_rejection_stops_the_run_without_state(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the letter is written on the thread that settles Meta's answer, not the main one
    records = [order(1), order(2, age_seconds=EIGHT_DAYS)]
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, dead_letter_path="/dev/full"),
        order_stream(2, records=records),
    )
    assert result.exit_code == 1
    assert result.states == []
    [failure] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failure.startswith("target-meta-capi failed: stream 'public-orders', request of 2")
    assert "Cannot write the dead-letter file /dev/full: No space left on device" in failure


def test_invalid_token_stops_the_run_without_state(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, access_token="wrong-token"),
        order_stream(4, state_every=2),
    )
    assert result.exit_code == 1
    assert result.states == []
    assert "access_token" in caplog.text
    assert "wrong-token" not in caplog.text


def test_events_of_a_request_that_failed_the_run_are_counted_as_failed_not_in_flight(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, access_token="wrong-token"), order_stream(4)
    )
    orders = result.target.stats.snapshot()["streams"][STREAM]
    assert (orders["events_sent"], orders["events_failed"], orders["events_in_flight"]) == (4, 4, 0)
    warnings = result.target.stats.snapshot()["warnings"]
    assert not any("not acknowledged before" in warning for warning in warnings)


def test_unknown_pixel_stops_the_run_without_retrying(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, pixel_id="999", max_retries=5), order_stream(3)
    )
    assert result.exit_code == 1
    assert sandbox.stats()["requests"] == 1


def test_exhausted_retries_fail_the_run_naming_stream_and_records(
    sandbox_factory: Callable[..., SandboxServer],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = sandbox_factory(transient_error_rate=1.0)
    result = run_in_process(
        orders_config(failing.url, tmp_path, max_retries=2, batch_size=5), order_stream(5)
    )
    assert result.exit_code == 1
    assert result.states == []
    assert failing.stats()["requests"] == 3
    assert f"stream '{STREAM}', request of 5 events (records #1 to #5)" in caplog.text


def test_unreachable_graph_url_fails_after_its_retries_naming_the_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(f"http://127.0.0.1:{closed_port()}", tmp_path, max_retries=1)
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    assert result.states == []
    assert "Check graph_url" in caplog.text


def test_events_whose_connection_was_refused_are_not_called_sent_in_the_closing_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(f"http://127.0.0.1:{closed_port()}", tmp_path, max_retries=1)
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    [warning] = [line for line in caplog.messages if "failed the run" in line]
    assert warning.startswith(
        f"Stream {STREAM!r}: 2 events were in requests that failed the run (its error says "
        "whether they reached Meta)"
    )
    assert "sent" not in warning


def test_graph_url_that_never_answered_is_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        f"http://127.0.0.1:{closed_port()}",
        tmp_path,
        max_retries=5,
        summary_path=str(summary_path),
    )
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    summary = json.loads(summary_path.read_text())
    assert summary["requests"]["retries"] == 0
    assert "Check graph_url" in caplog.text


def test_a_graph_url_whose_connections_time_out_is_not_blamed_on_metas_slowness(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a listener whose queue of connections is full: the next connection is never made, as
    # behind a firewall that drops packets; nothing reached Meta to answer slowly
    with socket.create_server(("127.0.0.1", 0), backlog=0) as full:
        queued = [socket.socket() for _ in range(3)]
        for waiting in queued:
            waiting.setblocking(False)
            waiting.connect_ex(full.getsockname())
        graph_url = f"http://127.0.0.1:{full.getsockname()[1]}"
        config = orders_config(graph_url, tmp_path, request_timeout=0.5)
        result = run_in_process(config, order_stream(2))
        for waiting in queued:
            waiting.close()
    assert result.exit_code == 1
    assert "connect timeout (ConnectTimeout)" in caplog.text
    assert "Check graph_url and the network" in caplog.text
    assert "raise request_timeout" not in caplog.text


def test_an_https_graph_url_on_a_plain_http_port_stops_the_run_at_once(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url.replace("http://", "https://"),
        tmp_path,
        max_retries=5,
        summary_path=str(summary_path),
    )
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    assert result.states == []
    assert json.loads(summary_path.read_text())["requests"]["retries"] == 0
    assert "the TLS handshake failed, nothing was sent" in caplog.text
    assert "Check graph_url" in caplog.text


def test_refused_connection_after_the_endpoint_answered_is_left_to_the_retries(
    tmp_path: Path,
) -> None:
    target = FastRetryTarget(config=orders_config("http://127.0.0.1:9", tmp_path))
    refused = NetworkError("connection refused", maybe_delivered=False)
    assert target.is_unreachable_endpoint(refused)
    target.stats.on_attempt(events=2, status=200, seconds=0.01, error=None)
    assert not target.is_unreachable_endpoint(refused)


def test_read_timeout_is_retried_even_before_the_endpoint_answered(tmp_path: Path) -> None:
    target = FastRetryTarget(config=orders_config("http://127.0.0.1:9", tmp_path))
    assert not target.is_unreachable_endpoint(RequestTimeout("read timeout"))


def test_an_error_of_the_request_itself_stops_the_run_instead_of_dead_lettering_every_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    message = "(#100) Param upload_source must be one of {in_store, ...}"
    with FakeGraphServer(lambda request: graph_error(400, 100, message=message)) as server:
        config = orders_config(server.url, tmp_path, upload_source="bogus")
        result = run_in_process(config, order_stream(50))
        requests = len(server.requests)
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    assert requests == 4  # the batch, then its first, middle and last event alone
    assert "Meta rejected the request itself, not its events" in caplog.text
    assert message in caplog.text


def test_a_proxy_refusing_every_body_as_too_large_stops_the_run_instead_of_dead_lettering_all(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeGraphServer(lambda request: html_page(413, "413 Request Entity Too Large")) as server:
        result = run_in_process(orders_config(server.url, tmp_path), order_stream(50))
        requests = len(server.requests)
    assert result.exit_code == 1
    assert result.states == []
    assert read_dead_letters(tmp_path) == []
    assert requests == 2  # the batch, then its smallest event alone
    assert "a proxy in front of Graph refused even the request's smallest event" in caplog.text
    assert "this does not look like the Graph API" not in caplog.text


def test_a_failure_whose_meta_message_ends_a_sentence_is_not_given_a_second_full_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    busy = graph_error(500, 2, user_title="Service busy", user_message="Please try again.")
    with FakeGraphServer(lambda request: busy) as server:
        config = orders_config(server.url, tmp_path, max_retries=1)
        result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    assert "Service busy: Please try again. Gave up after 2 attempts" in caplog.text
    assert "again.." not in caplog.text


def test_a_graph_url_answering_a_web_page_fails_the_run_saying_it_is_not_the_graph_api(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeGraphServer(lambda request: html_page(404, "Not Found")) as server:
        result = run_in_process(orders_config(server.url, tmp_path), order_stream(2))
    assert result.exit_code == 1
    assert result.states == []
    assert "Check graph_url and api_version: this does not look like the Graph API." in (
        caplog.text
    )


def test_meta_counting_fewer_events_than_sent_fails_the_run_saying_to_rerun_from_the_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    summary_path = tmp_path / "summary.json"
    with FakeGraphServer(lambda request: success(len(request.events) - 1)) as server:
        config = orders_config(server.url, tmp_path, summary_path=str(summary_path))
        result = run_in_process(config, order_stream(3))
    assert result.exit_code == 1
    assert result.states == []
    assert "Meta stored an unknown part of the events; rerun from the last state." in caplog.text
    assert json.loads(summary_path.read_text())["events_received_mismatches"] == {
        "requests": 1,
        "events_sent": 3,
        "events_received": 2,
    }
