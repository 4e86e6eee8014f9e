"""BATCH messages: the records of a tap's batch files are handled as RECORD messages would be.

The files are written as singer-sdk taps write them: by the SDK's own jsonl batcher (gzip,
whatever `compression` says, under a `file://` storage root), or plainly for `compression`
none.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.contrib.batch_encoder_jsonl import JSONLinesBatcher
from singer_sdk.helpers._batch import BatchConfig

from target_meta_capi.batch_files import BatchMessage, record_lines
from target_meta_capi.sandbox import SandboxServer

from ._target_support import (
    ORDER_SCHEMA,
    ORDERS_MAPPING,
    STREAM,
    order,
    orders_config,
    read_dead_letters,
    record_line,
    run_in_process,
    schema_line,
    state_line,
    wait_until,
)

GZIP_JSONL = {"format": "jsonl", "compression": "gzip"}


def sdk_batch_files(
    directory: Path,
    records: Iterable[Mapping[str, Any]],
    batch_size: int = 10000,
    stream: str = STREAM,
) -> list[str]:
    """Write records as a singer-sdk tap with this `batch_config` does; the files' URLs."""
    config = BatchConfig.from_dict(
        {
            "encoding": GZIP_JSONL,
            "storage": {"root": directory.as_uri(), "prefix": "orders-"},
            "batch_size": batch_size,
        }
    )
    batcher = JSONLinesBatcher("tap-postgres", stream, config)
    return [url for manifest in batcher.get_batches(iter(records)) for url in manifest]


def batch_line(
    manifest: list[str], encoding: Mapping[str, Any] = GZIP_JSONL, stream: str = STREAM
) -> str:
    return json.dumps(
        {"type": "BATCH", "stream": stream, "encoding": dict(encoding), "manifest": manifest}
    )


def plain_file(path: Path, lines: Iterable[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_every_record_of_a_batch_file_reaches_meta_once_and_the_state_after_it_is_written(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(i) for i in range(1, 26)], batch_size=10)
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), batch_line(manifest), state_line(25)],
    )
    assert result.exit_code == 0
    assert len(manifest) == 3
    event_ids = [item["event"]["event_id"] for item in sandbox.accepted_events()]
    assert sorted(event_ids) == sorted(str(i) for i in range(1, 26))
    assert result.states == [{"bookmarks": {STREAM: 25}}]


def test_a_date_time_key_derives_the_same_event_id_from_a_batch_file_as_from_a_record(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # singer-sdk writes a naive datetime with +00:00 in a RECORD, without it in a batch file
    created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    created -= dt.timedelta(hours=1)
    schema = json.dumps(
        {
            "type": "SCHEMA",
            "stream": STREAM,
            "schema": ORDER_SCHEMA,
            "key_properties": ["created_at"],
        }
    )
    mapping = {**ORDERS_MAPPING, "fields": dict(ORDERS_MAPPING["fields"])}
    del mapping["fields"]["event_id"]
    manifest = sdk_batch_files(tmp_path, [order(1, created_at=created)])
    in_record = order(1, created_at=created.isoformat() + "+00:00")

    result = run_in_process(
        orders_config(sandbox.url, tmp_path, streams={STREAM: mapping}),
        [schema, record_line(in_record), batch_line(manifest)],
    )

    assert result.exit_code == 0
    event_ids = [item["event"]["event_id"] for item in sandbox.accepted_events()]
    assert len(event_ids) == 2 and event_ids[0] == event_ids[1]


def test_records_of_a_batch_are_counted_in_the_run_summary_as_records_read(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(i) for i in range(1, 8)])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line(manifest)]
    )
    assert result.target.stats.snapshot()["streams"][STREAM]["records_read"] == 7


def test_a_plain_jsonl_file_with_compression_none_is_read(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    path = plain_file(tmp_path / "orders.jsonl", [json.dumps(order(i)) for i in (1, 2)])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), batch_line([path], {"format": "jsonl", "compression": "none"})],
    )
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


@pytest.mark.parametrize("stream", ["public-orders#2?", "public-p%41q"])
def test_the_batch_files_of_a_stream_named_with_url_characters_are_read(
    sandbox: SandboxServer, tmp_path: Path, stream: str
) -> None:
    # the tap writes the file's name into its file:// URL as it is, unescaped
    manifest = sdk_batch_files(tmp_path, [order(1)], stream=stream)
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, streams={stream: ORDERS_MAPPING}),
        [schema_line(stream), batch_line(manifest, stream=stream)],
    )
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 1


