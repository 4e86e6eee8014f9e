"""The target run inside another Python process: an orchestrator's worker, a notebook, a test.

Each host is a fresh interpreter running a small script (`run_host`), as such a process would
run the target: `TargetMetaCapi(config=...)`, then `run()` (or singer-sdk's `listen()`) on an
in-memory input, with sys.stdout replaced. A dry run needs no endpoint, and no thread of a
sandbox keeps the target from forking record workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from target_meta_capi.sandbox import SandboxServer
from tests._target_support import order_stream, orders_config

ROOT = Path(__file__).resolve().parent.parent
HOST_SECONDS = 60
#: Record workers (forked) and /proc/self/fd, where a host counts what it has open.
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

#: What every host script starts with: `run_orders()` runs the target on the host's input (500
#: orders) in a dry run unless the test says otherwise, stdout captured, and returns (exit
#: code, state lines, the target).
_HOST_PRELUDE = """
import contextlib, gc, io, json, os, signal, sys, threading, weakref
from target_meta_capi.target import TargetMetaCapi

CONFIG = json.loads(open(os.environ["HOST_CONFIG"]).read())
LINES = open(os.environ["HOST_INPUT"]).read().splitlines()

def run_orders(config=CONFIG):
    output = io.StringIO()
    target = TargetMetaCapi(config=config)
    with contextlib.redirect_stdout(output):
        code = target.run(io.StringIO("".join(line + "\\n" for line in LINES)))
    return code, output.getvalue().splitlines(), target
"""


def run_host(tmp_path: Path, body: str, **config: object) -> subprocess.CompletedProcess[str]:
    settings = orders_config(
        "http://127.0.0.1:9",  # never asked: a dry run
        tmp_path,
        dry_run=True,
        dry_run_path=str(tmp_path / "requests.jsonl"),
    )
    settings.update(config)
    config_path, input_path = tmp_path / "config.json", tmp_path / "input.jsonl"
    config_path.write_text(json.dumps(settings), encoding="utf-8")
    input_path.write_text("\n".join(order_stream(500, state_every=100)), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-c", _HOST_PRELUDE + textwrap.dedent(body)],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HOST_CONFIG": str(config_path),
            "HOST_INPUT": str(input_path),
        },
        capture_output=True,
        text=True,
        timeout=HOST_SECONDS,
        check=False,
    )


def host_said(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_a_hosts_ctrl_c_after_a_run_interrupts_the_host(tmp_path: Path) -> None:
    result = run_host(
        tmp_path,
        """
        code, states, target = run_orders()
        try:
            os.kill(os.getpid(), signal.SIGINT)  # its handler runs before the next line
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted after run", code)
        """,
    )
    assert host_said(result) == ["interrupted after run 0"]


def test_a_hosts_own_sigterm_handler_is_its_again_after_a_run(tmp_path: Path) -> None:
    result = run_host(
        tmp_path,
        """
        heard = []
        signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
        code, states, target = run_orders()
        os.kill(os.getpid(), signal.SIGTERM)
        print("host heard", heard == [signal.SIGTERM], "run", code)
        """,
    )
    assert host_said(result) == ["host heard True run 0"]


@linux_only
def test_a_hosts_garbage_alive_while_record_workers_were_forked_is_collected_after_the_run(
    tmp_path: Path,
) -> None:
    result = run_host(
        tmp_path,
        """
        class Job:
            pass
        job = Job()
        job.itself = job  # a cycle: only the garbage collector frees it
        job_alive = weakref.ref(job)
        code, states, target = run_orders()
        del job
        gc.collect()
        print("workers", target._parallel is not None, "job collected", job_alive() is None)
        """,
        record_workers=2,
    )
    assert host_said(result) == ["workers True job collected True"]


@linux_only
def test_runs_reading_stdin_one_after_another_leave_no_descriptor_open(tmp_path: Path) -> None:
    result = run_host(
        tmp_path,
        """
        descriptors = []
        for run in range(3):
            with open(os.environ["HOST_INPUT"], "rb") as input_file:
                os.dup2(input_file.fileno(), 0)  # this run's input on stdin
            with contextlib.redirect_stdout(io.StringIO()):
                code = TargetMetaCapi(config=CONFIG).run()
            gc.collect()
            descriptors.append((code, len(os.listdir("/proc/self/fd"))))
        print("same descriptors", len(set(descriptors)) == 1, descriptors[0][0])
        """,
        record_workers=0,
    )
    assert host_said(result) == ["same descriptors True 0"]


def test_a_host_without_stdout_gets_a_run_failing_with_one_clear_error_at_its_first_state(
    tmp_path: Path,
) -> None:
    result = run_host(
        tmp_path,
        """
        sys.stdout = None  # pythonw's, or a daemon's started with descriptor 1 closed
        code = TargetMetaCapi(config=CONFIG).run(io.StringIO("\\n".join(LINES)))
        failure = json.loads(open(CONFIG["summary_path"]).read())["failure"]
        print(code, failure, file=sys.__stdout__)
        """,
        summary_path=str(tmp_path / "summary.json"),
    )
    [said] = host_said(result)
    assert said.startswith("1 ") and "Cannot write state: this process has no stdout" in said


#: A host calling singer-sdk's `listen()` (as its testing helpers do) on input with a line
#: that is no JSON after 300 of them: `listen()` raises.
_FAILING_LISTEN = """
lines = LINES[:300] + ["{no json"] + LINES[300:]
target = TargetMetaCapi(config=CONFIG)
try:
    with contextlib.redirect_stdout(io.StringIO()):
        target.listen(io.StringIO("\\n".join(lines)))
