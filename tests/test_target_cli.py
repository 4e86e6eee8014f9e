"""The installed `target-meta-capi` command against the sandbox, as a pipeline runs it."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from target_meta_capi import target as target_module
from target_meta_capi.record_workers import RECORDS_BEFORE_WORKERS
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.settings import config_files as config_files_module

from ._http_fixture import FakeGraphServer, RecordedRequest, Reply, accept, html_page
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
    settled_stats,
    state_line,
    wait_until,
)

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(sys.executable).with_name("target-meta-capi")
SETTINGS = [
    "pixel_id", "access_token", "app_secret", "api_version", "graph_url", "test_event_code",
    "partner_agent", "namespace_id", "upload_tag", "upload_id", "upload_source", "batch_size",
    "concurrent_requests", "request_timeout", "shutdown_grace_seconds", "max_retries",
    "max_retry_seconds", "http_service_class",
    "default_event_name", "default_action_source", "streams", "hash_external_id",
    "dead_letter_path", "on_invalid_event", "dry_run", "dry_run_path", "progress_interval",
    "summary_path",
]  # fmt: skip


def _write_config(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def _run_target(
    config_path: Path, stdin: str, before_start: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command's run; `before_start` runs in its process before the target does."""
    return subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config_path.parent,
        preexec_fn=before_start,
    )


def _start_target(tmp_path: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    """The target reading from a pipe the test writes to, as a running tap's would be."""
    return subprocess.Popen(
        [str(TARGET), "--config", str(_write_config(tmp_path, config))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path,
    )  # fmt: skip


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def test_example_orders_piped_into_the_target_with_the_sample_config_are_all_delivered(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "make_orders.py"), "--output",
         str(examples / "orders.singer")],
        check=True, capture_output=True,
    )  # fmt: skip
    config = json.loads((REPO / "config.sample.json").read_text())
    config["graph_url"] = sandbox.url
    config_path = _write_config(tmp_path, config)
    completed = subprocess.run(
        f"cat {examples}/*.singer | {TARGET} --config {config_path}",
        shell=True, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    states = [json.loads(line) for line in completed.stdout.splitlines()]
    assert states[-1]["bookmarks"][STREAM]["replication_key"] == "created_at"
    accepted = sandbox.accepted_events()
    assert len(accepted) == 50
    assert {item["params"]["test_event_code"] for item in accepted} == {"TEST12345"}


def test_about_lists_every_setting_with_a_description() -> None:
    completed = subprocess.run(
        [str(TARGET), "--about", "--format=markdown"], capture_output=True, text=True, check=True
    )
    rows = {
        line.split("|")[1].strip(): line.split("|")[4].strip()
        for line in completed.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| Setting")
    }
    assert all(rows.get(name) for name in SETTINGS), [n for n in SETTINGS if not rows.get(n)]


def test_python_dash_m_target_meta_capi_runs_the_command(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config_path = _write_config(tmp_path, orders_config(sandbox.url, tmp_path))
    completed = subprocess.run(
        [sys.executable, "-m", "target_meta_capi", "--config", str(config_path)],
        input="\n".join(order_stream(5)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert [json.loads(line) for line in completed.stdout.splitlines()] == [
        {"bookmarks": {STREAM: 5}}
    ]
    assert _accepted_ids(sandbox) == set(range(1, 6))


def test_missing_access_token_is_a_configuration_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path)
    del config["access_token"]
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(1)))
    assert completed.returncode == 1
    assert "access_token is required (unless dry_run is true)" in completed.stderr
    assert completed.stdout == ""


@pytest.mark.parametrize("setting", ["dead_letter_path", "summary_path"])
def test_an_output_path_that_cannot_be_written_fails_before_any_input_is_read(
    sandbox: SandboxServer, tmp_path: Path, setting: str
) -> None:
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("")
    config = orders_config(sandbox.url, tmp_path, **{setting: str(not_a_directory / "out.json")})
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(3)))
    assert completed.returncode == 1
    assert f"{setting} " in completed.stderr
    assert f"{not_a_directory} is not a directory" in completed.stderr
    assert sandbox.accepted_events() == []


def test_a_summary_path_leading_to_the_file_stderr_goes_to_appends_the_summary_to_that_log(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # as /dev/stderr does (a symlink to /proc/self/fd/2) when stderr is redirected to a file
    log = tmp_path / "target.log"
    log.write_text("")
    log_inode = log.stat().st_ino
    link = tmp_path / "stderr"
    link.symlink_to(log)
    config_path = _write_config(
        tmp_path, orders_config(sandbox.url, tmp_path, summary_path=str(link))
    )
    with log.open("a") as stderr:
        completed = subprocess.run(
            [str(TARGET), "--config", str(config_path)],
            input="\n".join(order_stream(3)), stdout=subprocess.PIPE, stderr=stderr, text=True,
            timeout=60, cwd=tmp_path,
        )  # fmt: skip

    assert completed.returncode == 0
    assert link.is_symlink() and log.stat().st_ino == log_inode
    text = log.read_text()
    summary_start = text.rindex("\n{\n") + 1  # after the log lines
    assert "Run summary (" in text[:summary_start]
    assert json.loads(text[summary_start:])["streams"][STREAM]["records_read"] == 3


def test_graph_url_must_be_http(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = orders_config("ftp://graph.example.com", tmp_path)
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(1)))
    assert completed.returncode == 1
    assert "graph_url must be an http:// or https:// URL" in completed.stderr


