"""Threads refused by a limit on processes (`ulimit -u`, a container's pids limit): the client
sends each request once and the target loses nothing, only speed and progress lines. Sockets
refused by a limit on open files (`ulimit -n`): the run says which limit to raise.

A thread pool that cannot start a thread it wants refuses the work with RuntimeError, yet has
queued it for a thread it already has: run there too, a request would be sent twice. The
target's own processes run as a user of their own under `prlimit` (tests/_process_limit.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from target_meta_capi.sandbox import SandboxServer

from ._http_fixture import FakeGraphServer, RecordedRequest, Reply, accept
from ._process_limit import (
    TARGET_COMMAND,
    run_python_under_a_process_limit,
    run_target_under_a_process_limit,
)
from ._target_support import ACCESS_TOKEN, wait_until
from .test_record_workers import (
    Run,
    bookmark,
    dry_run_config,
    messy_orders,
    singer_lines,
    write_config,
)

#: the main thread and one more: a pool of four gets one thread and is refused the others
ONE_THREAD_MORE = 2

REQUESTS_SCRIPT = textwrap.dedent(
    """
    import sys
    from target_meta_capi.capi import BatchProcessor, EventRequest, EventRequestAsync

    def lead(number, cls=EventRequest):
        return cls("1234567890", events=[{"event_name": "Lead", "event_id": f"e{number}"}],
                   access_token="EAAGtesttoken", graph_url=sys.argv[1])
    """
)


def answered_slowly(request: RecordedRequest) -> Reply:
    time.sleep(0.1)  # the pool's one thread is busy when the next request comes
    return accept(request)


def requests_with_one_thread_more(
    script: str,
) -> tuple[subprocess.CompletedProcess[str], Counter[str]]:
    """What `script` (after REQUESTS_SCRIPT) printed with one thread besides its main one,
    and the event_ids a slow Graph received, counted."""
    with FakeGraphServer(answered_slowly) as server:
        result = run_python_under_a_process_limit(
            ONE_THREAD_MORE, REQUESTS_SCRIPT + textwrap.dedent(script), server.url
        )
    return result, Counter(request.events[0]["event_id"] for request in server.requests)


def test_async_requests_a_thread_limit_refuses_threads_are_each_sent_once() -> None:
    result, sent = requests_with_one_thread_more(
        """
        futures = [lead(number, EventRequestAsync).execute() for number in range(6)]
        print(sum(future.result().events_received for future in futures))
        """
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, "6\n", "")
    assert sent == Counter(f"e{number}" for number in range(6))


def test_a_batch_processor_refused_threads_sends_each_request_once_and_empties_its_window() -> None:
    result, sent = requests_with_one_thread_more(
        """
        with BatchProcessor(batch_size=1, concurrent_requests=4) as processor:
            futures = [processor.submit(lead(number)) for number in range(8)]
            processor.wait_all()
            print(len([future.result() for future in futures]), processor.in_flight)
        """
    )

    # before: "Future … in unexpected state: FINISHED" logged for each request run twice,
    # and the window counted each of them out twice
    assert (result.returncode, result.stdout, result.stderr) == (0, "8 0\n", "")
    assert sent == Counter(f"e{number}" for number in range(8))


def sending_to(sandbox: SandboxServer, directory: Path, **settings: Any) -> dict[str, Any]:
    """The config of a run sending requests of 100 events to `sandbox`, without workers."""
    return dry_run_config(
        directory,
        0,
        dry_run=False,
        access_token=ACCESS_TOKEN,
        graph_url=sandbox.url,
        batch_size=100,
        **settings,
    )


@pytest.mark.parametrize(
    ("processes", "progress_lines"),
    [(1, False), (3, True)],
    ids=["no-thread-at-all", "a-progress-thread-and-one-sending-thread"],
)
def test_the_target_refused_threads_sends_every_event_once_and_writes_its_states(
    sandbox_factory: Callable[..., SandboxServer], processes: int, progress_lines: bool
) -> None:
    sandbox = sandbox_factory(latency_ms=50)
    lines = singer_lines(messy_orders(1000), state_every=250)
    with tempfile.TemporaryDirectory() as directory:
        config = sending_to(sandbox, Path(directory), concurrent_requests=4, progress_interval=0.05)
        completed = run_target_under_a_process_limit(processes, Path(directory), config, lines)
        run = Run(completed.returncode, completed.stdout, completed.stderr, Path(directory))
        summary = run.summary

    assert run.returncode == 0, run.stderr
    assert run.log("CRITICAL") == run.log("ERROR") == []
    received = Counter(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
    assert received == Counter(range(1, 1001))
    assert sandbox.stats()["events_received"] == 1000  # none sent twice, even if rejected
    bookmarks = [bookmark(state) for state in run.states]
    assert bookmarks == sorted(set(bookmarks))
    assert bookmarks[-1] == 1000
    refused_progress = [
        warning for warning in summary["warnings"] if warning.startswith("Progress lines are off")
    ]
    assert bool(refused_progress) is not progress_lines
    assert any(message.startswith("Progress: ") for _, message in run.log("INFO")) is progress_lines


def run_with_open_files(
    open_files: int, directory: Path, sandbox: SandboxServer, lines: list[str], **overrides: Any
) -> Run:
    """The target's command allowed `open_files` descriptors, sending to `sandbox`."""
    config = sending_to(sandbox, directory, concurrent_requests=8, **overrides)
    config_path = write_config(directory, config)
    limited = ["prlimit", f"--nofile={open_files}", sys.executable]
    completed = subprocess.run(
        [*limited, "-c", TARGET_COMMAND, "--config", str(config_path)],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, directory)


