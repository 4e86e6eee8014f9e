"""Rows a log-based tap reports deleted (`_sdc_deleted_at`) are not conversions: not sent.

tap-postgres (LOG_BASED), pipelinewise-tap-postgres and pipelinewise-tap-mysql (binlog) write a
deleted row as a RECORD whose `_sdc_deleted_at` holds the time of its deletion: the whole row
(PostgreSQL's REPLICA IDENTITY FULL, MySQL) or its key alone (REPLICA IDENTITY DEFAULT). The
lines here are tap-postgres's (meltanolabs 0.10.0), recorded from a FULL_TABLE sync, with the
columns and values its LOG_BASED sync adds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from target_meta_capi.record_workers import StreamConverter, StreamSpec
from target_meta_capi.sandbox import SandboxServer

from ._target_support import orders_config, read_dead_letters, run_in_process

STREAM = "public-orders"
UUID = "8c1d5e0a-8a2f-4c3e-9b1d-2f3a4b5c6d7e"
SCHEMA = {
    "properties": {
        "order_uuid": {"type": ["string"]},
        "total": {"type": ["number", "null"]},
        "email": {"type": ["string", "null"]},
        "created_tstz": {"format": "date-time", "type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "page_url": {"type": ["string", "null"]},
        "_sdc_deleted_at": {"format": "date-time", "type": ["string", "null"]},
        "_sdc_lsn": {"type": ["integer", "null"]},
    },
    "type": "object",
    "required": ["order_uuid"],
    "$schema": "https://json-schema.org/draft/2020-12/schema",
}
MAPPING = {
    "event_name": "Purchase",
    "action_source": "website",
    "fields": {
        "event_time": "created_tstz",
        "event_id": "order_uuid",
        "event_source_url": "page_url",
        "user_data.em": "email",
        "custom_data.value": "total",
    },
    "constants": {"custom_data.currency": "EUR"},
}


def row(**changes: Any) -> dict[str, Any]:
    created = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    return {
        "order_uuid": UUID,
        "total": 49.90,
        "email": "Jane.Doe@Example.COM",
        "created_tstz": created.isoformat(),
        "user_agent": "Mozilla/5.0",
        "page_url": "https://shop.example.com/t",
        "_sdc_deleted_at": None,
        "_sdc_lsn": 26843520,
        **changes,
    }


def deleted_at() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def lines(*records: dict[str, Any]) -> list[str]:
    schema = {
        "type": "SCHEMA",
        "stream": STREAM,
        "schema": SCHEMA,
        "key_properties": ["order_uuid"],
    }
    state = {"type": "STATE", "value": {"bookmarks": {STREAM: {"replication_key_value": 26843600}}}}
    messages = [schema, *({"type": "RECORD", "stream": STREAM, "record": r} for r in records)]
    return [json.dumps(message) for message in [*messages, state]]


def run(sandbox: SandboxServer, tmp_path: Path, *records: dict[str, Any]) -> Any:
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        sandbox.url, tmp_path, streams={STREAM: MAPPING}, summary_path=str(summary_path)
    )
    result = run_in_process(config, lines(*records))
    return result, json.loads(summary_path.read_text())


def test_a_row_deleted_whole_is_not_sent_again(sandbox: SandboxServer, tmp_path: Path) -> None:
    result, _ = run(sandbox, tmp_path, row(), row(_sdc_deleted_at=deleted_at(), _sdc_lsn=26843600))

    assert result.exit_code == 0
    assert [item["event"]["event_id"] for item in sandbox.accepted_events()] == [UUID]
    assert result.states == [{"bookmarks": {STREAM: {"replication_key_value": 26843600}}}]


def test_a_row_deleted_with_its_key_alone_is_not_dead_lettered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    key_only = {"order_uuid": UUID, "_sdc_deleted_at": deleted_at(), "_sdc_lsn": 26843600}

    result, _ = run(sandbox, tmp_path, key_only)

    assert result.exit_code == 0
    assert sandbox.accepted_events() == []
    assert read_dead_letters(tmp_path) == []
    assert result.states == [{"bookmarks": {STREAM: {"replication_key_value": 26843600}}}]


def test_deleted_rows_count_as_skipped_and_the_summary_says_why(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    _, summary = run(
        sandbox,
        tmp_path,
        row(),
        row(_sdc_deleted_at=deleted_at()),
        row(_sdc_deleted_at=deleted_at()),
    )

    stream = summary["streams"][STREAM]
    assert (stream["records_read"], stream["events_skipped"]) == (3, 2)
    assert (
        f"Stream {STREAM!r}: 2 rows the tap reports deleted (_sdc_deleted_at) were not sent: a "
        "deletion is no conversion, and Meta keeps an event already sent for the row."
    ) in summary["warnings"]


def test_a_row_whose_deleted_at_is_blank_text_is_live_and_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a tap reading files writes an empty cell as "", as it would any column's
    result, summary = run(sandbox, tmp_path, row(_sdc_deleted_at=""), row(_sdc_deleted_at=" "))

    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2
    assert summary["streams"][STREAM]["events_skipped"] == 0


def test_a_record_worker_gives_a_deleted_row_back_to_the_main_process() -> None:
    converter = StreamConverter(
        StreamSpec(STREAM, SCHEMA, ("order_uuid",), {"streams": {STREAM: MAPPING}}, True)
    )
    live, deleted = (
        json.dumps({"type": "RECORD", "stream": STREAM, "record": r})
        for r in (row(), row(_sdc_deleted_at=deleted_at()))
    )

    chunk = converter.convert([live, deleted])

    assert chunk.events[0] is not None
    assert chunk.events[1] is None


def test_a_record_worker_converts_a_row_whose_deleted_at_is_blank_text() -> None:
    converter = StreamConverter(
        StreamSpec(STREAM, SCHEMA, ("order_uuid",), {"streams": {STREAM: MAPPING}}, True)
    )
    blank = json.dumps({"type": "RECORD", "stream": STREAM, "record": row(_sdc_deleted_at="")})

    assert converter.convert([blank]).events[0] is not None