except Exception as error:
    raised = type(error).__name__
"""


@linux_only
def test_a_failing_listen_raises_its_error_and_leaves_no_worker_or_thread_running(
    tmp_path: Path,
) -> None:
    result = run_host(
        tmp_path,
        _FAILING_LISTEN
        + """
import multiprocessing
print(raised, "workers had", target._parallel is not None,
      "left running", multiprocessing.active_children(), threading.active_count())
""",
        record_workers=2,
    )
    assert host_said(result) == ["SingerInputError workers had True left running [] 1"]


def test_the_summary_of_a_failing_listen_names_its_failure(tmp_path: Path) -> None:
    result = run_host(
        tmp_path,
        _FAILING_LISTEN
        + """
print(raised, json.loads(open(CONFIG["summary_path"]).read())["failure"])
""",
        summary_path=str(tmp_path / "summary.json"),
    )
    assert host_said(result) == [
        "SingerInputError Input line 301 is not valid JSON (JSON is malformed: object keys "
        "must be strings (byte 1))"
    ]


@linux_only
def test_a_listen_stopped_by_sigterm_ends_its_run_as_the_command_does_before_it_raises(
    tmp_path: Path,
) -> None:
    result = run_host(
        tmp_path,
        """
        class InputStoppedAtLine300(io.StringIO):
            read = 0
            def __next__(self):
                self.read += 1
                if self.read == 300:
                    os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler stopping the job
                return super().__next__()

        target = TargetMetaCapi(config=CONFIG)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                target.listen(InputStoppedAtLine300("\\n".join(LINES)))
        except BaseException as stop:
            raised = type(stop).__name__
        import multiprocessing
        print(raised, json.loads(open(CONFIG["summary_path"]).read())["failure"],
              "| workers had", target._parallel is not None,
              "left running", multiprocessing.active_children(), threading.active_count())
        """,
        record_workers=2,
        summary_path=str(tmp_path / "summary.json"),
    )
    assert host_said(result) == [
        "TerminationRequested Received SIGTERM: stopped before the end of the input "
        "| workers had True left running [] 1"
    ]


def test_a_failed_runs_requests_waiting_to_be_retried_are_not_retried_after_it_returns(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = sandbox_factory(transient_error_rate=1.0)  # every attempt answered 500, code 2
    result = run_host(
        tmp_path,
        f"""
        import time, urllib.request
        def attempts():
            with urllib.request.urlopen("{sandbox.url}/__stats") as answer:
                return json.loads(answer.read())["requests"]
        def senders():
            return [t.name for t in threading.enumerate() if t.name.startswith("capi-batch")]
        LINES[:] = LINES[:150] + ["{{not json"]  # bad input: the run ends after its grace
        code = run_orders()[0]
        # an attempt under way at the return ends with its answer, however busy the machine
        deadline = time.monotonic() + 30
        while senders() and time.monotonic() < deadline:
            time.sleep(0.05)
        at_return = attempts()
        time.sleep(3)  # the retries' backoff: 0.5 s, 1 s, 2 s... (full jitter)
        print(code, attempts() - at_return, senders())
        """,
        dry_run=False,
        dry_run_path=None,
        graph_url=sandbox.url,
        record_workers=0,
        batch_size=25,
        shutdown_grace_seconds=1,
    )
    assert host_said(result) == ["1 0 []"]


@linux_only
def test_runs_one_after_another_leave_no_connection_to_meta_open(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = run_host(
        tmp_path,
        """
        gc.disable()  # what a garbage collection would close meanwhile is left to the run
        def sockets():
            return sum(
                os.readlink(fd).startswith("socket:")
                for fd in [f"/proc/self/fd/{fd}" for fd in os.listdir("/proc/self/fd")]
                if os.path.lexists(fd)  # not the one listdir() had open
            )
        print([(run_orders()[0], sockets()) for run in range(3)])
        """,
        dry_run=False,
        dry_run_path=None,
        graph_url=sandbox.url,
        record_workers=0,
    )
    assert host_said(result) == ["[(0, 0), (0, 0), (0, 0)]"]
