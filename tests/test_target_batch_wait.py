"""A batch that is not full waits at most `max_batch_wait_seconds`, also while the tap is silent.

The target runs as the CLI, behind a pipe held open like a tap's (a log-based tap, a slow
query), against the sandbox. Bounds are generous: they tell "sent while the tap is silent"
from "sent when stdin closes", not how fast.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.sandbox import SandboxServer

from ._target_support import (
    STREAM,
    order,
    orders_config,
    record_line,
    schema_line,
    state_line,
    wait_until,
)

TARGET = str(Path(sys.executable).with_name("target-meta-capi"))
#: Far beyond a wait of a second, far below a test run's patience.
BOUND_SECONDS = 20.0


@contextmanager
def _target(config: dict[str, Any], tmp_path: Path, **popen: Any) -> Iterator[subprocess.Popen]:
    """The target CLI with `config`, stdin a pipe the test writes to (unless given)."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    popen.setdefault("stdin", subprocess.PIPE)
    target = subprocess.Popen(
        [TARGET, "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **popen,
    )  # fmt: skip
    try:
        yield target
    finally:
        if target.stdin is not None:
            target.stdin.close()
        try:
            target.wait(timeout=30)
        finally:
            if target.poll() is None:
                target.kill()
                target.wait()


def _write(target: subprocess.Popen, lines: list[str]) -> None:
    assert target.stdin is not None
    target.stdin.write("".join(line + "\n" for line in lines))
    target.stdin.flush()


@pytest.mark.parametrize("record_workers", [0, 2])
def test_a_partial_batch_is_sent_while_the_tap_is_silent(
    sandbox: SandboxServer, tmp_path: Path, record_workers: int
) -> None:
    config = orders_config(
        sandbox.url, tmp_path, max_batch_wait_seconds=1, record_workers=record_workers
    )
    with _target(config, tmp_path) as target:
        # six records of a batch of 1,000, no STATE, then silence with stdin open
        _write(target, [schema_line(), *(record_line(order(i)) for i in range(1, 7))])
        wait_until(lambda: len(sandbox.accepted_events()) == 6, timeout=BOUND_SECONDS)
        assert target.poll() is None  # still reading: sent because of the wait, not the end
    assert target.returncode == 0
    assert sandbox.stats()["requests"] == 1


def test_the_state_after_records_sent_early_is_written_only_once_meta_acknowledged_them(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=1500)  # the early request stays in flight a while
    config = orders_config(sandbox.url, tmp_path, max_batch_wait_seconds=0.5)
    with _target(config, tmp_path) as target:
        assert target.stdout is not None
        _write(target, [schema_line(), *(record_line(order(i)) for i in range(1, 7))])
        # the batch went without a STATE; its state comes while Meta has not answered yet
        wait_until(lambda: sandbox.stats()["in_flight"] == 1, timeout=BOUND_SECONDS)
        _write(target, [state_line(6)])
        ready, _, _ = select.select([target.stdout], [], [], BOUND_SECONDS)
        assert ready, "no state while the tap was silent"
        state = json.loads(target.stdout.readline())
        accepted_when_written = len(sandbox.accepted_events())
    assert state == {"bookmarks": {STREAM: 6}}
    assert accepted_when_written == 6
    assert sandbox.stats()["requests"] == 1


def test_records_trickling_in_without_a_silence_are_sent_within_the_wait(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a record every 0.2 s: the tap never stays silent for the whole wait of 1 s
    config = orders_config(sandbox.url, tmp_path, max_batch_wait_seconds=1)
    with _target(config, tmp_path) as target:
        _write(target, [schema_line()])
        accepted_while_trickling = 0
        deadline = time.monotonic() + BOUND_SECONDS
        order_id = 0
        while not accepted_while_trickling and time.monotonic() < deadline:
            order_id += 1
            _write(target, [record_line(order(order_id))])
            time.sleep(0.2)
            accepted_while_trickling = len(sandbox.accepted_events())
        assert accepted_while_trickling, "nothing sent while records kept coming"
    # several records to a request, not one each
    assert sandbox.stats()["requests"] < order_id


def test_a_rare_stream_among_a_busy_one_is_sent_within_the_wait_while_input_never_pauses(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # stdin is a file: the input never pauses, so only the check while it flows sends the
    # rare stream's one event before the end of the input
    rare = "public-refunds"
    busy_records = 40_000
    refund_id = busy_records + 1
    lines = [schema_line(), schema_line(stream=rare), record_line(order(refund_id), stream=rare)]
    lines += [record_line(order(i)) for i in range(1, busy_records + 1)]
    (tmp_path / "input.singer").write_text("".join(line + "\n" for line in lines))
    config = orders_config(sandbox.url, tmp_path, max_batch_wait_seconds=0.2)
    config["streams"][rare] = config["streams"][STREAM]
    with (tmp_path / "input.singer").open() as stdin, _target(config, tmp_path, stdin=stdin):
        pass
    accepted = sandbox.accepted_events()
    assert len(accepted) == busy_records + 1
    event_ids = [item["event"]["event_id"] for item in accepted]
    # sent with the end of the input, it would come after every full batch of the busy stream
    # was sent: behind at most the window's 8 requests still in flight, so past 31,000
    assert event_ids.index(str(refund_id)) < busy_records - 10_000


def test_a_request_failing_for_good_stops_the_run_while_a_partial_batch_waits(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a full batch fails (bad token) while two records wait for a minute: the wait for them
    # (or for the tap) must not hold back the failure
    config = orders_config(
        sandbox.url,
        tmp_path,
        access_token="not-the-sandbox-token",
        batch_size=5,
        max_batch_wait_seconds=60,
    )
    with _target(config, tmp_path) as target:
        _write(target, [schema_line(), *(record_line(order(i)) for i in range(1, 8))])
        target.wait(timeout=BOUND_SECONDS)
        assert target.stdout is not None
        assert target.stdout.read() == ""  # no state
    assert target.returncode == 1
