"""Taps built on singer-python (pipelinewise, Stitch) piped into the target.

The input is recorded from pipelinewise-tap-postgres 2.1.0 (tests/recorded/): a FULL_TABLE sync
of a table with a numeric(12,2) `total`, a uuid key, jsonb and text[] columns. Such taps write
JSON Schema Draft 4 without naming it (`exclusiveMaximum: true`), `multipleOf` on decimals,
ACTIVATE_VERSION before and after a table's rows, and `version` and `time_extracted` on each
RECORD. Only the rows' times are moved to an hour ago, so Meta's 7-day window keeps them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.sandbox import SandboxServer

from ._target_support import orders_config, read_dead_letters, run_in_process

RECORDING = Path(__file__).parent / "recorded" / "pipelinewise-tap-postgres-2.1.0.singer"
STREAM = "public-orders"
# as a user maps the table from the README's example
MAPPING = {
    "event_name": "Purchase",
    "action_source": "website",
    "fields": {
        "event_time": "created_tstz",
        "event_id": "order_uuid",
        "event_source_url": "page_url",
        "user_data.em": "email",
        "user_data.client_ip_address": "client_ip",
        "custom_data.value": "total",
        "custom_data.order_id": "order_no",
    },
    "constants": {"custom_data.currency": "EUR"},
}


def recorded_lines(**record_changes: Any) -> list[str]:
    """The recording, each row created an hour ago (and changed as given)."""
    created = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    lines = []
    for line in RECORDING.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            message["record"]["created_tstz"] = created.isoformat()
            message["record"].update(record_changes)
            line = json.dumps(message)
        lines.append(line)
    return lines


def config(sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    return orders_config(sandbox.url, tmp_path, streams={STREAM: MAPPING})


def test_a_table_with_a_numeric_column_is_delivered_with_its_totals_as_numbers(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(config(sandbox, tmp_path), recorded_lines())

    assert result.exit_code == 0
    events = {item["event"]["event_id"]: item["event"] for item in sandbox.accepted_events()}
    assert {event_id: event["custom_data"]["value"] for event_id, event in events.items()} == {
        "8c1d5e0a-8a2f-4c3e-9b1d-2f3a4b5c6d7e": 49.9,
        "9c1d5e0a-8a2f-4c3e-9b1d-2f3a4b5c6d7f": 1234567.89,
    }
    assert read_dead_letters(tmp_path) == []


def test_the_taps_states_come_back_in_order(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = run_in_process(config(sandbox, tmp_path), recorded_lines())

    assert result.states == [
        {
            "bookmarks": {
                STREAM: {"last_replication_method": "FULL_TABLE", "version": 1795950992142}
            },
            "currently_syncing": STREAM,
        },
        {
            "bookmarks": {
                STREAM: {
                    "last_replication_method": "FULL_TABLE",
                    "version": 1795950992142,
                    "xmin": None,
                }
            },
            "currently_syncing": None,
        },
    ]


def test_a_total_breaking_its_columns_multiple_of_names_the_field_not_the_value(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_in_process(config(sandbox, tmp_path), recorded_lines(total=49.905))

    assert result.exit_code == 1
    [failure] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "field 'total' breaks the schema's 'multipleOf'" in failure
    assert "49.905" not in failure


def test_activate_version_messages_are_ignored_with_one_note_for_the_run(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        result = run_in_process(config(sandbox, tmp_path), recorded_lines())

    assert result.exit_code == 0
    notes = [r for r in caplog.records if "ACTIVATE_VERSION" in r.getMessage()]
    assert [r.levelno for r in notes] == [logging.INFO]
    assert "cannot be withdrawn" in notes[0].getMessage()


def test_an_activate_version_for_a_stream_not_seen_yet_is_ignored_too(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = [json.dumps({"type": "ACTIVATE_VERSION", "stream": "public-other", "version": 1})]

    result = run_in_process(config(sandbox, tmp_path), lines + recorded_lines())

    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 2


def test_an_integer_column_written_as_a_float_is_delivered_as_its_integer(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a singer-python tap passes on what its source's driver gives: 1001.0 for some
    lines = [line.replace('"order_no": 1001,', '"order_no": 1001.0,') for line in recorded_lines()]
    assert any('"order_no": 1001.0,' in line for line in lines)

    result = run_in_process(config(sandbox, tmp_path), lines)

    assert result.exit_code == 0
    order_ids = sorted(
        item["event"]["custom_data"]["order_id"] for item in sandbox.accepted_events()
    )
    assert order_ids == ["1001", "1002"]
