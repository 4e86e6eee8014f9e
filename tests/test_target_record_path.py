"""The target's shortcut for streams without stream maps keeps the SDK's record handling.

Records of a stream whose only stream map passes them through unchanged skip the stream-map
lookup; stream maps, flattening and schema changes must still apply exactly as in the SDK.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.summary.report import format_summary

from ._target_support import (
    ORDER_SCHEMA,
    ORDERS_MAPPING,
    STREAM,
    FastRetryTarget,
    order,
    order_stream,
    orders_config,
    record_line,
    run_in_process,
    schema_line,
    state_line,
)


def _user_data_keys(sandbox: SandboxServer) -> list[set[str]]:
    return [set(accepted["event"]["user_data"]) for accepted in sandbox.accepted_events()]


def test_stream_map_removing_a_column_still_applies(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: {"email": None}})
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    assert _user_data_keys(sandbox) == [{"client_ip_address", "client_user_agent"}] * 3


def test_stream_map_filter_still_drops_records(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = orders_config(
        sandbox.url, tmp_path, stream_maps={STREAM: {"__filter__": "order_id != 2"}}
    )
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    assert sorted(e["event"]["event_id"] for e in sandbox.accepted_events()) == ["1", "3"]


def test_records_a_stream_map_filters_out_are_counted_apart_from_those_read(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(
        sandbox.url, tmp_path, stream_maps={STREAM: {"__filter__": "order_id % 3 == 0"}}
    )
    result = run_in_process(config, order_stream(7))
    assert result.exit_code == 0
    summary = result.target.stats.snapshot()
    assert (summary["totals"]["records_read"], summary["totals"]["records_filtered"]) == (2, 5)
    stream = summary["streams"][STREAM]
    assert (stream["records_read"], stream["records_filtered"]) == (2, 5)
    [run_line, stream_line, *_] = format_summary(summary)
    assert "2 records read, 5 more filtered out by stream_maps, 2 events mapped" in run_line
    assert f"Stream {STREAM!r}: 2 read, 5 more filtered out by stream_maps, 2 mapped" in (
        stream_line
    )


def test_a_summary_without_stream_map_filters_does_not_mention_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_in_process(orders_config(sandbox.url, tmp_path), order_stream(2))
    assert result.exit_code == 0
    summary = result.target.stats.snapshot()
    assert summary["totals"]["records_filtered"] == 0
    assert not any("filtered" in line for line in format_summary(summary))


def test_the_records_of_a_stream_removed_by_a_stream_map_are_counted_as_filtered_out(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, stream_maps={STREAM: None})
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    totals = result.target.stats.snapshot()["totals"]
    assert (totals["records_read"], totals["records_filtered"], totals["events_sent"]) == (0, 3, 0)


def test_a_record_given_to_two_streams_is_counted_by_each_stream_map(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # one table feeding two streams (`__source__`), each with a filter of its own
    stream_maps = {
        STREAM: {"__filter__": "order_id <= 2"},
        "big-orders": {"__source__": STREAM, "__filter__": "order_id > 3"},
    }
    streams = {STREAM: ORDERS_MAPPING, "big-orders": ORDERS_MAPPING}
    config = orders_config(sandbox.url, tmp_path, streams=streams, stream_maps=stream_maps)
    result = run_in_process(config, order_stream(5))
    assert result.exit_code == 0
    streams_summary = result.target.stats.snapshot()["streams"]
    assert {
        name: (counts["records_read"], counts["records_filtered"])
        for name, counts in streams_summary.items()
    } == {STREAM: (2, 3), "big-orders": (2, 3)}


def test_a_stream_removed_by_a_stream_map_sends_nothing_and_is_not_warned_about(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # event_ids derived from the key properties, which the SDK gives the removed stream's
    # sink none of: the warning that each is derived from the whole row was logged
    fields = {k: v for k, v in ORDERS_MAPPING["fields"].items() if k != "event_id"}
    streams = {STREAM: {**ORDERS_MAPPING, "fields": fields}}
    config = orders_config(sandbox.url, tmp_path, streams=streams, stream_maps={STREAM: None})
    result = run_in_process(config, order_stream(3))
    assert result.exit_code == 0
    assert sandbox.accepted_events() == []
    assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_stream_aliased_to_the_name_of_one_removed_is_sent_under_that_name(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # the table replaced by its successor, which takes its name and its `streams` entry
    stream_maps = {STREAM: None, "public-orders_v2": {"__alias__": STREAM}}
    config = orders_config(sandbox.url, tmp_path, stream_maps=stream_maps)
    lines = [schema_line(), record_line(order(1))]
    lines += [schema_line("public-orders_v2"), record_line(order(2), "public-orders_v2")]
    result = run_in_process(config, lines)
    assert result.exit_code == 0
    assert [e["event"]["event_id"] for e in sandbox.accepted_events()] == ["2"]


def test_a_nested_column_flattened_by_the_sdk_is_mapped_by_its_flattened_name(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    schema = {
        **ORDER_SCHEMA,
        "properties": {
            **ORDER_SCHEMA["properties"],
            "customer": {"type": "object", "properties": {"email": {"type": "string"}}},
        },
    }
    fields = {**ORDERS_MAPPING["fields"], "user_data.em": "customer__email"}
    config = orders_config(
        sandbox.url,
        tmp_path,
        flattening_enabled=True,
        flattening_max_depth=1,
        streams={STREAM: {**ORDERS_MAPPING, "fields": fields}},
    )
    records = [order(i, email=None, customer={"email": f"c{i}@example.com"}) for i in (1, 2)]
    lines = [schema_line(schema=schema), *map(record_line, records), state_line(2)]
    result = run_in_process(config, lines)
    assert result.exit_code == 0
    assert sorted(e["event"]["user_data"]["em"] for e in sandbox.accepted_events()) == sorted(
        hashlib.sha256(f"c{i}@example.com".encode()).hexdigest() for i in (1, 2)
    )


def test_records_after_a_schema_change_are_checked_against_the_new_schema(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    stricter = {
        **ORDER_SCHEMA,
        "properties": {**ORDER_SCHEMA["properties"], "currency": {"enum": ["EUR"]}},
    }
    lines = [schema_line(), record_line(order(1)), record_line(order(2))]
    lines += [schema_line(schema=stricter), record_line(order(3, currency="USD"))]
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines)
    assert result.exit_code == 1


class _PathNotingTarget(FastRetryTarget):
    """Counts the records that took the SDK's path, its stream maps looked up and called."""

    records_on_the_sdk_path = 0

    def _remember_if_plain(self, stream_name: object) -> None:
        self.records_on_the_sdk_path += 1
        super()._remember_if_plain(stream_name)


def test_a_schema_sent_again_unchanged_keeps_its_stream_on_the_shortcut(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a singer-sdk tap sends a child stream's SCHEMA before the records of each parent row
    lines = [schema_line()]
    for order_id in range(1, 11):
        lines += [schema_line(), record_line(order(order_id))]
    lines.append(state_line(10))

    result = run_in_process(orders_config(sandbox.url, tmp_path), lines, _PathNotingTarget)

    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 10
    assert isinstance(result.target, _PathNotingTarget)
    assert result.target.records_on_the_sdk_path == 1
