"""Helpers for the target tests: order streams with fresh times, configs, in-process runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.target import TargetMetaCapi

STREAM = "public-orders"
PIXEL_ID = "1234567890"
ACCESS_TOKEN = "sandbox-token"
TEST_EVENT_CODE = "TEST12345"
ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "email": {"type": ["string", "null"]},
        "client_ip": {"type": ["string", "null"]},
        "user_agent": {"type": ["string", "null"]},
        "page_url": {"type": ["string", "null"]},
        "total": {"type": "number"},
        "currency": {"type": "string"},
    },
    "required": ["order_id", "total"],
}
# The orders mapping users start from: the tests prove config.sample.json works.
_SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config.sample.json"
ORDERS_MAPPING = json.loads(_SAMPLE_CONFIG.read_text(encoding="utf-8"))["streams"][STREAM]


class FastRetryTarget(TargetMetaCapi):
    """Retries after milliseconds instead of seconds, so failure tests stay quick."""

    retry_base_delay_seconds = 0.001


def orders_config(graph_url: str, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "pixel_id": PIXEL_ID,
        "access_token": ACCESS_TOKEN,
        "graph_url": graph_url,
        "test_event_code": TEST_EVENT_CODE,
        "dead_letter_path": str(tmp_path / "dead_letters.jsonl"),
        "progress_interval": 0,
        "streams": {STREAM: ORDERS_MAPPING},
    }
    config.update(overrides)
    return config


def order(order_id: int, *, age_seconds: float = 3600, **fields: Any) -> dict[str, Any]:
    created = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_seconds)
    record = {
        "order_id": order_id,
        "created_at": created.isoformat(timespec="seconds"),
        "email": f" Customer{order_id}@Example.COM ",
        "client_ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        "page_url": f"https://shop.example.com/thanks?order={order_id}",
        "total": 19.99,
        "currency": "USD",
    }
    record.update(fields)
    return record


def schema_line(stream: str = STREAM, schema: Mapping[str, Any] = ORDER_SCHEMA) -> str:
    return json.dumps(
        {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["order_id"]}
    )


def record_line(record: Mapping[str, Any], stream: str = STREAM) -> str:
    return json.dumps({"type": "RECORD", "stream": stream, "record": record})


def state_line(last_order_id: int) -> str:
    return json.dumps({"type": "STATE", "value": {"bookmarks": {STREAM: last_order_id}}})


def order_stream(
    count: int, *, state_every: int | None = None, records: Iterable[Mapping] | None = None
) -> list[str]:
    """SCHEMA, `count` orders (ids 1..count), a STATE every `state_every` records and at the end."""
    lines = [schema_line()]
    rows = list(records) if records is not None else [order(i) for i in range(1, count + 1)]
    for index, row in enumerate(rows, start=1):
        lines.append(record_line(row))
        if state_every and index % state_every == 0 and index != len(rows):
            lines.append(state_line(row["order_id"]))
    lines.append(state_line(rows[-1]["order_id"]))
    return lines


@dataclass
class RunResult:
    exit_code: int
    states: list[Any]
    target: TargetMetaCapi


def run_in_process(
    config: Mapping[str, Any],
    lines: Iterable[str],
    target_class: type[TargetMetaCapi] = FastRetryTarget,
) -> RunResult:
    """Run the target as the CLI does (minus process exit) and collect the state lines."""
    target = target_class(config=dict(config), parse_env_config=False)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = target.run(io.StringIO("".join(line + "\n" for line in lines)))
    states = [json.loads(line) for line in stdout.getvalue().splitlines()]
    return RunResult(exit_code, states, target)


def read_dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead_letters.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    """Wait for the condition; the time covers a target's start-up on a loaded CI machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def settled_stats(sandbox: SandboxServer) -> dict[str, Any]:
    """The sandbox's counters once no request is in flight, from that very reading: a second
    reading could count a request that arrived in between, still unanswered."""
    readings: list[dict[str, Any]] = []
    wait_until(lambda: readings.append(sandbox.stats()) or readings[-1]["in_flight"] == 0)
    return readings[-1]
