"""Event times through the real target: the forms taps hand them over in, and what is sent."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from target_meta_capi.sandbox import SandboxServer

from ._target_support import orders_config, record_line, run_in_process, schema_line

STREAM = "clicks"
SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "created_us": {"type": "integer"},
        "clicked_us": {"type": "integer"},
        "email": {"type": "string"},
    },
}
MAPPING = {
    "event_name": "Lead",
    "action_source": "system_generated",
    "fields": {
        "event_time": "created_us",
        "attribution_data.visit_time": "clicked_us",
        "event_id": "order_id",
        "user_data.em": "email",
    },
}


def test_an_epoch_microsecond_column_is_sent_as_the_second_it_names(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a warehouse's UNIX_MICROS column: before, the event was dead-lettered as years ahead
    created = int(time.time()) - 3600
    record = {
        "order_id": 1,
        "created_us": created * 1_000_000 + 250_000,
        "clicked_us": (created - 60) * 1_000_000,
        "email": "lead@example.com",
    }
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: MAPPING})
    result = run_in_process(config, [schema_line(STREAM, SCHEMA), record_line(record, STREAM)])
    assert result.exit_code == 0
    [accepted] = sandbox.accepted_events()
    assert accepted["event"]["event_time"] == created
    assert accepted["event"]["attribution_data"]["visit_time"] == created - 60


def test_a_date_time_column_with_rfc_3339s_lowercase_z_is_sent_as_that_utc_time(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # before, the SDK's reading refused it as no date-time and the run stopped on the row
    created = int(time.time()) - 3600
    text = dt.datetime.fromtimestamp(created, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%Sz")
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "email": {"type": "string"},
        },
    }
    mapping = {**MAPPING, "fields": {**MAPPING["fields"], "event_time": "created_at"}}
    del mapping["fields"]["attribution_data.visit_time"]
    record = {"order_id": 1, "created_at": text, "email": "lead@example.com"}
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    result = run_in_process(config, [schema_line(STREAM, schema), record_line(record, STREAM)])
    assert result.exit_code == 0
    [accepted] = sandbox.accepted_events()
    assert accepted["event"]["event_time"] == created


def test_a_leap_second_in_a_date_time_column_does_not_stop_the_run(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # RFC 3339 allows 23:59:60 (the last, 2016-12-31); the run stopped at the row, naming it
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer"},
            "created_us": {"type": "integer"},
            "signed_up_at": {"type": "string", "format": "date-time"},
            "email": {"type": "string"},
        },
    }
    mapping = {**MAPPING, "fields": {**MAPPING["fields"], "custom_data.signed_up": "signed_up_at"}}
    del mapping["fields"]["attribution_data.visit_time"]
    record = {
        "order_id": 1,
        "created_us": (int(time.time()) - 3600) * 1_000_000,
        "signed_up_at": "2016-12-31T23:59:60Z",
        "email": "lead@example.com",
    }
    config = orders_config(sandbox.url, tmp_path, streams={STREAM: mapping})
    result = run_in_process(config, [schema_line(STREAM, schema), record_line(record, STREAM)])
    assert result.exit_code == 0
    [accepted] = sandbox.accepted_events()
    assert accepted["event"]["custom_data"]["signed_up"].startswith("2017-01-01T00:00:00")
