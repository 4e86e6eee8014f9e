"""STATE is written only once Meta acknowledged every record before it — and then promptly.

Each state line is checked at the moment the target writes it, against what the sandbox has
accepted by then; no timing is assumed.
"""

from __future__ import annotations

import contextlib
import io
import json
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from target_meta_capi.capi.http import HttpResponse, HttpServiceInterface, RequestsHttpService
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.target import TargetMetaCapi

from ._target_support import (
    ORDER_SCHEMA,
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

RECORDS = 40


class StateRecorder(io.StringIO):
    """Stands in for stdout; on every state line notes what the sandbox had accepted."""

    def __init__(self, sandbox: SandboxServer, target: TargetMetaCapi) -> None:
        super().__init__()
        self._sandbox = sandbox
        self.target = target
        self.observations: list[tuple[int, set[int], int]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            bookmark = json.loads(line)["bookmarks"][STREAM]
            accepted = {int(item["event"]["event_id"]) for item in self._sandbox.accepted_events()}
            self.observations.append((bookmark, accepted, self.target.message_reader.line_number))
        return super().write(text)


def _run(
    target_class: type[TargetMetaCapi],
    config: Mapping[str, Any],
    sandbox: SandboxServer,
    lines: list[str],
) -> tuple[int, StateRecorder]:
    target = target_class(config=dict(config), parse_env_config=False)
    recorder = StateRecorder(sandbox, target)
    with contextlib.redirect_stdout(recorder):
        exit_code = target.run(io.StringIO("".join(line + "\n" for line in lines)))
    return exit_code, recorder


def _target_with_service(service: HttpServiceInterface) -> type[TargetMetaCapi]:
    return type("TargetWithService", (FastRetryTarget,), {"_http_service": lambda self: service})


class AuthFailsAfter(HttpServiceInterface):
    """Forwards to the sandbox, then answers Graph's 190 error from request `n + 1` on."""

    def __init__(self, successful_requests: int) -> None:
        self._inner = RequestsHttpService(pool_size=2)
        self._remaining = successful_requests
        self._lock = threading.Lock()

    def execute(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> HttpResponse:
        with self._lock:
            self._remaining -= 1
            allowed = self._remaining >= 0
        if allowed:
            return self._inner.execute(method, url, headers, body, timeout)
        error = {
            "error": {
                "message": "Error validating access token: Session has expired",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 463,
                "fbtrace_id": "AexpiredXYZ",
            }
        }
        return HttpResponse(400, {"Content-Type": "application/json"}, json.dumps(error).encode())


def _slow_sandbox(sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox_factory(latency_ms=20)


def _one_request_at_a_time(sandbox: SandboxServer, tmp_path: Path, **overrides: Any) -> dict:
    # A window of one makes reading wait for each answer: acknowledgements and input interleave.
    return orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1, **overrides)


def test_no_state_is_written_before_its_records_are_acknowledged(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = _slow_sandbox(sandbox_factory)
    exit_code, recorder = _run(
        FastRetryTarget,
        _one_request_at_a_time(sandbox, tmp_path),
        sandbox,
        order_stream(RECORDS, state_every=5),
    )
    assert exit_code == 0
    assert recorder.observations
    for bookmark, accepted, _ in recorder.observations:
        assert set(range(1, bookmark + 1)) <= accepted


def test_states_are_written_while_input_is_still_being_read(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = _slow_sandbox(sandbox_factory)
    lines = order_stream(RECORDS, state_every=5)
    _, recorder = _run(FastRetryTarget, _one_request_at_a_time(sandbox, tmp_path), sandbox, lines)
    written_mid_run = [bookmark for bookmark, _, line in recorder.observations if line < len(lines)]
    assert len(written_mid_run) >= 3
    assert recorder.observations[-1][0] == RECORDS


def test_state_drains_a_half_full_batch_so_it_can_be_written(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    eager = type("EagerStateTarget", (FastRetryTarget,), {"state_drain_min_interval_seconds": 0})
    config = orders_config(sandbox.url, tmp_path, batch_size=1000, concurrent_requests=1)
    lines = order_stream(RECORDS, state_every=5)
    _, recorder = _run(eager, config, sandbox, lines)
    assert sandbox.stats()["requests"] == RECORDS // 5
    assert [bookmark for bookmark, _, _ in recorder.observations][-1] == RECORDS


def test_failure_mid_run_stops_state_and_exits_nonzero(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    target_class = _target_with_service(AuthFailsAfter(successful_requests=3))
    exit_code, recorder = _run(
        target_class,
        _one_request_at_a_time(sandbox, tmp_path),
        sandbox,
        order_stream(RECORDS, state_every=5),
    )
    assert exit_code == 1
    bookmarks = [bookmark for bookmark, _, _ in recorder.observations]
    assert bookmarks
    assert max(bookmarks) <= 15
    for bookmark, accepted, _ in recorder.observations:
        assert set(range(1, bookmark + 1)) <= accepted


def test_records_of_a_request_that_failed_for_good_are_never_settled(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # settled means acknowledged or dead-lettered: a record lost with its request is neither,
    # and no state may ever pass it
    target_class = _target_with_service(AuthFailsAfter(successful_requests=3))
    exit_code, recorder = _run(
        target_class,
        _one_request_at_a_time(sandbox, tmp_path),
        sandbox,
        order_stream(RECORDS, state_every=5),
    )
    assert exit_code == 1
    accepted = {int(item["event"]["event_id"]) for item in sandbox.accepted_events()}
    assert accepted == set(range(1, 16))
    assert recorder.target.ledger.watermark == 15


def test_nothing_is_left_unsettled_after_a_clean_run(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    target = FastRetryTarget(config=orders_config(sandbox.url, tmp_path), parse_env_config=False)
    with contextlib.redirect_stdout(io.StringIO()):
        target.run(io.StringIO("\n".join(order_stream(12, state_every=3)) + "\n"))
    assert target.ledger.unsettled_count == 0
    assert target.ledger.pending_state_count == 0


def test_state_of_a_quiet_tap_is_written_before_its_next_line(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # answers arrive well after the STATE line was read: only their callbacks can write it
    sandbox = sandbox_factory(latency_ms=300)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(orders_config(sandbox.url, tmp_path, batch_size=5)))
    target = subprocess.Popen(
        [str(Path(sys.executable).with_name("target-meta-capi")), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert target.stdin is not None and target.stdout is not None
    try:
        # 10 records and their STATE, then the tap goes quiet with stdin still open
        target.stdin.write("\n".join(order_stream(10, state_every=10)) + "\n")
        target.stdin.flush()
        ready, _, _ = select.select([target.stdout], [], [], 30)
        assert ready, "no state line while the tap was quiet"
        assert json.loads(target.stdout.readline()) == {"bookmarks": {STREAM: 10}}
        assert len(sandbox.accepted_events()) == 10
    finally:
        target.stdin.close()
        target.wait(timeout=30)
    assert target.returncode == 0


def _inventory_lines(count: int) -> list[str]:
    """A stream with no mapping (skipped: its records are settled as read), a STATE after each
    of its `count` records."""
    schema = {"properties": {"sku": {"type": "integer"}}}
    lines = [json.dumps({"type": "SCHEMA", "stream": "inventory", "schema": schema})]
    for sku in range(1, count + 1):
        lines.append(json.dumps({"type": "RECORD", "stream": "inventory", "record": {"sku": sku}}))
        lines.append(json.dumps({"type": "STATE", "value": {"inventory": sku}}))
    return lines


def test_a_state_repeated_unchanged_drains_no_half_full_batch(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # a tap may send its state again before it moves (once a page, say): only a new one is
    # worth a request of fewer events than a batch holds
    eager = type("EagerStateTarget", (FastRetryTarget,), {"state_drain_min_interval_seconds": 0})
    config = orders_config(sandbox.url, tmp_path, batch_size=1000, concurrent_requests=1)
    lines = [schema_line(), record_line(order(1)), state_line(1)]
    lines += [record_line(order(2)), state_line(1), record_line(order(3)), state_line(3)]
    result = run_in_process(config, lines, eager)
    assert result.exit_code == 0
    assert sandbox.stats()["requests"] == 2  # records 1, then 2 and 3
    assert result.states[-1] == {"bookmarks": {STREAM: 3}}


def test_states_ready_as_they_arrive_are_not_echoed_one_line_each_and_the_last_is_not_held(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # A STATE after every record of a skipped stream: each is ready as it arrives. Meltano
    # commits every state line it gets to its system database, so 3,000 lines in a second or
    # two would cost it more than the run; the newest state is what it keeps anyway.
    sandbox = sandbox_factory(latency_ms=200)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(orders_config(sandbox.url, tmp_path)))
    target = subprocess.Popen(
        [str(Path(sys.executable).with_name("target-meta-capi")), "--config", str(config_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert target.stdin is not None and target.stdout is not None
    states: list[Any] = []

    def write_and_read_states_until(lines: list[str], last_state: Any) -> None:
        assert target.stdin is not None and target.stdout is not None
        target.stdin.write("\n".join(lines) + "\n")
        target.stdin.flush()
        # then the tap goes quiet with stdin open: the newest state must still come
        while not states or states[-1] != last_state:
            ready, _, _ = select.select([target.stdout], [], [], 30)
            assert ready, f"a state was held while the tap was quiet (got {states[-1:]})"
            states.append(json.loads(target.stdout.readline()))

    try:
        # an order's state, written when Meta's answer comes (a state line without a drain of
        # the batches), then the skipped stream's
        write_and_read_states_until(order_stream(1), {"bookmarks": {STREAM: 1}})
        write_and_read_states_until(_inventory_lines(3000), {"inventory": 3000})
    finally:
        target.stdin.close()
        target.wait(timeout=30)
    assert target.returncode == 0
    assert target.stdout.read() == ""  # nothing after the newest state
    # one line a second at most: 3,001 without that rule
    assert len(states) < 100
    inventory = [state["inventory"] for state in states[1:]]
    assert inventory == sorted(set(inventory))


def test_a_request_failing_for_good_stops_the_run_while_the_tap_is_quiet(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # The failure is found on a thread of the window; the main thread waits for the tap's next
    # line, which a quiet tap may send in hours. It used to raise it only then.
    sandbox = sandbox_factory()
    config = orders_config(sandbox.url, tmp_path, access_token="not-the-sandbox-token")
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    with (tmp_path / "stderr").open("w") as stderr:
        target = subprocess.Popen(
            [str(Path(sys.executable).with_name("target-meta-capi")), "--config", str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
    assert target.stdin is not None and target.stdout is not None
    try:
        target.stdin.write("\n".join(order_stream(1)) + "\n")
        target.stdin.flush()  # and nothing more: stdin stays open
        target.wait(timeout=30)
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
        target.stdin.close()
    assert target.returncode == 1
    assert target.stdout.read() == ""  # no state
    assert "Check access_token" in (tmp_path / "stderr").read_text()
    assert sandbox.stats()["requests"] == 1


class RetiredSinksObserved(FastRetryTarget):
    """Notes how many sinks a changed SCHEMA replaced are still kept after each send of all
    batches."""

    state_drain_min_interval_seconds = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retired_kept: list[int] = []

    def _send_all_batches(self) -> None:
        super()._send_all_batches()
        self.retired_kept.append(len(self._sinks_to_clear))


def test_a_sink_a_changed_schema_replaced_is_let_go_once_its_records_are_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    wider = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "note": {}}}
    lines = []
    for round_ in range(20):  # the SCHEMA alternates, as a tap's does for rows of two shapes
        lines.append(schema_line(schema=wider if round_ % 2 else ORDER_SCHEMA))
        lines += [record_line(order(round_ * 3 + i)) for i in (1, 2, 3)]
        lines.append(state_line(round_ * 3 + 3))
    result = run_in_process(orders_config(sandbox.url, tmp_path), lines, RetiredSinksObserved)
    assert result.exit_code == 0
    assert len(sandbox.accepted_events()) == 60
    assert result.target.retired_kept and max(result.target.retired_kept) == 0