def test_the_batch_files_under_a_root_given_as_a_url_with_an_escape_are_read(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # the tap takes a file:// root as written: its directory is named "batch%20files"
    root = "file://" + str(tmp_path) + "/batch%20files"
    config = BatchConfig.from_dict(
        {"encoding": GZIP_JSONL, "storage": {"root": root, "prefix": "orders-"}}
    )
    batcher = JSONLinesBatcher("tap-postgres", STREAM, config)
    manifest = [url for urls in batcher.get_batches(iter([order(1), order(2)])) for url in urls]
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line(manifest)]
    )
    assert (tmp_path / "batch%20files").is_dir()
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


def test_the_tap_s_batch_files_are_left_where_they_are(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(1)])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line(manifest)]
    )
    assert result.exit_code == 0
    assert [path.as_uri() for path in tmp_path.glob("orders-*.json.gz")] == manifest


def test_a_record_of_a_batch_file_breaking_its_schema_stops_the_run_naming_the_file_and_line(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [order(1), order(2, total="jane@example.com"), order(3)]
    manifest = sdk_batch_files(tmp_path, records)
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), state_line(0), batch_line(manifest), state_line(3)],
    )
    assert result.exit_code == 1
    failure = result.target.stats.snapshot()["failure"]
    assert f"input line 3 (line 2 of BATCH file {manifest[0]}), stream '{STREAM}'" in failure
    assert "total" in failure
    assert "jane@example.com" not in caplog.text
    assert {STREAM: 3} not in [state["bookmarks"] for state in result.states]


def test_a_batch_file_line_that_is_not_json_stops_the_run_naming_the_file_and_line(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    path = plain_file(tmp_path / "orders.jsonl", [json.dumps(order(1)), '{"order_id": 2,'])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), batch_line([path]), state_line(2)],
    )
    assert result.exit_code == 1
    failure = result.target.stats.snapshot()["failure"]
    assert failure.startswith(f"Input line 2 (line 2 of BATCH file {path}) is not valid JSON")
    assert result.states == []


def test_a_batch_file_line_holding_more_than_a_record_is_not_json_and_sends_nothing_elsewhere(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # put into a RECORD line as it stands, it would make a record of another stream
    line = json.dumps(order(1)) + ', "stream": "other"'
    path = plain_file(tmp_path / "orders.jsonl", [line])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line([path])]
    )
    assert result.exit_code == 1
    assert "(line 1 of BATCH file" in result.target.stats.snapshot()["failure"]
    assert sandbox.accepted_events() == []


def test_a_missing_batch_file_stops_the_run_naming_it_and_no_state_passes_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    missing = (tmp_path / "gone.json.gz").as_uri()
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), batch_line([missing]), state_line(9)],
    )
    assert result.exit_code == 1
    failure = result.target.stats.snapshot()["failure"]
    assert failure == (
        f"Input line 2, BATCH message of stream '{STREAM}': cannot read file {missing} "
        "(No such file or directory)"
    )
    assert result.states == []


def test_a_gzip_file_cut_short_stops_the_run_naming_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    whole = gzip.compress(b"".join(json.dumps(order(i)).encode() + b"\n" for i in range(50)))
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line([str(path)])]
    )
    assert result.exit_code == 1
    assert f"cannot read file {path}" in result.target.stats.snapshot()["failure"]


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ({"format": "parquet", "compression": "gzip"}, "format 'parquet' with compression 'gzip'"),
        ({"format": "jsonl", "compression": "zstd"}, "format 'jsonl' with compression 'zstd'"),
        ({"compression": "gzip"}, "format null with compression 'gzip'"),  # not Python's None
    ],
)
def test_a_batch_in_a_format_other_than_jsonl_plain_or_gzip_is_refused_before_any_record_is_sent(
    sandbox: SandboxServer, tmp_path: Path, encoding: dict[str, Any], named: str
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(1)])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line(manifest, encoding)]
    )
    failure = result.target.stats.snapshot()["failure"]
    assert f"Input line 2, BATCH message of stream '{STREAM}': its files' {named}" in failure
    assert "supported are jsonl files" in failure
    assert sandbox.accepted_events() == []


def test_a_batch_with_a_file_on_remote_storage_is_refused_before_any_of_its_records_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = [*sdk_batch_files(tmp_path, [order(1)]), "s3://bucket/orders-2.json.gz"]
    result = run_in_process(
        orders_config(sandbox.url, tmp_path), [schema_line(), batch_line(manifest)]
    )
    failure = result.target.stats.snapshot()["failure"]
    assert "file s3://bucket/orders-2.json.gz is not on this machine's filesystem" in failure
    assert sandbox.accepted_events() == []


