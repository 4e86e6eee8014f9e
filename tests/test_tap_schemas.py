"""A stream's SCHEMA sent again during a run, as taps send it: unchanged before each page or
parent row, or changed (a column added, a key changed) while records of the old one are still
in batches or with the record workers. Through the command, against the sandbox, with record
workers and without."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.record_workers import RECORDS_BEFORE_WORKERS
from target_meta_capi.sandbox import SandboxServer

from ._target_support import ORDER_SCHEMA, ORDERS_MAPPING, STREAM, order, orders_config

TARGET = Path(sys.executable).with_name("target-meta-capi")
#: more records than the main process keeps, so that the workers get some of each schema's
ORDERS = RECORDS_BEFORE_WORKERS + 100
WITH_LINE_NUMBERS = {
    **ORDER_SCHEMA,
    "properties": {**ORDER_SCHEMA["properties"], "line_no": {"type": "integer"}},
}
#: orders whose event_id is derived from their key properties: no column gives it
DERIVED_IDS = {
    **ORDERS_MAPPING,
    "fields": {k: v for k, v in ORDERS_MAPPING["fields"].items() if k != "event_id"},
}


def schema_line(key_properties: list[str], schema: dict[str, Any] = WITH_LINE_NUMBERS) -> str:
    return json.dumps(
        {"type": "SCHEMA", "stream": STREAM, "schema": schema, "key_properties": key_properties}
    )


def record_line(order_id: int) -> str:
    return json.dumps({"type": "RECORD", "stream": STREAM, "record": order(order_id, line_no=1)})


def state_line(order_id: int) -> str:
    return json.dumps({"type": "STATE", "value": {"bookmarks": {STREAM: order_id}}})


@dataclass
class Run:
    returncode: int
    stderr: str
    summary: dict[str, Any]
    event_ids: list[str]


def run_target(
    sandbox: SandboxServer, directory: Path, lines: list[str], record_workers: int, **config: Any
) -> Run:
    directory.mkdir()
    summary = directory / "summary.json"
    settings = orders_config(
        sandbox.url,
        directory,
        record_workers=record_workers,
        summary_path=str(summary),
        **config,
    )
    (directory / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    completed = subprocess.run(
        [str(TARGET), "--config", str(directory / "config.json")],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
    )
    return Run(
        completed.returncode,
        completed.stderr,
        json.loads(summary.read_text(encoding="utf-8")),
        sorted(item["event"]["event_id"] for item in sandbox.accepted_events()),
    )


def key_changed_mid_run(order_ids_after: range) -> list[str]:
    """Orders under the key order_id, then a SCHEMA making it (order_id, line_no), then
    `order_ids_after` (an incremental tap sends the row at its bookmark again)."""
    lines = [schema_line(["order_id"]), *map(record_line, range(1, ORDERS + 1))]
    lines.append(schema_line(["order_id", "line_no"]))
    lines += [*map(record_line, order_ids_after), state_line(order_ids_after[-1])]
    return lines


KEY_CHANGE_WARNING = (
    f"Stream {STREAM!r}: its SCHEMA at input line {ORDERS + 2} changes its key properties "
    'from ["order_id"] to ["order_id", "line_no"]. Its event_ids are derived from them, so a '
    "row sent before this SCHEMA gets another event_id when it is sent again, and Meta counts "
    "it twice."
)


@pytest.mark.parametrize("record_workers", [0, 2])
def test_key_properties_changed_mid_run_are_warned_about_where_event_ids_are_derived_from_them(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, record_workers: int
) -> None:
    lines = key_changed_mid_run(range(ORDERS, ORDERS + 100))

    run = run_target(
        sandbox_factory(), tmp_path / "run", lines, record_workers, streams={STREAM: DERIVED_IDS}
    )

    assert run.returncode == 0, run.stderr[-3000:]
    # the row at the bookmark, sent before and after the change: two events to Meta
    assert len(run.event_ids) == len(set(run.event_ids)) == ORDERS + 100
    [warning] = [w for w in run.summary["warnings"] if "key properties" in w]
    assert warning.startswith(KEY_CHANGE_WARNING)


def test_key_properties_changed_mid_run_are_not_warned_about_where_a_column_gives_event_ids(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = key_changed_mid_run(range(ORDERS, ORDERS + 100))

    run = run_target(sandbox, tmp_path / "run", lines, 2)  # event_id: order_id

    assert run.returncode == 0, run.stderr[-3000:]
    assert len(set(run.event_ids)) == ORDERS + 99  # the resent row deduplicates at Meta
    assert not any("key properties" in warning for warning in run.summary["warnings"])


def test_key_properties_changed_mid_run_are_warned_about_for_a_stream_a_stream_map_renames(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    lines = key_changed_mid_run(range(ORDERS, ORDERS + 100))

    run = run_target(
        sandbox,
        tmp_path / "run",
        lines,
        0,
        streams={"purchases": DERIVED_IDS},
        stream_maps={STREAM: {"__alias__": "purchases"}},
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.event_ids) == len(set(run.event_ids)) == ORDERS + 100
    [warning] = [w for w in run.summary["warnings"] if "key properties" in w]
    assert warning.startswith(KEY_CHANGE_WARNING.replace(repr(STREAM), "'purchases'"))


# --- schema keywords as taps write them ------------------------------------------------------

#: A coupon code only with its owner: singer-sdk's typing writes the SCHEMA of
#: `th.Property("coupon", th.StringType, requires_properties=["coupon_owner"])` so.
COUPONS = {
    **ORDER_SCHEMA,
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "properties": {
        **ORDER_SCHEMA["properties"],
        "coupon": {"type": ["string", "null"]},
        "coupon_owner": {"type": ["string", "null"]},
    },
    "dependentRequired": {"coupon": ["coupon_owner"]},
}


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_record_breaking_dependent_required_stops_the_run_naming_the_field_it_lacks(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    # the last order past the ones the main process keeps: a worker's to check
    orders = [order(order_id) for order_id in range(1, ORDERS + 1)]
    orders[-1]["coupon"] = "SPRING"
    lines = [
        schema_line(["order_id"], COUPONS),
        *(json.dumps({"type": "RECORD", "stream": STREAM, "record": row}) for row in orders),
        state_line(ORDERS),
    ]

    run = run_target(sandbox, tmp_path / "run", lines, record_workers)

    assert run.returncode == 1
    assert run.summary["failure"] == (
        f"Record does not match its SCHEMA (input line {ORDERS + 1}, stream {STREAM!r}): "
        "field 'coupon_owner' is missing, which the schema's 'dependentRequired' requires "
        "with 'coupon'"
    )


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_ref_leading_nowhere_stops_the_run_at_its_schema_naming_the_column(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    # a coupon is null or a code, the code's schema missing: no null coupon ever reached it,
    # and the run went on, sending its orders, until the first coupon given
    coupon = {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/coupon_code"}]}
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "coupon": coupon}}
    lines = [schema_line(["order_id"], schema)]
    lines += [json.dumps({"type": "RECORD", "stream": STREAM, "record": order(1, coupon=None)})]
    lines.append(state_line(1))

    run = run_target(sandbox, tmp_path / "run", lines, record_workers)

    assert run.returncode == 1
    assert run.summary["failure"] == (
        f"InvalidJSONSchema (input line 1, stream {STREAM!r}): the stream's SCHEMA has a $ref "
        "that cannot be resolved: '#/definitions/coupon_code' (column 'coupon')"
    )
    assert run.event_ids == []


# --- a SCHEMA changed mid-run ----------------------------------------------------------------


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_schema_dropping_the_event_time_column_mid_run_stops_the_run_naming_its_line(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    columns = WITH_LINE_NUMBERS["properties"]
    without_created_at = {
        **WITH_LINE_NUMBERS,
        "properties": {k: v for k, v in columns.items() if k != "created_at"},
    }
    lines = [schema_line(["order_id"]), *map(record_line, range(1, ORDERS + 1))]
    lines += [state_line(ORDERS), schema_line(["order_id"], without_created_at)]

    run = run_target(sandbox, tmp_path / "run", lines, record_workers)

    assert run.returncode == 1
    assert run.summary["failure"].startswith(
        f"Stream {STREAM!r}: no column of its SCHEMA (input line {ORDERS + 3}) gives "
        "event_time, which every event needs, so each record under it would be dead-lettered; "
        "stopped before any was. `fields` maps it to 'created_at', which the SCHEMA does not "
        "have."
    )


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_warning_about_a_schema_is_not_logged_again_for_the_same_at_each_change(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    # no key properties and no event_id column: said at the first SCHEMA, and the same at
    # each one adding a column (a log-based tap's after each ALTER TABLE)
    lines = [schema_line([]), *map(record_line, range(1, ORDERS + 1))]
    for added in ("coupon", "note"):
        schema = {**WITH_LINE_NUMBERS, "properties": {**WITH_LINE_NUMBERS["properties"]}}
        schema["properties"][added] = {"type": ["string", "null"]}
        lines += [schema_line([], schema), record_line(ORDERS + 1)]
    lines.append(state_line(ORDERS + 1))

    run = run_target(
        sandbox, tmp_path / "run", lines, record_workers, streams={STREAM: DERIVED_IDS}
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("has no key properties and no event_id column") == 1