def test_expired_token_stops_with_one_clear_error_and_no_state(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, access_token="EAAexpiredtoken1234567890abc")
    completed = _run_target(
        _write_config(tmp_path, config), "\n".join(order_stream(20, state_every=5))
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    [error] = _error_lines(completed.stderr)
    assert "code=190" in error
    assert "Check access_token" in error
    assert "EAAexpiredtoken1234567890abc" not in completed.stderr


def test_throttling_meta_will_not_lift_within_max_retry_seconds_stops_at_once_with_the_wait(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(throttle_rate=1.0, regain_access_minutes=30)
    config = orders_config(sandbox.url, tmp_path)
    started = time.monotonic()
    completed = _run_target(
        _write_config(tmp_path, config), "\n".join(order_stream(20, state_every=5))
    )
    assert time.monotonic() - started < 20  # not the 300 s max_retry_seconds
    assert completed.returncode == 1
    assert completed.stdout == ""
    [error] = _error_lines(completed.stderr)
    assert "code=17" in error
    assert "Meta asked to wait 30 min before sending again, beyond max_retry_seconds" in error
    # a request the run did not wait for is counted as it arrives, its fault once answered
    stats = settled_stats(sandbox)
    # each request sent before the run stopped was asked once, not retried into the wall; one
    # still being sent when the run stopped arrives cut short, unanswered
    assert stats["faults"]["throttle"] >= 1
    assert stats["faults"]["throttle"] + stats["incomplete_requests"] == stats["requests"] <= 4


def test_throttling_outlasting_max_retry_seconds_says_that_limit_ended_the_retries(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(throttle_rate=1.0)
    config = orders_config(sandbox.url, tmp_path, max_retries=100, max_retry_seconds=1)
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    # raising max_retries, which a bare "retries are exhausted" suggests, would change nothing
    assert "max_retry_seconds ran out" in error
    assert "max_retries ran out" not in error


def test_transient_errors_outlasting_max_retries_say_that_limit_ended_the_retries(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(transient_error_rate=1.0)
    config = orders_config(sandbox.url, tmp_path, max_retries=1)
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    assert "Gave up after 2 attempts: max_retries ran out" in error


def _error_against(
    handler: Callable[[RecordedRequest], Reply], tmp_path: Path, **settings: Any
) -> str:
    """The one error line a run against a Graph stand-in answering with `handler` ends with."""
    with FakeGraphServer(handler) as server:
        config = orders_config(server.url, tmp_path, **settings)
        completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    return error


def test_a_graph_url_answering_with_a_redirect_stops_saying_to_set_graph_url_to_its_target(
    tmp_path: Path,
) -> None:
    moved = Reply(301, b"", headers={"Location": "https://graph.example.com/v24.0/1/events"})
    error = _error_against(lambda request: moved, tmp_path)
    assert "a redirect to 'https://graph.example.com/v24.0/1/events'" in error
    assert "Check graph_url: set it to the base of the URL the redirect leads to" in error


def test_a_redirect_without_a_location_says_so_and_where_graph_url_should_point(
    tmp_path: Path,
) -> None:
    # "set it to the base of the URL the redirect leads to" would name a URL nobody gave
    error = _error_against(lambda request: Reply(302, b""), tmp_path)
    assert "a redirect without a Location header (no URL it leads to)" in error
    assert "Check graph_url: what answers there redirects without saying where to" in error
    assert "set it to https://graph.facebook.com, or to the base URL of a proxy" in error
    assert "the URL the redirect leads to" not in error


def test_a_proxy_refusing_even_one_event_says_no_batch_size_helps_and_to_rerun_after_raising_it(
    tmp_path: Path,
) -> None:
    error = _error_against(lambda request: html_page(413, "413 Request Entity Too Large"), tmp_path)
    assert "raise the proxy's body-size limit" in error
    assert error.endswith(
        "A smaller batch_size cannot help either; once the limit of the proxy graph_url leads "
        "to is raised, rerun from the last state."
    )


def test_the_summary_file_of_a_failed_run_carries_the_failure_the_log_ends_with(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(sandbox.url, tmp_path, summary_path=str(summary_path))
    not_an_object = json.dumps({"type": "RECORD", "stream": STREAM, "record": []})
    lines = [*order_stream(2), not_an_object]
    completed = _run_target(_write_config(tmp_path, config), "\n".join(lines))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    summary = json.loads(summary_path.read_text())
    assert summary["failure"] == (
        f"Input line {len(lines)}, stream {STREAM!r}: 'record' is an array, not a JSON object"
    )
    assert error.endswith(f"target-meta-capi failed: {summary['failure']}")


def test_a_config_refused_at_start_replaces_the_summary_file_with_one_carrying_the_failure(
    tmp_path: Path,
) -> None:
    # a scheduler reading the file would otherwise take the last run's success for this run's
    summary_path = tmp_path / "summary.json"
    summary_path.write_text(json.dumps({"failure": None}))
    config = orders_config(
        "http://127.0.0.1:9", tmp_path, batch_size=10.5, summary_path=str(summary_path)
    )
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(1)))
    assert completed.returncode == 1
    summary = json.loads(summary_path.read_text())
    assert summary["failure"] == (
        "Config validation failed: 10.5 is not of type 'integer', 'null' in config['batch_size']"
    )
    assert summary["totals"]["records_read"] == 0


@pytest.mark.parametrize(
    ("settings", "dry_run", "test_events"),
    [
        ({"dry_run": True}, True, False),
        ({"test_event_code": "TEST42"}, False, True),
        ({}, False, False),
    ],
    ids=["dry-run", "test-events", "neither"],
)
def test_the_summary_of_a_config_refused_at_start_says_what_kind_of_run_it_asked_for(
    tmp_path: Path, settings: dict[str, Any], dry_run: bool, test_events: bool
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config("http://127.0.0.1:9", tmp_path, summary_path=str(summary_path))
    del config["test_event_code"]
    config.update(batch_size=0, **settings)  # batch_size refused
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(1)))
    assert completed.returncode == 1
    summary = json.loads(summary_path.read_text())
    assert summary["failure"].startswith("Config validation failed: ")
    assert (summary["dry_run"], summary["test_events"]) == (dry_run, test_events)


def test_a_dry_run_to_stderr_started_without_one_stops_before_reading_saying_to_set_its_path(
    tmp_path: Path,
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(
        "http://127.0.0.1:9", tmp_path, dry_run=True, summary_path=str(summary_path)
    )
    completed = _run_target(
        _write_config(tmp_path, config),
        "\n".join(order_stream(3)),
        before_start=lambda: os.close(2),  # as `2>&-` starts it
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    summary = json.loads(summary_path.read_text())
    # before: "Sending failed for good: … 'NoneType' object has no attribute 'write'"
    assert summary["failure"] == (
        "Configuration error: dry_run without dry_run_path writes the request payloads to "
        "stderr, and this process has none (started with it closed, `2>&-`): set dry_run_path"
    )
    assert summary["totals"]["records_read"] == 0


def test_the_summary_file_of_a_run_that_succeeded_has_no_failure(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    config = orders_config(sandbox.url, tmp_path, summary_path=str(summary_path))
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))
    assert completed.returncode == 0
    assert json.loads(summary_path.read_text())["failure"] is None


def test_a_dry_run_file_that_cannot_be_written_stops_at_once_naming_it_not_the_network(
    tmp_path: Path,
) -> None:
    full = tmp_path / "dry-run.jsonl"
    full.symlink_to("/dev/full")
    config = orders_config(
        "http://127.0.0.1:9", tmp_path, dry_run=True, dry_run_path=str(full), max_retries=3
    )
    del config["access_token"]  # a dry run needs none
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))
    assert completed.returncode == 1
    assert completed.stdout == ""
    [error] = _error_lines(completed.stderr)
    assert f"): Cannot write dry_run_path {full}: No space left on device" in error
    assert "free space or fix dry_run_path" in error
    assert "network" not in error
    assert "Closing after the failure failed too" not in completed.stderr
    assert ", 0 retries (none)" in completed.stderr  # a full disk is not a passing outage


def test_requests_timing_out_until_retries_run_out_say_so_and_name_request_timeout(
    tmp_path: Path,
) -> None:
    def slow(request: RecordedRequest) -> Reply:
        time.sleep(1)
        return accept(request)

    error = _error_against(slow, tmp_path, request_timeout=0.1, max_retries=1)
    assert "Gave up after 2 attempts: max_retries ran out." in error
    assert "or raise request_timeout if Meta answers this slowly" in error


def test_a_graph_url_answering_200_with_a_web_page_says_to_check_graph_url(
    tmp_path: Path,
) -> None:
    page = html_page(200, "Welcome to nginx!")
    error = _error_against(lambda request: page, tmp_path, max_retries=0)
    assert "page title 'Welcome to nginx!'" in error
    assert "Check graph_url: this does not look like the Graph API" in error
    assert "when the endpoint recovers" not in error


def test_a_dead_letter_file_that_cannot_be_written_stops_the_run_with_one_clear_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, dead_letter_path="/dev/full")
    too_old = order(2, age_seconds=10 * 24 * 3600)  # dead-lettered locally: older than 7 days
    lines = order_stream(3, records=[order(1), too_old, order(3)])
    completed = _run_target(_write_config(tmp_path, config), "\n".join(lines))
    assert completed.returncode == 1
    assert completed.stdout == ""  # no state past the letter it could not keep
    [error] = _error_lines(completed.stderr)
    assert "Cannot write the dead-letter file /dev/full: No space left on device" in error
    assert "Traceback" not in completed.stderr


