"""Graph errors a user asks the sandbox for (``--graph-error``), as the real target meets them:
its retry policy acts on the injected code as it would on Meta's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from target_meta_capi.sandbox import cli
from target_meta_capi.sandbox.faults import FaultInjector

from ._target_support import order_stream, orders_config
from .test_sandbox import PIXEL, TOKEN, make_event, sandbox_cli

TARGET = Path(sys.executable).with_name("target-meta-capi")


def _run_target(graph_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # max_retry_seconds bounds each wait between retries, which a throttle would make seconds
    config = orders_config(graph_url, tmp_path, max_retries=3, max_retry_seconds=1)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input="".join(line + "\n" for line in order_stream(1)),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def _stats(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/__stats", timeout=10).json()


def test_an_injected_expired_token_error_is_answered_as_graph_answers_it():
    with sandbox_cli("--graph-error", "1:400:190:463::Session has expired") as (_, url):
        answer = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            params={"access_token": TOKEN},
            json={"data": [make_event()]},
            timeout=10,
        )
        stats = _stats(url)
    error = answer.json()["error"]
    assert answer.status_code == 400
    assert {key: error[key] for key in ("message", "type", "code", "error_subcode")} == {
        "message": "Session has expired",
        "type": "OAuthException",
        "code": 190,
        "error_subcode": 463,
    }
    assert error["is_transient"] is False
    assert answer.headers["x-fb-trace-id"] == error["fbtrace_id"]
    assert (stats["events_received"], stats["faults"]["graph_error"]) == (0, 1)
    assert (stats["rejected_by_code"], stats["rejected_by_subcode"]) == ({"190": 1}, {"463": 1})


def test_the_target_does_not_retry_an_injected_expired_token_error(tmp_path):
    with sandbox_cli("--graph-error", "1:400:190:463") as (_, url):
        completed = _run_target(url, tmp_path)
        stats = _stats(url)
    assert completed.returncode == 1
    assert completed.stdout == ""  # no state: nothing was delivered
    assert stats["requests"] == 1
    assert stats["rejected_by_code"] == {"190": 1}


@pytest.mark.parametrize("code", ["80004", "613"])
def test_the_target_retries_an_injected_throttling_error_until_it_is_accepted(tmp_path, code):
    # seed 9 draws a fault, then none: the first request is throttled, its retry accepted
    with sandbox_cli("--seed", "9", "--graph-error", f"0.5:400:{code}:2446079:transient") as (
        _,
        url,
    ):
        completed = _run_target(url, tmp_path)
        stats = _stats(url)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert (stats["requests"], stats["accepted_requests"]) == (2, 1)
    assert stats["rejected_by_code"] == {code: 1}
    assert json.loads(completed.stdout.splitlines()[-1])["bookmarks"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("1:400", "must be RATE:STATUS:CODE[:SUBCODE[:transient[:MESSAGE]]], got 1:400"),
        ("1:abc:190", "must be RATE:STATUS:CODE[:SUBCODE[:transient[:MESSAGE]]], got 1:abc:190"),
        ("2:400:190", "a rate is a share between 0 and 1, got 2"),
        ("1:200:190", "a graph error's HTTP status must be from 400 to 599, got 200"),
        ("1:400:190:x", "a subcode is a whole number >= 0, got x"),
        ("1:400:190::yes", "the fifth part is 'transient' or empty, got yes"),
    ],
)
def test_cli_refuses_a_graph_error_it_cannot_read_saying_what_it_takes(capsys, spec, error):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--port", "0", "--graph-error", spec])
    assert exited.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"argument --graph-error: {error}")


def test_cli_refuses_graph_error_rates_adding_up_to_more_than_one_with_the_others(capsys):
    assert cli.main(["--throttle-rate", "0.6", "--graph-error", "0.5:400:190"]) == 2
    assert "fault rates must add up to at most 1" in capsys.readouterr().err


def test_adding_a_graph_error_changes_no_other_fault_of_a_seed():
    def faults_drawn(**graph_errors: Any) -> list[str | None]:
        injector = FaultInjector(seed=3, latency_ms=0, rates={"throttle": 0.3}, **graph_errors)
        return [injector.decide().fault for _ in range(200)]

    without, with_graph_error = faults_drawn(), faults_drawn(graph_error_rates=[0.4])
    assert [fault == "throttle" for fault in with_graph_error] == [
        fault == "throttle" for fault in without
    ]
    assert set(with_graph_error) == {"throttle", "graph_error", None}
