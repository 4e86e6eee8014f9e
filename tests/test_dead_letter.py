"""The dead-letter file: exact lines, no raw PII, no token, append-only, thread-safe."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import errno
import fcntl
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi import dead_letter
from target_meta_capi.capi.errors import InvalidRequestError, RequestTooLargeError
from target_meta_capi.capi.normalize import DroppedValue
from target_meta_capi.capi.rules import RuleViolation
from target_meta_capi.dead_letter import (
    DeadLetter,
    DeadLetterWriteError,
    DeadLetterWriter,
    encode_dead_letter,
)

from ._http_fixture import (
    FakeGraphServer,
    rejection_echoing_the_request,
)
from ._target_support import order, order_stream, orders_config, read_dead_letters

TARGET = Path(sys.executable).with_name("target-meta-capi")

HASHED_EMAIL = "a" * 64
EVENT = {
    "event_name": "Purchase",
    "event_time": 1_700_000_000,
    "event_id": "evt-1",
    "action_source": "website",
    "user_data": {"em": [HASHED_EMAIL]},
}


def _violation_letter(stream: str = "public-orders") -> DeadLetter:
    return DeadLetter.from_violations(
        stream=stream,
        key={"order_id": decimal.Decimal("42")},
        event=EVENT,
        violations=[
            RuleViolation(
                "purchase_value_missing", "custom_data.value", "value is required", 2804012
            ),
            RuleViolation("purchase_currency_invalid", "custom_data.currency", "bad", 2804013),
        ],
    )


def test_local_violation_line_names_stream_key_rule_and_field() -> None:
    assert json.loads(encode_dead_letter(_violation_letter())) == {
        "stream": "public-orders",
        "key": {"order_id": 42},
        "event_id": "evt-1",
        "event_name": "Purchase",
        "reason": "local_validation",
        "rule": "purchase_value_missing",
        "field": "custom_data.value",
        "message": "custom_data.value: value is required; custom_data.currency: bad",
        "meta_error": None,
        "event": EVENT,
    }


def test_meta_rejection_line_carries_metas_error_fields() -> None:
    error = InvalidRequestError(
        "Invalid parameter",
        http_status=400,
        code=100,
        subcode=2804003,
        user_title="Event Timestamp Too Old",
        user_message="The timestamp for this event is too far in the past.",
        fbtrace_id="AbCdEf",
    )
    letter = DeadLetter.from_meta_error(stream="s", key={}, event=EVENT, error=error)
    line = json.loads(encode_dead_letter(letter))
    assert line["reason"] == "meta_rejected"
    assert line["rule"] is None
    assert line["message"] == "Invalid parameter"
    assert line["meta_error"] == {
        "http_status": 400,
        "code": 100,
        "error_subcode": 2804003,
        "message": "Invalid parameter",
        "error_user_title": "Event Timestamp Too Old",
        "error_user_msg": "The timestamp for this event is too far in the past.",
        "fbtrace_id": "AbCdEf",
    }
    assert letter.summary_reason == "meta:100/2804003"


def test_an_event_a_proxy_refused_is_counted_by_its_http_status() -> None:
    error = RequestTooLargeError("HTTP 413 without a Graph error object", http_status=413)
    letter = DeadLetter.from_meta_error(stream="s", key={}, event=EVENT, error=error)
    assert letter.summary_reason == "http:413"
    assert json.loads(encode_dead_letter(letter))["meta_error"]["http_status"] == 413


def test_list_values_in_user_data_are_masked_item_by_item() -> None:
    # external_id sent unhashed (hash_external_id false) can be a list of raw ids
    event = {
        **EVENT,
        "user_data": {"em": [HASHED_EMAIL], "external_id": ["crm-4711", HASHED_EMAIL]},
    }
    letter = DeadLetter.from_violations(
        stream="s",
        key={},
        event=event,
        violations=[RuleViolation("fbc_invalid", "user_data.fbc", "bad", 2804001)],
    )
    assert json.loads(encode_dead_letter(letter))["event"]["user_data"] == {
        "em": [HASHED_EMAIL],
        "external_id": ["<redacted>", HASHED_EMAIL],
    }


def test_summary_reason_of_a_local_violation_names_the_rule() -> None:
    assert _violation_letter().summary_reason == "rule:purchase_value_missing"


def test_encoding_the_same_letter_twice_gives_the_same_line() -> None:
    assert encode_dead_letter(_violation_letter()) == encode_dead_letter(_violation_letter())


def test_a_key_holding_a_date_time_is_written_as_its_iso_8601_text() -> None:
    # a key column of format "date-time" is parsed to a datetime before the event is mapped
    created = datetime.datetime(2026, 11, 28, 10, 30, tzinfo=datetime.timezone.utc)
    letter = dataclasses.replace(_violation_letter(), key={"created_at": created})
    assert json.loads(encode_dead_letter(letter))["key"] == {
        "created_at": "2026-11-28T10:30:00+00:00"
    }


def test_a_key_value_json_has_no_form_for_is_written_as_its_text() -> None:
    letter = dataclasses.replace(_violation_letter(), key={"ref": uuid.UUID(int=7)})
    assert json.loads(encode_dead_letter(letter))["key"] == {"ref": str(uuid.UUID(int=7))}


def test_no_file_is_created_when_nothing_is_dead_lettered(tmp_path: Path) -> None:
    writer = DeadLetterWriter(tmp_path / "dead.jsonl")
    writer.sync()
    writer.close()
    assert not (tmp_path / "dead.jsonl").exists()


def test_writer_appends_to_letters_of_an_earlier_run(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dead.jsonl"
    for stream in ("first-run", "second-run"):
        writer = DeadLetterWriter(path)
        writer.write(_violation_letter(stream))
        writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["first-run", "second-run"]


def test_concurrent_writers_produce_whole_lines(tmp_path: Path) -> None:
    writer = DeadLetterWriter(tmp_path / "dead.jsonl")

    def write_many() -> None:
        for _ in range(200):
            writer.write(_violation_letter())

    threads = [threading.Thread(target=write_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    lines = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert len(lines) == 800 == writer.count
    assert all(json.loads(line)["stream"] == "public-orders" for line in lines)


def test_summary_reason_of_a_meta_rejection_without_subcode_is_the_code_alone() -> None:
    error = InvalidRequestError("Invalid parameter", http_status=400, code=100)
    letter = DeadLetter.from_meta_error(stream="s", key={}, event=EVENT, error=error)
    assert letter.summary_reason == "meta:100"


def test_a_full_disk_is_a_clear_error_naming_the_file_and_close_does_not_raise_again() -> None:
    writer = DeadLetterWriter("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(DeadLetterWriteError, match="/dev/full: No space left on device"):
        writer.write(_violation_letter())
    writer.close()
    assert writer.count == 0


def _fsync_failing(error_number: int) -> Callable[[int], None]:
    def fsync(descriptor: int) -> None:
        raise OSError(error_number, os.strerror(error_number))

    return fsync


@pytest.mark.parametrize("step", ["sync", "close"])
def test_letters_that_cannot_be_made_durable_are_a_clear_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    path = tmp_path / "dead.jsonl"
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter())
    monkeypatch.setattr(os, "fsync", _fsync_failing(errno.EIO))
    with pytest.raises(DeadLetterWriteError, match=f"{path}: Input/output error"):
        getattr(writer, step)()
    writer.close()  # the run failed already: said once


def test_a_line_that_cannot_be_written_whole_is_cut_off_and_the_file_stays_valid_jsonl(
    tmp_path: Path,
) -> None:
    # A real partial write: the file size limit stops the second line halfway.
    path = tmp_path / "dead.jsonl"
    line_length = len(encode_dead_letter(_violation_letter())) + 1
    script = f"""
