"""The benchmark's generated orders are what it claims, and the target delivers all of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from target_meta_capi.record_workers import RECORDS_BEFORE_WORKERS
from target_meta_capi.sandbox import SandboxServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import generate
from run import ACCESS_TOKEN, ORDERS_MAPPING, PIXEL_ID

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TARGET = Path(sys.executable).with_name("target-meta-capi")


def _messages(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_stream_is_one_schema_the_records_and_a_state_every_10000(tmp_path: Path) -> None:
    messages = _messages(generate.write_stream(tmp_path / "orders.singer", 10_001))
    assert messages[0]["type"] == "SCHEMA"
    assert sum(message["type"] == "RECORD" for message in messages) == 10_001
    states = [message for message in messages if message["type"] == "STATE"]
    assert [
        state["value"]["bookmarks"][generate.STREAM]["replication_key_value"] for state in states
    ] == [10_000, 10_001]


def test_customers_repeat_with_their_messy_contact_data(tmp_path: Path) -> None:
    messages = _messages(generate.write_stream(tmp_path / "orders.singer", 2_000, customers=50))
    records = [message["record"] for message in messages if message["type"] == "RECORD"]
    assert len({record["customer_id"] for record in records}) == 50
    emails = {record["email"] for record in records if record["email"]}
    assert any(email != email.strip() or email != email.lower() for email in emails)
    assert len(records[0]) == len(generate.SCHEMA["properties"])


def _run_on_orders(command: list[str], orders: Path, config: dict[str, Any]) -> None:
    """`command --config` (the config in the orders' folder) with the orders as its stdin."""
    config_path = orders.with_name("config.json")
    config_path.write_text(json.dumps(config))
    with orders.open("rb") as stdin:
        finished = subprocess.run(
            [*command, "--config", str(config_path)], stdin=stdin, capture_output=True, timeout=120
        )
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]


def _benchmark_config(sandbox: SandboxServer, dead_letters: Path) -> dict[str, Any]:
    """The config benchmarks/run.py gives the target."""
    return {
        "pixel_id": PIXEL_ID,
        "access_token": ACCESS_TOKEN,
        "graph_url": sandbox.url,
        "dead_letter_path": str(dead_letters),
        "streams": ORDERS_MAPPING,
    }


def test_target_delivers_every_generated_order_with_the_benchmark_mapping(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    dead_letters = tmp_path / "dead-letters.jsonl"
    orders = generate.write_stream(tmp_path / "orders.singer", 500)
    _run_on_orders([str(TARGET)], orders, _benchmark_config(sandbox, dead_letters))
    assert len(sandbox.accepted_events()) == 500
    assert not dead_letters.exists() or dead_letters.read_text() == ""


def test_ceiling_target_sends_each_order_as_the_first_orders_event_under_its_own_event_id(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    orders = generate.write_stream(tmp_path / "orders.singer", 1_500)
    config = {**_benchmark_config(sandbox, tmp_path / "dead-letters.jsonl"), "record_workers": 2}
    _run_on_orders([sys.executable, str(BENCHMARKS / "ceiling_target.py")], orders, config)
    events = [accepted["event"] for accepted in sandbox.accepted_events()]
    assert sorted(int(event["event_id"]) for event in events) == list(range(1, 1_501))
    # the main process converts the stream's first orders for real, as the target does; of the
    # rest, each worker converts its first for real, and every other is a copy of one of those
    by_workers = [event for event in events if int(event["event_id"]) > RECORDS_BEFORE_WORKERS]
    made = [event for event in by_workers if event["custom_data"]["order_id"] == event["event_id"]]
    assert 1 <= len(made) <= 2
    without_id = [{**event, "event_id": None} for event in made]
    assert all({**event, "event_id": None} in without_id for event in by_workers)