def test_a_batch_before_its_stream_s_schema_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(1)])
    result = run_in_process(orders_config(sandbox.url, tmp_path), [batch_line(manifest)])
    assert result.target.stats.snapshot()["failure"] == (
        f"Input line 1, BATCH message of stream '{STREAM}': no SCHEMA message of the stream "
        "came before it"
    )


def test_a_record_of_a_batch_breaking_meta_s_rules_is_dead_lettered_and_the_rest_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    stale = order(2, age_seconds=8 * 24 * 3600)  # older than Meta's 7 days
    manifest = sdk_batch_files(tmp_path, [order(1), stale, order(3)])
    result = run_in_process(
        orders_config(sandbox.url, tmp_path),
        [schema_line(), batch_line(manifest), state_line(3)],
    )
    assert result.exit_code == 0
    assert [letter["key"] for letter in read_dead_letters(tmp_path)] == [{"order_id": 2}]
    assert len(sandbox.accepted_events()) == 2
    assert result.states == [{"bookmarks": {STREAM: 3}}]


def test_batch_files_are_read_a_line_at_a_time(tmp_path: Path) -> None:
    fifo = tmp_path / "orders.jsonl"
    os.mkfifo(fifo)
    rest_written = threading.Event()
    may_write_rest = threading.Event()

    def tap() -> None:
        with fifo.open("w") as file:
            file.write(json.dumps(order(1)) + "\n")
            file.flush()
            may_write_rest.wait(timeout=30)
            rest_written.set()
            file.write(json.dumps(order(2)) + "\n")

    writer = threading.Thread(target=tap)
    writer.start()
    lines = record_lines(BatchMessage(STREAM, ((str(fifo), str(fifo)),)), input_line=2)
    first, place = next(lines)
    read_before_the_rest = not rest_written.is_set()
    may_write_rest.set()
    assert read_before_the_rest
    assert json.loads(first)["order_id"] == 1
    assert f"{place}" == f"2 (line 1 of BATCH file {fifo})"
    assert len(list(lines)) == 1
    writer.join()


# --- through the command, as Meltano runs it -------------------------------------------------

TARGET = Path(sys.executable).with_name("target-meta-capi")
WORKERS_LOG_LINE = "Validating, mapping and hashing records in 2 worker processes"


