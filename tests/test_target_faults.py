"""Faults on the wire and crashes: every row arrives, duplicates only with the same event_id."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from target_meta_capi.sandbox import SandboxServer

from ._target_support import STREAM, order, order_stream, orders_config, run_in_process

TARGET = Path(sys.executable).with_name("target-meta-capi")


def test_fault_mix_delivers_every_event(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # seed 2 draws each of the three faults within the first 16 requests (of at least 60)
    sandbox = sandbox_factory(
        transient_error_rate=0.10, throttle_rate=0.05, cut_after_accept_rate=0.02, seed=2
    )
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, concurrent_requests=4, max_retries=12
    )
    result = run_in_process(config, order_stream(300, state_every=50))
    assert result.exit_code == 0
    faults = sandbox.stats()["faults"]
    assert faults["transient_error"] and faults["throttle"] and faults["cut_after_accept"]
    received = Counter(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
    assert set(received) == set(range(1, 301))
    assert result.states[-1] == {"bookmarks": {STREAM: 300}}


def test_fault_mix_duplicates_carry_the_same_event_id_and_name(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(cut_after_accept_rate=0.3, seed=5)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, max_retries=12)
    run_in_process(config, order_stream(50))
    by_id: dict[str, set[str]] = {}
    for item in sandbox.accepted_events():
        event = item["event"]
        by_id.setdefault(event["event_id"], set()).add(json.dumps(event, sort_keys=True))
    assert len(sandbox.accepted_events()) > 50  # connections were cut after acceptance
    assert len(by_id) == 50
    assert all(len(versions) == 1 for versions in by_id.values())


def test_rerun_after_sigkill_from_the_last_state_delivers_every_row(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=30)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen(
        [str(TARGET), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n".join(order_stream(40, state_every=5)[:-1]) + "\n")
    process.stdin.flush()
    last_state = json.loads(process.stdout.readline())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    # what a tap does with the last state it got back: resume after its bookmark
    bookmark = last_state["bookmarks"][STREAM]
    resumed = [order(order_id) for order_id in range(bookmark + 1, 41)]
    result = run_in_process(config, order_stream(len(resumed), records=resumed))
    assert result.exit_code == 0
    events = [item["event"] for item in sandbox.accepted_events()]
    assert {int(event["event_id"]) for event in events} == set(range(1, 41))
    first_seen: dict[str, str] = {}
    for event in events:
        text = json.dumps({k: v for k, v in event.items() if k != "event_time"}, sort_keys=True)
        assert first_seen.setdefault(event["event_id"], text) == text