import resource, signal
from target_meta_capi.dead_letter import DeadLetterWriter, DeadLetterWriteError
from tests.test_dead_letter import _violation_letter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({line_length} * 3 // 2, resource.RLIM_INFINITY))
writer = DeadLetterWriter({str(path)!r})
writer.write(_violation_letter("kept"))
try:
    writer.write(_violation_letter("cut"))
except DeadLetterWriteError as error:
    print(error)
writer.close()
"""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "Cannot write the dead-letter file" in completed.stdout
    lines = path.read_text().splitlines()
    assert [json.loads(line)["stream"] for line in lines] == ["kept"]


def test_a_line_left_half_written_by_a_killed_run_is_dropped_before_appending(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.jsonl"
    whole = encode_dead_letter(_violation_letter("earlier-run")) + "\n"
    path.write_text(whole + whole[: len(whole) // 2])  # killed while writing the second
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["earlier-run", "rerun"]


def test_a_file_of_one_unfinished_line_is_emptied_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    path.write_text('{"stream": "cut')
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    assert [json.loads(line)["stream"] for line in path.read_text().splitlines()] == ["rerun"]


def test_a_line_cut_off_leaves_the_letters_another_run_appended_meanwhile(
    tmp_path: Path,
) -> None:
    # Two runs sharing dead_letter_path (parallel Meltano schedules of one configured loader).
    # The first cannot finish its second line (the file size limit stops it halfway), after the
    # second run appended two letters: mending the file must take out that half line only.
    path = tmp_path / "dead.jsonl"
    line_length = len(encode_dead_letter(_violation_letter("first-run"))) + 1
    script = f"""
import resource, signal, sys
from target_meta_capi.dead_letter import DeadLetterWriter, DeadLetterWriteError
from tests.test_dead_letter import _violation_letter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({line_length} * 7 // 2, resource.RLIM_INFINITY))
writer = DeadLetterWriter({str(path)!r})
writer.write(_violation_letter("first-run"))
print("written", flush=True)
sys.stdin.readline()
try:
    writer.write(_violation_letter("first-run"))
except DeadLetterWriteError as error:
    print(error)
writer.close()
"""
    first_run = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert first_run.stdout is not None and first_run.stdin is not None
    assert first_run.stdout.readline() == "written\n"
    second_run = DeadLetterWriter(path)
    second_run.write(_violation_letter("second-run"))
    second_run.write(_violation_letter("second-run"))
    second_run.close()
    output, _ = first_run.communicate("go\n", timeout=30)

    assert "Cannot write the dead-letter file" in output
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["first-run", "second-run", "second-run"]


def test_a_line_another_run_left_half_written_is_dropped_before_the_next_letter(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.jsonl"
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("this-run"))
    whole = encode_dead_letter(_violation_letter("killed-run")) + "\n"
    with path.open("a") as killed_run:  # killed while writing its letter
        killed_run.write(whole[: len(whole) // 2])
    writer.write(_violation_letter("this-run"))
    writer.close()

    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["this-run", "this-run"]


def test_letters_can_go_to_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "letters.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    writer = DeadLetterWriter(fifo)
    writer.write(_violation_letter("piped"))
    writer.close()
    reader.join(timeout=10)
    assert [json.loads(line)["stream"] for line in received[0].splitlines()] == ["piped"]


def test_a_pipe_nobody_reads_is_a_clear_error_naming_the_file_not_a_wait_without_end(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "letters.fifo"
    os.mkfifo(fifo)
    writer = DeadLetterWriter(fifo)
    with pytest.raises(DeadLetterWriteError, match=r"letters\.fifo: a FIFO nobody reads within"):
        writer.write(_violation_letter())
    writer.close()


@contextlib.contextmanager
def _locked_by_another_holder(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`path` locked as another process would lock it, until the block ends; a writer gives
    up waiting for it after 0.2 s."""
    monkeypatch.setattr(dead_letter, "LOCK_WAIT_SECONDS", 0.2)
    path.touch()
    with path.open("rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_SH)
        yield


def test_a_lock_another_process_keeps_is_a_clear_error_naming_the_file_not_a_wait_without_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # any user who can read the file can lock it: a run must still end, and a signal stop it
    path = tmp_path / "dead.jsonl"
    with _locked_by_another_holder(path, monkeypatch):
        writer = DeadLetterWriter(path)
        with pytest.raises(DeadLetterWriteError, match="another process holds its lock"):
            writer.write(_violation_letter())
        writer.close()


def test_letters_after_the_file_failed_fail_at_once_with_the_first_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # not each waiting its turn for the lock again: the run cannot go on anyway
    path = tmp_path / "dead.jsonl"
    writer = DeadLetterWriter(path)
    with _locked_by_another_holder(path, monkeypatch), pytest.raises(DeadLetterWriteError) as first:
        writer.write(_violation_letter("first"))
    # the lock is free now, and the letter is still refused, with the first failure's words
    with pytest.raises(DeadLetterWriteError) as second:
        writer.write(_violation_letter("second"))
    writer.close()
    assert str(second.value) == str(first.value)
    assert "end what holds it" in str(first.value)
    assert path.read_text() == ""


def rejected_by_a_graph_echoing_the_request(
    tmp_path: Path, record: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The dead letter and the log of a run whose one record Graph refuses, quoting the whole
    request back in its error."""
    lines = order_stream(1, records=[record])
    with FakeGraphServer(rejection_echoing_the_request) as server:
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(orders_config(server.url, tmp_path)))
        completed = subprocess.run(
            [str(TARGET), "--config", str(config_path)],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
    [letter] = read_dead_letters(tmp_path)
    assert letter["meta_error"]["error_subcode"] == 2804050
    return letter, completed.stderr


def test_a_rejection_echoing_the_request_leaves_no_ip_address_or_user_agent_in_letter_or_log(
    tmp_path: Path,
) -> None:
    ip_address, user_agent = "198.51.100.23", "Mozilla/5.0 LeakAgent/9.9"
    record = order(1, client_ip=ip_address, user_agent=user_agent)
    letter, log = rejected_by_a_graph_echoing_the_request(tmp_path, record)
    for text in (json.dumps(letter), log):
        assert ip_address not in text
        assert "LeakAgent" not in text


def test_a_rejection_echoing_the_request_leaves_no_page_url_query_in_letter_or_log(
    tmp_path: Path,
) -> None:
    page_url = "https://shop.example.com/thanks?email=jane.leak@example.org#jane.leak"
    letter, log = rejected_by_a_graph_echoing_the_request(tmp_path, order(1, page_url=page_url))
    assert letter["event"]["event_source_url"] == "https://shop.example.com/thanks?<redacted>"
    for text in (json.dumps(letter), log):
        assert "jane.leak" not in text


def test_meta_rejection_line_names_the_stream_key_and_event_it_rejected() -> None:
    error = InvalidRequestError("Invalid parameter", http_status=400, code=100)
    letter = DeadLetter.from_meta_error(stream="s", key={"order_id": 7}, event=EVENT, error=error)
    line = json.loads(encode_dead_letter(letter))
    assert {name: line[name] for name in ("stream", "key", "event_id", "event_name", "field")} == {
        "stream": "s",
        "key": {"order_id": 7},
        "event_id": "evt-1",
        "event_name": "Purchase",
        "field": None,
    }
    assert line["event"] == EVENT


def test_a_key_holding_a_fractional_decimal_keeps_its_fraction() -> None:
    letter = dataclasses.replace(_violation_letter(), key={"line_id": decimal.Decimal("12.5")})
    assert json.loads(encode_dead_letter(letter))["key"] == {"line_id": 12.5}


def test_a_key_holding_a_whole_decimal_is_written_as_an_integer() -> None:
    # 42.0 would be another key to whoever looks the row up by it
    assert '"key": {"order_id": 42},' in encode_dead_letter(_violation_letter())


def test_a_key_in_another_script_is_written_as_is() -> None:
    # letters are read by people fixing rows: "Zoë", not "Zo\u00eb"
    letter = dataclasses.replace(_violation_letter(), key={"customer": "Zoë"})
    assert '"key": {"customer": "Zoë"},' in encode_dead_letter(letter)


def test_the_directories_of_a_dead_letter_path_are_created(tmp_path: Path) -> None:
    path = tmp_path / "out" / "dead" / "letters.jsonl"
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter())
    writer.close()
    assert [json.loads(line)["stream"] for line in path.read_text().splitlines()] == [
        "public-orders"
    ]


def test_a_letter_waits_for_another_run_to_finish_the_line_it_is_appending(
    tmp_path: Path,
) -> None:
    # Runs sharing dead_letter_path take the file's lock to append: a half line at the end
    # is then another run's line in progress, not one to cut off.
    path = tmp_path / "dead.jsonl"
    other_line = encode_dead_letter(_violation_letter("other-run")) + "\n"
    with path.open("a") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX)
        other_run.write(other_line[:10])
        other_run.flush()
        writer = DeadLetterWriter(path)
        this_run = threading.Thread(target=writer.write, args=(_violation_letter("this-run"),))
        this_run.start()
        this_run.join(timeout=0.5)  # what would cut the half line, had it not waited
        other_run.write(other_line[10:])
        other_run.flush()
        fcntl.flock(other_run.fileno(), fcntl.LOCK_UN)
    this_run.join(timeout=10)
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["other-run", "this-run"]


def test_a_half_line_of_a_single_byte_is_dropped_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    path.write_text(encode_dead_letter(_violation_letter("earlier-run")) + "\n{")
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["earlier-run", "rerun"]


@pytest.mark.parametrize("half_line_length", [65_535, 70_000])
def test_a_long_half_line_is_dropped_whole_and_the_letters_before_it_kept(
    tmp_path: Path, half_line_length: int
) -> None:
    # a killed run's letter of a big event (many contents), cut off past its first 64 KiB
    path = tmp_path / "dead.jsonl"
    path.write_text(
        encode_dead_letter(_violation_letter("earlier-run")) + "\n" + "x" * half_line_length
    )
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["earlier-run", "rerun"]


@pytest.mark.parametrize(
    ("key", "written"),
    [
        (decimal.Decimal("1E+5000"), "1E+5000"),  # more digits than Python writes out
        (decimal.Decimal("-2.5E+400"), "-2.5E+400"),  # past a float: it would be -Infinity
        (decimal.Decimal("12345678901234567890.5"), "12345678901234567890.5"),
    ],
)
def test_a_key_holding_a_decimal_no_json_number_keeps_exactly_is_written_as_its_text(
    key: decimal.Decimal, written: str
) -> None:
    letter = dataclasses.replace(_violation_letter(), key={"order_id": key})
    assert json.loads(encode_dead_letter(letter))["key"] == {"order_id": written}


def test_a_whole_letter_without_its_newline_is_kept_and_the_next_appended_after_it(
    tmp_path: Path,
) -> None:
    # written by another tool (printf, an editor), not half a line of a killed run
    path = tmp_path / "dead.jsonl"
    path.write_text(encode_dead_letter(_violation_letter("earlier-run")))
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["earlier-run", "rerun"]


def test_a_half_line_too_deeply_nested_to_parse_is_dropped_before_appending(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dead.jsonl"
    whole = encode_dead_letter(_violation_letter("earlier-run")) + "\n"
    path.write_text(whole + '{"a":' * 100_000)
    writer = DeadLetterWriter(path)
    writer.write(_violation_letter("rerun"))
    writer.close()
    streams = [json.loads(line)["stream"] for line in path.read_text().splitlines()]
    assert streams == ["earlier-run", "rerun"]


def test_the_values_left_out_of_user_data_named_in_a_letter_are_user_datas_own():
    violation = RuleViolation(
        "user_data_missing_match_key", "user_data", "needs at least one parameter", 2804010
    )
    letter = DeadLetter.from_violations(
        stream="s",
        key={"id": 1},
        event={"event_name": "Lead", "user_data": {}},
        violations=[violation],
        dropped=[DroppedValue("custom_data.value", "invalid"), DroppedValue("em", "invalid")],
    )
    assert letter.message == (
        "user_data: needs at least one parameter (left out of user_data: em invalid)"
    )