def _address_space_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmSize for process {pid}")


def test_running_out_of_memory_says_so_and_which_limits_to_change(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    target = _start_target(tmp_path, orders_config(sandbox.url, tmp_path))
    assert target.stdin is not None and target.stderr is not None
    assert "target-meta-capi v" in target.stderr.readline()  # set up, reading its input
    # the memory it may use: what it uses now and 20 MB more, where a line of 50 MB fits not
    limit = _address_space_bytes(target.pid) + 20 * 2**20
    subprocess.run(["prlimit", f"--pid={target.pid}", f"--as={limit}"], check=True)
    lines = [record_line(order(1)), record_line(order(2, note="x" * 50 * 2**20))]
    stdout, stderr = target.communicate(
        schema_line() + "\n" + "".join(line + "\n" for line in lines), timeout=60
    )

    assert target.returncode == 1
    [error] = _error_lines(stderr)
    assert error.endswith(
        "target-meta-capi failed: Out of memory (reading input line 3): raise "
        "the memory the target may use (`ulimit -v`, a container's limit), or lower "
        "batch_size, concurrent_requests or record_workers; rerun from the last state."
    ), error
    assert stdout == ""


def _lowest_free_descriptor(pid: int) -> int:
    open_now = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    return min(set(range(len(open_now) + 1)) - open_now)


def test_running_out_of_open_files_while_mapping_a_record_says_which_limit_to_raise(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    fields = {**ORDERS_MAPPING["fields"], "user_data.ph": "phone"}
    streams = {STREAM: {**ORDERS_MAPPING, "fields": fields}}
    config = orders_config(sandbox.url, tmp_path, record_workers=0, batch_size=1, streams=streams)
    target = _start_target(tmp_path, config)
    assert target.stdin is not None and target.stdout is not None
    schema = {**ORDER_SCHEMA, "properties": {**ORDER_SCHEMA["properties"], "phone": {}}}
    first = [schema_line(schema=schema), record_line(order(1, phone="+1 616 954 7888"))]
    target.stdin.write("".join(line + "\n" for line in [*first, state_line(1)]))
    target.stdin.flush()
    assert json.loads(target.stdout.readline()) == {"bookmarks": {STREAM: 1}}  # sent
    # set up and sending, it gets not one file more: the phone rules' module, first imported
    # for a number with a 0 after its country code, cannot be read
    limit = _lowest_free_descriptor(target.pid)
    subprocess.run(["prlimit", f"--pid={target.pid}", f"--nofile={limit}"], check=True)
    stdout, stderr = target.communicate(
        record_line(order(2, phone="+49 030 1234567")) + "\n", timeout=60
    )

    assert target.returncode == 1
    [error] = _error_lines(stderr)
    assert error.endswith(
        "target-meta-capi failed: OSError (input line 4, stream 'public-orders'): [Errno 24] "
        "Too many open files; raise the limit on open files (`ulimit -n`, a container's nofile "
        "limit) or lower concurrent_requests; rerun from the last state."
    ), error
    assert stdout == ""


def test_a_crash_below_python_shows_where_each_thread_was(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    target = _start_target(tmp_path, orders_config(sandbox.url, tmp_path))
    assert target.stderr is not None
    assert "target-meta-capi v" in target.stderr.readline()  # set up, reading its input
    # what a C extension's bug does (msgspec's encoder when an allocation fails, for one)
    target.send_signal(signal.SIGSEGV)
    stdout, stderr = target.communicate(timeout=60)

    assert target.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in stderr
    assert "(most recent call first)" in stderr
    assert "target_meta_capi" in stderr  # the stack of the thread reading the input
    assert stdout == ""


def test_a_failure_while_closing_a_failed_run_is_a_warning_and_the_first_failure_is_reported(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, summary_path="/dev/full")
    result = run_in_process(config, [*order_stream(1)[:2], "not json"])
    assert result.exit_code == 1
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "WARNING",
        "Closing after the failure failed too: Cannot write the run summary file /dev/full: "
        "No space left on device",
    ) in messages
    assert messages[-1][0] == "ERROR"
    assert messages[-1][1].startswith("target-meta-capi failed: Input line 3 is not valid JSON")


def test_a_summary_file_that_cannot_be_written_fails_the_run_naming_it(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = orders_config(sandbox.url, tmp_path, summary_path="/dev/full")
    result = run_in_process(config, order_stream(2))
    assert result.exit_code == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "target-meta-capi failed: SummaryWriteError (at the end of input, after line 4): Cannot "
        "write the run summary file /dev/full: No space left on device"
    ]


def test_a_symlink_where_the_summary_is_written_first_is_not_followed(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # in a shared directory (/tmp) anyone may put a link at a name known in advance
    other_file = tmp_path / "someone_elses.txt"
    other_file.write_text("not the target's\n")
    summary_path = tmp_path / "reports" / "summary.json"
    summary_path.parent.mkdir()
    (summary_path.parent / "summary.json.partial").symlink_to(other_file)
    config = orders_config(sandbox.url, tmp_path, summary_path=str(summary_path))

    result = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(2)))

    assert result.returncode == 0, result.stderr
    assert other_file.read_text() == "not the target's\n"
    assert not summary_path.is_symlink()
    assert json.loads(summary_path.read_text())["totals"]["records_read"] == 2


def test_a_summary_that_cannot_be_written_whole_leaves_no_partial_file(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    summary_path = tmp_path / "reports" / "summary.json"
    config = orders_config(sandbox.url, tmp_path, summary_path=str(summary_path))

    def files_of_at_most_100_bytes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a longer write fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    result = _run_target(
        _write_config(tmp_path, config),
        "\n".join(order_stream(2)),
        before_start=files_of_at_most_100_bytes,
    )

    assert result.returncode == 1
    assert "Cannot write the run summary file" in result.stderr
    assert list(summary_path.parent.iterdir()) == []


def test_a_closed_stdout_stops_the_run_with_one_clear_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    process = _start_target(tmp_path, orders_config(sandbox.url, tmp_path))
    assert process.stdout is not None
    process.stdout.close()  # whoever reads the state is gone
    _, stderr = process.communicate("\n".join(order_stream(20, state_every=5)), timeout=60)
    assert process.returncode == 1
    [error] = _error_lines(stderr)
    assert "Cannot write state to stdout (Broken pipe)" in error
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr


def test_sigterm_stops_reading_and_writes_only_acknowledged_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=50)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1)
    process = _start_target(tmp_path, config)
    assert process.stdin is not None and process.stdout is not None
    lines = order_stream(20, state_every=5)
    # everything but the last state; the pipe stays open as if the tap were still running
    process.stdin.write("\n".join(lines[:-1]) + "\n")
    process.stdin.flush()
    first_state = json.loads(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=30)
    states = [first_state] + [json.loads(line) for line in rest.splitlines()]
    accepted = {int(item["event"]["event_id"]) for item in sandbox.accepted_events()}
    assert process.returncode == 128 + signal.SIGTERM
    assert "Received SIGTERM: stopped reading" in stderr
    for state in states:
        assert set(range(1, state["bookmarks"][STREAM] + 1)) <= accepted