#: from too few descriptors for Python to start, through too few for the connections
#: concurrent_requests wants, to enough for them all
OPEN_FILES_LIMITS = range(4, 17)


def orders_with_phones_read_without_libphonenumber() -> list[str]:
    """1,000 messy orders, but for their phones: numbers with their country code, read
    without libphonenumber, whose countries' modules a run short of descriptors could not
    import mid-run (test_target_cli shows what the run says then)."""
    orders = messy_orders(1000)
    for order in orders:
        order["phone"] = "+1 616 954 7888"
    return singer_lines(orders, state_every=250)


def slow_sandbox(sandbox_factory: Callable[..., SandboxServer]) -> SandboxServer:
    """A sandbox answering later than the target makes its batches, however busy the machine:
    the requests overlap, and want their connections at once."""
    return sandbox_factory(latency_ms=50)


def test_a_limit_on_open_files_below_the_connections_wanted_costs_retries_not_events(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = slow_sandbox(sandbox_factory)
    lines = orders_with_phones_read_without_libphonenumber()
    retried_for_want_of_a_socket = []
    for open_files in OPEN_FILES_LIMITS:
        # the requests of a run that failed are answered after it ended
        wait_until(lambda: sandbox.stats()["in_flight"] == 0)
        sandbox.reset()
        run = run_with_open_files(open_files, tmp_path / str(open_files), sandbox, lines)
        if run.returncode != 0:  # too few to start, or to open a first connection at all
            assert "Too many open files" in run.stderr
            assert "Check graph_url" not in run.stderr
            continue
        received = Counter(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
        assert received == Counter(range(1, 1001)), open_files
        assert [bookmark(state) for state in run.states][-1] == 1000
        if "network:LocalResourceError" in run.summary["requests"]["retries_by_reason"]:
            retried_for_want_of_a_socket.append(open_files)

    # before: "Sending failed for good … Check graph_url and the network" whenever a request
    # found no descriptor before Meta's first answer came
    assert retried_for_want_of_a_socket


def test_a_request_refused_a_socket_to_the_end_of_its_retries_says_to_raise_the_limit(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = slow_sandbox(sandbox_factory)
    lines = orders_with_phones_read_without_libphonenumber()
    advice = (
        "This machine ran short of what a request needs: raise the limit on open files "
        "(`ulimit -n`, a container's nofile limit) or lower concurrent_requests; rerun from "
        "the last state."
    )
    for open_files in OPEN_FILES_LIMITS:
        directory = tmp_path / str(open_files)
        run = run_with_open_files(open_files, directory, sandbox, lines, max_retries=0)
        if run.returncode == 1 and "this machine refused what the request needs" in run.stderr:
            break
    else:
        pytest.fail("no limit on open files left a request without a socket")
    assert run.failure.endswith(advice), run.failure
    assert "[Errno 24] Too many open files" in run.failure