def start_target(tmp_path: Path, config: Mapping[str, Any]) -> subprocess.Popen[str]:
    """The target reading from a pipe the test writes to, as a running tap's would be."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.Popen(
        [str(TARGET), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path,
    )  # fmt: skip


def run_target(tmp_path: Path, config: Mapping[str, Any], lines: list[str]) -> tuple[int, str, str]:
    process = start_target(tmp_path, config)
    stdout, stderr = process.communicate("".join(line + "\n" for line in lines), timeout=120)
    return process.returncode, stdout, stderr


def failed_run_with_workers(
    sandbox: SandboxServer, tmp_path: Path, manifest: list[str], *after: str
) -> tuple[str, str]:
    """stdout and stderr of a run, with 2 record workers, of a SCHEMA and a BATCH of
    `manifest` (then `after`) that fails (exit status 1) once the workers are on."""
    config = orders_config(sandbox.url, tmp_path, record_workers=2)
    code, stdout, stderr = run_target(
        tmp_path, config, [schema_line(), batch_line(manifest), *after]
    )
    assert code == 1
    assert WORKERS_LOG_LINE in stderr
    return stdout, stderr


def test_the_state_after_a_batch_comes_once_meta_acknowledged_every_record_of_its_files(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=200)
    manifest = sdk_batch_files(tmp_path, [order(i) for i in range(1, 31)], batch_size=7)
    process = start_target(tmp_path, orders_config(sandbox.url, tmp_path, batch_size=10))
    assert process.stdin is not None and process.stdout is not None
    # the pipe stays open, as if the tap were still running
    process.stdin.write("\n".join([schema_line(), batch_line(manifest), state_line(30)]) + "\n")
    process.stdin.flush()
    state = json.loads(process.stdout.readline())
    accepted_then = len(sandbox.accepted_events())
    process.stdin.close()
    process.wait(timeout=60)
    assert state == {"bookmarks": {STREAM: 30}}
    assert accepted_then == 30


def test_a_request_of_a_batch_s_records_failing_for_good_keeps_the_state_after_it_back(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(transient_error_rate=1.0)
    manifest = sdk_batch_files(tmp_path, [order(i) for i in range(1, 6)])
    config = orders_config(sandbox.url, tmp_path, max_retries=1, max_retry_seconds=1)
    code, stdout, _ = run_target(
        tmp_path, config, [schema_line(), batch_line(manifest), state_line(5)]
    )
    assert code == 1
    assert sandbox.stats()["requests"] >= 1
    assert stdout == ""


def test_records_of_a_batch_past_a_stream_s_200th_go_through_the_record_workers_once_each(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    stale = order(350, age_seconds=8 * 24 * 3600)  # dead-lettered, by a worker or not
    records = [stale if i == 350 else order(i) for i in range(1, 501)]
    manifest = sdk_batch_files(tmp_path, records, batch_size=150)
    config = orders_config(sandbox.url, tmp_path, record_workers=2)
    code, stdout, stderr = run_target(
        tmp_path, config, [schema_line(), batch_line(manifest), state_line(500)]
    )
    assert code == 0, stderr[-2000:]
    assert WORKERS_LOG_LINE in stderr
    event_ids = sorted(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
    assert event_ids == [i for i in range(1, 501) if i != 350]
    assert [letter["key"] for letter in read_dead_letters(tmp_path)] == [{"order_id": 350}]
    assert [json.loads(line) for line in stdout.splitlines()] == [{"bookmarks": {STREAM: 500}}]


def test_a_record_breaking_its_schema_among_those_the_workers_take_is_named_by_file_and_line(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [order(i, total="x" if i == 420 else 19.99) for i in range(1, 501)]
    manifest = sdk_batch_files(tmp_path, records, batch_size=300)
    stdout, stderr = failed_run_with_workers(sandbox, tmp_path, manifest, state_line(500))
    assert (
        f"(input line 2 (line 120 of BATCH file {manifest[1]}), stream '{STREAM}'): field "
        "'total' breaks the schema"
    ) in stderr
    assert stdout == ""


def test_half_full_batches_of_a_batch_s_records_go_out_while_the_tap_is_silent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    manifest = sdk_batch_files(tmp_path, [order(i) for i in range(1, 4)])
    config = orders_config(sandbox.url, tmp_path, max_batch_wait_seconds=0.1)
    process = start_target(tmp_path, config)
    assert process.stdin is not None
    process.stdin.write(schema_line() + "\n" + batch_line(manifest) + "\n")
    process.stdin.flush()
    wait_until(lambda: len(sandbox.accepted_events()) == 3, timeout=30)
    process.stdin.close()
    assert process.wait(timeout=60) == 0


def test_a_batch_file_line_that_is_not_utf8_among_those_the_workers_take_is_named_by_its_byte(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = [json.dumps(order(i)).encode() for i in range(1, 301)]
    lines[249] = b'{"order_id": 250, "email": "\xff"}'
    path = tmp_path / "orders.json.gz"
    path.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    _, stderr = failed_run_with_workers(sandbox, tmp_path, [path.as_uri()])
    assert (
        f"Input line 2 (line 250 of BATCH file {path.as_uri()}) is not valid JSON: it is not "
        "UTF-8 (invalid start byte at byte 28 of the line)"
    ) in stderr


def test_a_batch_file_line_nesting_too_deep_with_the_workers_on_is_named_as_without_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    deep = '{"order_id": 2, "total": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = plain_file(tmp_path / "orders.jsonl", [json.dumps(order(1)), deep])
    _, stderr = failed_run_with_workers(sandbox, tmp_path, [path])
    assert (
        f"Input line 2 (line 2 of BATCH file {path}) is not valid JSON (it nests arrays and "
        "objects too deeply to be read)"
    ) in stderr


def test_the_first_line_of_a_batch_file_to_fail_is_named_with_the_workers_on_as_without_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # line 250 is the workers' to check; line 260, no JSON, never reaches them
    lines = [json.dumps(order(i, total="x" if i == 250 else 19.99)) for i in range(1, 301)]
    lines[259] = '{"order_id": 260,'
    path = plain_file(tmp_path / "orders.jsonl", lines)
    _, stderr = failed_run_with_workers(sandbox, tmp_path, [path])
    assert (
        f"(input line 2 (line 250 of BATCH file {path}), stream '{STREAM}'): field 'total' "
        "breaks the schema"
    ) in stderr


def test_half_full_batches_past_max_batch_wait_go_out_between_the_records_of_a_batch(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # the run then stops at the BATCH's second file, missing: what was sent went meanwhile
    manifest = [*sdk_batch_files(tmp_path, [order(2)]), (tmp_path / "gone.json.gz").as_uri()]
    result = run_in_process(
        orders_config(sandbox.url, tmp_path, max_batch_wait_seconds=0),
        [schema_line(), record_line(order(1)), batch_line(manifest)],
    )
    assert result.exit_code == 1
    summary = result.target.stats.snapshot()
    assert summary["requests"]["submitted"] == 1
    assert summary["streams"][STREAM]["records_read"] == 2