def _target_with_one_request_in_flight(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> tuple[SandboxServer, subprocess.Popen[str]]:
    """A target given far more than one request of input, its window of one request full and
    that request waiting for a slow answer: reading stops meanwhile."""
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1)
    process = _start_target(tmp_path, config)
    assert process.stdin is not None
    # a STATE every 4 records: the one before the 5th record is read before that record
    # fills the first request, so that request being in flight means its state was read
    process.stdin.write("\n".join(order_stream(60, state_every=4)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] == 1)
    return sandbox, process


def _accepted_ids(sandbox: SandboxServer) -> set[int]:
    return {int(item["event"]["event_id"]) for item in sandbox.accepted_events()}


def _assert_states_cover_only_accepted(state_lines: str, sandbox: SandboxServer) -> None:
    accepted = _accepted_ids(sandbox)
    for line in state_lines.splitlines():
        assert set(range(1, json.loads(line)["bookmarks"][STREAM] + 1)) <= accepted


def test_sigterm_while_the_window_is_full_waits_only_for_the_requests_in_flight(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox, process = _target_with_one_request_in_flight(sandbox_factory, tmp_path)
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Received SIGTERM: stopped reading; waiting up to 30 s for 1 request" in stderr
    assert "abandoned" not in stderr
    assert 0 < len(_accepted_ids(sandbox)) < 60
    _assert_states_cover_only_accepted(rest, sandbox)


def _slow_run_summarised_at(
    summary_path: str, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> tuple[SandboxServer, subprocess.Popen[str]]:
    """The target started against a sandbox answering after 1.5 s, 5 events a request, its
    summary written at `summary_path`."""
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, summary_path=summary_path)
    return sandbox, _start_target(tmp_path, config)


def test_the_summary_file_of_a_run_stopped_by_sigterm_says_it_stopped(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    sandbox, process = _slow_run_summarised_at(str(summary_path), sandbox_factory, tmp_path)
    assert process.stdin is not None
    process.stdin.write("\n".join(order_stream(60, state_every=5)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] > 0)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    summary = json.loads(summary_path.read_text())
    assert summary["failure"] == "Received SIGTERM: stopped before the end of the input"


def test_a_run_stopped_by_sigterm_ends_its_log_with_the_stop_as_an_error(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    _, process = _target_with_one_request_in_flight(sandbox_factory, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    last_line = stderr.splitlines()[-1]
    assert "| ERROR" in last_line
    assert last_line.endswith("Received SIGTERM: stopped before the end of the input")


def test_sigterm_with_a_summary_file_that_cannot_be_written_exits_as_stopped_without_traceback(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox, process = _slow_run_summarised_at("/dev/full", sandbox_factory, tmp_path)
    assert process.stdin is not None
    process.stdin.write("\n".join(order_stream(60, state_every=5)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] > 0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    summary_error, stop = _error_lines(stderr)
    assert "Cannot write the run summary file /dev/full: No space left on device" in summary_error
    assert stop.endswith("Received SIGTERM: stopped before the end of the input")


def _stderr_of_a_grace_period_its_state_cannot_end(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> str:
    """SIGTERM with one request in flight, and stdout closed: whoever read the state stopped,
    so the answered request's state cannot be written."""
    _, process = _target_with_one_request_in_flight(sandbox_factory, tmp_path)
    assert process.stdout is not None
    process.stdout.close()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    return stderr


def test_a_failure_in_the_grace_period_after_sigterm_is_reported(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    stderr = _stderr_of_a_grace_period_its_state_cannot_end(sandbox_factory, tmp_path)
    assert "Cannot write state to stdout (Broken pipe)" in _error_lines(stderr)[-1]


def test_a_failure_in_the_grace_period_is_not_reported_as_requests_abandoned(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # the one request in flight was answered: its state, not the request, could not be written
    stderr = _stderr_of_a_grace_period_its_state_cannot_end(sandbox_factory, tmp_path)
    assert "abandoned" not in stderr


def test_the_summary_of_a_run_stopped_after_its_input_ended_does_not_say_before_the_end(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    sandbox, process = _slow_run_summarised_at(str(summary_path), sandbox_factory, tmp_path)
    # 9 records and no STATE: the second request (records 6 to 9, not full) goes only when
    # the end of the input drains it, so its arrival means the end was read
    records = [schema_line(), *(record_line(order(number)) for number in range(1, 10))]
    process.stdin.write("\n".join(records) + "\n")  # type: ignore[union-attr]
    process.stdin.close()  # type: ignore[union-attr]
    wait_until(lambda: sandbox.stats()["requests"] == 2)  # answered 1.5 s after it arrived
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 128 + signal.SIGTERM  # its few lines fit in the pipes
    summary = json.loads(summary_path.read_text())
    assert summary["failure"] == (
        "Received SIGTERM after the end of the input, while waiting for Meta's answers"
    )
    process.stdout.close()  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]


def test_sigterm_right_after_sigint_is_the_same_stop_and_keeps_the_grace_period(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # Ctrl-C under Meltano: SIGINT reaches the whole group, then Meltano sends SIGTERM
    sandbox, process = _target_with_one_request_in_flight(sandbox_factory, tmp_path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGINT
    assert "Received SIGTERM too, right after SIGINT: the same stop" in stderr
    assert "exiting now" not in stderr
    assert "abandoned" not in stderr
    assert rest  # the answered request's state
    _assert_states_cover_only_accepted(rest, sandbox)


def test_a_second_sigterm_during_the_grace_period_exits_at_once_without_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, concurrent_requests=1)
    process = _start_target(tmp_path, config)
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write("\n".join(order_stream(10, state_every=5)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] == 1)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    # the first is handled once the target says it waits: a second sent sooner might be
    # merged with it
    waiting = "waiting up to 30 s for 1 request in flight"
    while (line := process.stderr.readline()) and waiting not in line:
        pass
    assert waiting in line
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Received SIGTERM again: exiting now" in stderr
    assert stdout == ""  # the only request sent was never answered: no state covers it
    assert time.monotonic() - signalled < 6  # gone well before the sandbox would answer


def test_a_run_a_second_signal_ends_leaves_its_own_failed_summary_not_the_previous_runs(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    summary = tmp_path / "summary.json"
    summary.write_text('{"failure": null}')  # a previous run's success
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, concurrent_requests=1, summary_path=str(summary)
    )
    process = _start_target(tmp_path, config)
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write("\n".join(order_stream(10, state_every=5)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] == 1)
    process.send_signal(signal.SIGTERM)
    waiting = "waiting up to 30 s for 1 request in flight"
    while (line := process.stderr.readline()) and waiting not in line:
        pass
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    assert json.loads(summary.read_text())["failure"] == "Received SIGTERM again: exited at once"


def test_requests_still_unanswered_after_the_grace_period_are_abandoned_without_their_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, concurrent_requests=1, shutdown_grace_seconds=0.5
    )
    process = _start_target(tmp_path, config)
    assert process.stdin is not None
    process.stdin.write("\n".join(order_stream(10, state_every=5)) + "\n")
    process.stdin.flush()
    wait_until(lambda: sandbox.stats()["in_flight"] == 1)
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    assert "waiting up to 0.5 s for 1 request in flight" in stderr
    assert "Requests still in flight were abandoned; their state is not written" in stderr
    assert stdout == ""  # the only request was never answered: no state covers it
    assert time.monotonic() - signalled < 6  # gone well before the sandbox would answer


def _bad_input_after(records: int, bad_line: str) -> str:
    """`records` orders, a state after every 5 (the last after the last record), then one
    line of bad input: a tap's output cut off by a bug in the tap, say."""
    return "\n".join([*order_stream(records, state_every=5), bad_line]) + "\n"


def test_bad_input_waits_for_the_requests_already_sent_and_writes_the_state_they_settle(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=5)
    completed = _run_target(_write_config(tmp_path, config), _bad_input_after(10, "{not json"))
    assert completed.returncode == 1
    assert "waiting up to 30 s for 2 requests in flight" in completed.stderr
    [error] = _error_lines(completed.stderr)
    assert "Input line 14 is not valid JSON" in error
    states = [json.loads(line) for line in completed.stdout.splitlines()]
    assert states[-1] == {"bookmarks": {STREAM: 10}}
    assert _accepted_ids(sandbox) == set(range(1, 11))


_WITHOUT_CREATED_AT = {
    **ORDER_SCHEMA,
    "properties": {k: v for k, v in ORDER_SCHEMA["properties"].items() if k != "created_at"},
}
# the SCHEMA requiring no column: the record passes it, and lacks its key property
_KEY_MISSING = "\n".join([
    schema_line(schema={k: v for k, v in ORDER_SCHEMA.items() if k != "required"}),
    record_line({k: v for k, v in order(11).items() if k != "order_id"}),
])  # fmt: skip


@pytest.mark.parametrize(
    ("bad_line", "failure"),
    [
        (schema_line(schema=_WITHOUT_CREATED_AT), "no column of its SCHEMA"),
        (_KEY_MISSING, "Record has no 'order_id'"),
    ],
    ids=["schema-without-event-time", "record-without-its-key"],
)
def test_input_the_stream_cannot_be_sent_with_writes_the_state_the_requests_before_it_settle(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, bad_line: str, failure: str
) -> None:
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=5)
    completed = _run_target(_write_config(tmp_path, config), _bad_input_after(10, bad_line))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    assert failure in error
    states = [json.loads(line) for line in completed.stdout.splitlines()]
    assert states[-1] == {"bookmarks": {STREAM: 10}}
    assert _accepted_ids(sandbox) == set(range(1, 11))


def test_a_record_breaking_its_schema_writes_the_state_of_the_records_before_it(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # past the records the main process takes itself, which fill whole requests, the rest
    # go to a record worker, and the bad record too
    records = RECORDS_BEFORE_WORKERS + 100
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=50, record_workers=1)
    bad_record = record_line(order(records + 1, total="19.99 USD"))
    completed = _run_target(_write_config(tmp_path, config), _bad_input_after(records, bad_record))
    assert completed.returncode == 1
    [error] = _error_lines(completed.stderr)
    assert "does not match its SCHEMA" in error
    assert "19.99 USD" not in completed.stderr
    assert completed.stdout
    bookmarks = [json.loads(line)["bookmarks"][STREAM] for line in completed.stdout.splitlines()]
    assert RECORDS_BEFORE_WORKERS <= bookmarks[-1] <= records
    assert set(range(1, bookmarks[-1] + 1)) <= _accepted_ids(sandbox)


def test_bad_input_abandons_requests_unanswered_after_the_grace_period_without_their_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, shutdown_grace_seconds=0.5)
    started = time.monotonic()
    completed = _run_target(_write_config(tmp_path, config), _bad_input_after(5, "{not json"))
    assert completed.returncode == 1
    assert "waiting up to 0.5 s for 1 request in flight" in completed.stderr
    assert "Requests still in flight were abandoned" in completed.stderr
    assert completed.stdout == ""
    assert time.monotonic() - started < 6  # gone well before the sandbox would answer


def test_a_stream_map_expression_failing_on_a_record_waits_for_the_requests_already_sent(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # Python's own error under the expression, not the SDK's MapExpressionError
    stream_maps = {STREAM: {"tier": "int('gold') if order_id == 6 else 0"}}
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, stream_maps=stream_maps)
    completed = _run_target(
        _write_config(tmp_path, config), _bad_input_after(5, record_line(order(6)))
    )
    assert completed.returncode == 1
    assert "waiting up to 30 s for 1 request in flight" in completed.stderr
    [error] = _error_lines(completed.stderr)
    assert "stream map property 'tier'" in error
    assert [json.loads(line) for line in completed.stdout.splitlines()] == [
        {"bookmarks": {STREAM: 5}}
    ]


def test_a_failure_while_bad_input_waits_for_the_requests_already_sent_is_reported_after_it(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=1500)
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, access_token="EAAexpiredtoken1234567890abc"
    )
    completed = _run_target(_write_config(tmp_path, config), _bad_input_after(5, "{not json"))
    assert completed.returncode == 1
    assert completed.stdout == ""
    [error] = _error_lines(completed.stderr)
    bad_input, also = error.split("; also: ")
    assert "Input line 8 is not valid JSON" in bad_input
    assert "code=190" in also
    assert "EAAexpiredtoken1234567890abc" not in completed.stderr


def test_sigterm_while_bad_input_waits_for_requests_in_flight_ends_the_wait_without_state(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    process = _start_target(tmp_path, orders_config(sandbox.url, tmp_path, batch_size=5))
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(_bad_input_after(5, "{not json"))
    process.stdin.flush()
    waiting = "waiting up to 30 s for 1 request in flight"
    while (line := process.stderr.readline()) and waiting not in line:
        pass
    assert waiting in line
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 1  # the bad input is what failed the run
    [error] = _error_lines(stderr)
    assert "Input line 8 is not valid JSON" in error
    assert stdout == ""  # the only request sent was never answered: no state covers it
    assert time.monotonic() - signalled < 6  # gone well before the sandbox would answer


def _run_in_process_signalled(config: dict[str, Any], target_class: type[FastRetryTarget]) -> Any:
    """10 orders, a state after every 5, through a target class that signals itself; this
    process's own signal handlers are put back afterwards."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run_in_process(config, order_stream(10, state_every=5), target_class)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


class _SignalBeforeAFullWindow(FastRetryTarget):
    """A real SIGTERM to this process the moment a request must wait for room in the
    window: its handler runs in Python code just before that wait, not inside it."""

    def _build_delivery(self):  # type: ignore[no-untyped-def]
        delivery = super()._build_delivery()
        processor = delivery.processor
        submit = processor.submit_isolating

        def signal_then_submit(request):  # type: ignore[no-untyped-def]
            if processor.in_flight == processor.window_size:
                os.kill(os.getpid(), signal.SIGTERM)
            return submit(request)

        processor.submit_isolating = signal_then_submit  # type: ignore[method-assign]
        return delivery


def test_a_signal_just_before_the_window_wait_stops_without_waiting_for_metas_answer(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=8000)
    config = orders_config(
        sandbox.url, tmp_path, batch_size=5, concurrent_requests=1, shutdown_grace_seconds=0.5
    )
    result = _run_in_process_signalled(config, _SignalBeforeAFullWindow)
    assert result.exit_code == 128 + signal.SIGTERM
    assert result.states == []  # the first request is still unanswered
    # the stop did not wait for its answer (it may reach a loaded sandbox after the return)
    wait_until(lambda: sandbox.stats()["in_flight"] == 1)
    assert sandbox.stats()["requests"] == 1  # the second request never started...
    totals = result.target.stats.snapshot()["totals"]
    assert totals["events_sent"] == 5  # ...and is not counted as sent


class _SignalWhileASendingThreadStarts(FastRetryTarget):
    """A real SIGTERM to the main thread while it waits on some other condition than Meta's
    answers, as when the window starts a sending thread (Thread.start waits for it)."""

    def _build_delivery(self):  # type: ignore[no-untyped-def]
        delivery = super()._build_delivery()
        executor = delivery.processor._executor
        submit = executor.submit

        def signal_while_waiting(*args, **kwargs):  # type: ignore[no-untyped-def]
            signalled = threading.Event()

            def send_signal() -> None:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                time.sleep(0.2)  # the handler runs while the main thread still waits
                signalled.set()

            threading.Thread(target=send_signal).start()
            signalled.wait()
            return submit(*args, **kwargs)

        executor.submit = signal_while_waiting  # type: ignore[method-assign]
        return delivery


def test_a_signal_during_another_wait_lets_the_request_being_started_go_and_its_answer_settle(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(latency_ms=300)
    config = orders_config(sandbox.url, tmp_path, batch_size=5, shutdown_grace_seconds=10)
    result = _run_in_process_signalled(config, _SignalWhileASendingThreadStarts)
    assert result.exit_code == 128 + signal.SIGTERM
    # the request was sent and its answer settled within the grace period...
    assert len(sandbox.accepted_events()) == 5
    assert result.target.stats.snapshot()["totals"]["events_acknowledged"] == 5
    assert result.states == []  # ...while the STATE after it was never read


def test_a_signal_while_the_target_is_still_being_set_up_ends_it_without_a_traceback(
    tmp_path: Path,
) -> None:
    config_path = _write_config(tmp_path, orders_config("http://127.0.0.1:9", tmp_path))
    # a SIGTERM that arrives halfway through the target's construction (Meltano cancelling
    # a run as it starts): the SDK's __init__ is done, the target's own is not
    script = (
        "import os, signal, sys\n"
        "from target_meta_capi.target import TargetMetaCapi\n"
        "class SignalledWhileSettingUp(TargetMetaCapi):\n"
        "    def _build_delivery(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return super()._build_delivery()\n"
        "SignalledWhileSettingUp.cli(['--config', sys.argv[1]])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(config_path)],
        input="", capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == -signal.SIGTERM  # its default effect: nothing was sent yet
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


@pytest.mark.parametrize("dry_run_path", [None, "payloads.jsonl"])
def test_dry_run_keeps_stdout_for_state_only(
    sandbox: SandboxServer, tmp_path: Path, dry_run_path: str | None
) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=dry_run_path)
    del config["access_token"]
    completed = _run_target(_write_config(tmp_path, config), "\n".join(order_stream(3)))
    assert completed.returncode == 0
    assert [json.loads(line) for line in completed.stdout.splitlines()] == [
        {"bookmarks": {STREAM: 3}}
    ]
    assert sandbox.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("setting", "extra"),
    [("summary_path", {}), ("dead_letter_path", {}), ("dry_run_path", {"dry_run": True})],
)
def test_an_output_that_is_the_config_file_is_refused_and_the_file_kept(
    sandbox: SandboxServer, tmp_path: Path, setting: str, extra: dict[str, Any]
) -> None:
    # the summary replaced it, a dry run emptied it, dead letters left it no JSON object
    config = orders_config(sandbox.url, tmp_path, **{setting: "config.json"}, **extra)
    config_path = _write_config(tmp_path, config)
    written = config_path.read_text()
    completed = _run_target(config_path, "\n".join(order_stream(3)))
    assert completed.returncode == 2
    assert (
        f"Error: Invalid value for '--config': {setting} 'config.json' is a --config file, "
        "which the run would overwrite"
    ) in completed.stderr
    assert config_path.read_text() == written
    assert sandbox.stats()["requests"] == 0


def test_an_output_that_is_a_hard_link_of_the_config_file_is_refused_and_the_file_kept(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config_path = _write_config(tmp_path, orders_config(sandbox.url, tmp_path))
    os.link(config_path, tmp_path / "summary.json")
    config = {**orders_config(sandbox.url, tmp_path), "summary_path": "summary.json"}
    config_path.write_text(json.dumps(config))  # the link is the same file: it holds this too
    written = config_path.read_text()
    completed = _run_target(config_path, "\n".join(order_stream(3)))
    assert completed.returncode == 2
    assert "summary_path 'summary.json' is a --config file" in completed.stderr
    assert config_path.read_text() == written


@pytest.mark.parametrize(
    ("setting", "extra"),
    [("summary_path", {}), ("dead_letter_path", {}), ("dry_run_path", {"DRY_RUN": "true"})],
)
def test_an_output_the_environment_points_at_the_config_file_is_refused_and_the_file_kept(
    sandbox: SandboxServer, tmp_path: Path, setting: str, extra: dict[str, str]
) -> None:
    config = orders_config(sandbox.url, tmp_path)
    del config["dead_letter_path"]
    config_path = _write_config(tmp_path, config)
    written = config_path.read_text()
    environment = {f"TARGET_META_CAPI_{name}": value for name, value in extra.items()}
    environment[f"TARGET_META_CAPI_{setting.upper()}"] = "config.json"
    completed = subprocess.run(
        [str(TARGET), "--config", str(config_path), "--config", "ENV"],
        input="\n".join(order_stream(3)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **environment},
    )
    assert completed.returncode == 2
    assert (
        f"Error: Invalid value for '--config': {setting} 'config.json' is a --config file, "
        "which the run would overwrite"
    ) in completed.stderr
    assert config_path.read_text() == written
    assert sandbox.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        ('{"pixel_id": "1", "access_token": "EAAsecret" "x": 1}', "is not valid JSON (Expecting"),
        ("[1, 2]", "does not hold a JSON object"),
        ('[["pixel_id", "1"], ["dry_run", true]]', "does not hold a JSON object"),
        ('"abc"', "does not hold a JSON object"),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_a_config_file_that_cannot_be_used_is_one_error_naming_it(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    config_path = tmp_path / "config.json"
    if isinstance(content, bytes):
        config_path.write_bytes(content)
    elif content is not None:
        config_path.write_text(content)
    completed = _run_target(config_path, "")
    assert completed.returncode == 2
    assert f"Error: Invalid value for '--config': {config_path}: {problem}" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "EAAsecret" not in completed.stderr
    assert completed.stdout == ""


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("config.json", "is a directory, not a JSON file"),  # made a directory below
        ("/proc/self/mem", "cannot be read (Input/output error)"),  # an I/O error at byte 0
    ],
)
def test_a_config_path_that_cannot_be_read_as_a_file_is_one_error_naming_it(
    tmp_path: Path, where: str, problem: str
) -> None:
    (tmp_path / "config.json").mkdir()
    config_path = tmp_path / where  # where, when absolute
    completed = _run_target(config_path, "")
    assert completed.returncode == 2
    assert f"Error: Invalid value for '--config': {config_path}: {problem}" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_config_file_without_read_permission_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # permission bits stop no root process (the tests may run as root): the read fails as
    # it would for a user who may not read the file
    config_path = tmp_path / "config.json"
    config_path.write_text('{"access_token": "EAAsecret"}')

    def read_refused(path: str) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(config_files_module, "read_json_file", read_refused)
    result = CliRunner().invoke(target_module.TargetMetaCapi.cli, ["--config", str(config_path)])
    assert result.exit_code == 2
    assert (
        f"Error: Invalid value for '--config': {config_path}: cannot be read (permission denied)"
        in result.output
    )


@pytest.mark.parametrize("setting", ["summary_path", "dead_letter_path"])
def test_an_output_path_where_stdout_goes_is_refused_at_start(
    sandbox: SandboxServer, tmp_path: Path, setting: str
) -> None:
    states = tmp_path / "states.jsonl"
    states.write_text("")
    config = orders_config(sandbox.url, tmp_path, **{setting: str(states)})
    with states.open("w") as stdout:
        completed = subprocess.run(
            [str(TARGET), "--config", str(_write_config(tmp_path, config))],
            input="\n".join(order_stream(1)),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert completed.returncode == 1
    assert f"{setting} '{states}': is where stdout goes, which carries state lines only" in (
        completed.stderr
    )
    assert sandbox.stats()["requests"] == 0


def test_an_output_path_where_stdout_and_stderr_both_go_is_taken_as_a_log(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"  # 2>&1 > run.log: the logs are in it already
    config = orders_config(sandbox.url, tmp_path, summary_path=str(log))
    with log.open("w") as output:
        completed = subprocess.run(
            [str(TARGET), "--config", str(_write_config(tmp_path, config))],
            input="\n".join(order_stream(1)),
            stdout=output,
            stderr=output,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert completed.returncode == 0
    assert '"events_acknowledged": 1' in log.read_text()


def test_a_dry_run_into_dev_null_with_stdout_there_too_is_not_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=os.devnull)
    completed = subprocess.run(
        [str(TARGET), "--config", str(_write_config(tmp_path, config))],
        input="\n".join(order_stream(1)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr


def test_a_dry_run_into_the_file_stderr_goes_to_adds_to_the_log_without_emptying_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"  # 2> run.log, and dry_run_path run.log
    log.write_text("a line of an earlier run\n")
    config = orders_config(sandbox.url, tmp_path, dry_run=True, dry_run_path=str(log))
    with log.open("a") as stderr:
        completed = subprocess.run(
            [str(TARGET), "--config", str(_write_config(tmp_path, config))],
            input="\n".join(order_stream(1)),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert completed.returncode == 0
    written = log.read_text()
    assert written.startswith("a line of an earlier run\n")
    assert "1 sent, 1 acknowledged" in written  # the run summary, logged after the payload
    payloads = [json.loads(line) for line in written.splitlines() if line.startswith('{"url"')]
    assert [len(payload["payload"]["data"]) for payload in payloads] == [1]


def test_an_empty_config_file_name_is_one_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(TARGET), "--config", ""], input="", capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    assert "Error: Invalid value for '--config': '': is not a file name" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_an_empty_input_file_is_named_where_no_input_was_found(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    empty = tmp_path / "tap-output.jsonl"
    empty.write_text("")
    config_path = _write_config(tmp_path, orders_config(sandbox.url, tmp_path))

    completed = subprocess.run(
        [str(TARGET), "--config", str(config_path), "--input", str(empty)],
        input="", capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip

    assert completed.returncode == 1
    assert f"expected Singer messages (SCHEMA, RECORD, STATE) in {empty}" in completed.stderr


def _run_python(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_the_garbage_collector_paused_for_the_commands_imports_is_on_when_the_target_runs(
    tmp_path: Path,
) -> None:
    script = (
        "import gc\n"
        "from target_meta_capi import cli\n"
        "from target_meta_capi.target import TargetMetaCapi\n"
        "TargetMetaCapi.cli = lambda: print('collector on:', gc.isenabled())\n"
        "cli.main()\n"
    )
    completed = _run_python(script, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "collector on: True\n"


def test_a_ctrl_c_before_the_target_handles_signals_ends_the_command_without_a_traceback(
    tmp_path: Path,
) -> None:
    # the command's imports take most of a second: a Ctrl-C then, before the target's own
    # handlers, comes while its import runs, which this stands for
    script = (
        "import os, signal, time\n"
        "from target_meta_capi import cli\n"
        "def interrupted_while_importing():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "cli._run_target = interrupted_while_importing\n"
        "cli.main()\n"
    )
    completed = _run_python(script, tmp_path)
    assert completed.returncode == -signal.SIGINT
    assert completed.stderr == ""
