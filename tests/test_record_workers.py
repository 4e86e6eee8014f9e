"""Record workers (record_workers.py): forked processes change how fast records are processed,
never what comes out. The same input gives the same events, errors, warnings, dead letters,
state and run summary with `record_workers` 2 as with 0 (the main process alone).

The target runs as the installed command in a subprocess: workers are only forked from a
process with no other thread, and pytest's process has some. `record_workers` is set in every
config, so nothing here depends on the machine's CPU count. Most runs are dry runs, whose
payload files show every event the target would have sent.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from singer_sdk.singerlib.encoding.simple import RecordMessage, SimpleSingerWriter

from target_meta_capi.capi.normalize import normalize_user_data, sha256_hex
from target_meta_capi.reader import Line
from target_meta_capi.record_workers import (
    CHUNK_BYTES,
    CHUNK_LINES,
    RECORDS_BEFORE_WORKERS,
    ParallelRecords,
    RecordWorkerPool,
    StreamConverter,
    StreamSpec,
    record_line_prefixes,
)
from target_meta_capi.sandbox import SandboxServer

from ._process_limit import run_target_under_a_process_limit
from ._target_support import ACCESS_TOKEN, PIXEL_ID, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import generate
from run import ORDERS_MAPPING

TARGET = Path(sys.executable).with_name("target-meta-capi")
STREAM = generate.STREAM
WORKERS_LOG_LINE = "Validating, mapping and hashing records in 2 worker processes"
NO_SCHEMA_WARNING = "No schema for record field 'loyalty_tier'"
LOST_WORKER = re.compile(
    r"A record worker process stopped unexpectedly "
    r"\(target-meta-capi-record-worker-\d exit code -9\)"
)

# --- input ---------------------------------------------------------------------------------

Encoder = Callable[[dict[str, Any]], str]
# as singer-sdk taps write messages (and benchmarks/generate.py)
compact: Encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# as singer-python taps write them: json.dumps's default separators, "type" first
singer_python_style: Encoder = json.dumps
# compact, with every character beyond ASCII escaped as json.dumps escapes it: the only way a
# tap can write half a surrogate pair (an emoji cut in two) in UTF-8 output
ascii_compact: Encoder = json.JSONEncoder(separators=(",", ":")).encode


def stream_first(message: dict[str, Any]) -> str:
    """Valid Singer, but with "stream" before "type": a line the workers do not recognise."""
    if "stream" not in message:
        return compact(message)
    return compact({"stream": message["stream"], **message})


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def messy_orders(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Orders 1..count of repeat customers with messy contact data (benchmarks/generate.py);
    every 97th is 6.5 days old: still accepted, but within a day of Meta's 7-day cutoff."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc)
    customers = generate.make_customers(300, rng)
    orders = []
    for order_id in range(1, count + 1):
        record = generate.order_record(order_id, rng.choice(customers), rng, now)
        if order_id % 97 == 0:
            record["created_at"] = iso(now - dt.timedelta(days=6, hours=12))
        orders.append(record)
    return orders


def schema_message(schema: dict[str, Any] = generate.SCHEMA) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": STREAM, "schema": schema, "key_properties": ["order_id"]}


def record_message(record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": STREAM, "record": record}


def singer_lines(
    records: list[dict[str, Any]],
    *,
    state_every: int,
    encode: Encoder = compact,
    schema: dict[str, Any] = generate.SCHEMA,
) -> list[str]:
    """SCHEMA, the records, a STATE after every `state_every` records and after the last."""
    lines = [encode(schema_message(schema))]
    for index, record in enumerate(records, start=1):
        lines.append(encode(record_message(record)))
        if index % state_every == 0 or index == len(records):
            lines.append(encode(generate.state_message(record["order_id"])))
    return lines


def line_number_of(lines: list[str], order_id: int) -> int:
    """The 1-based input line of the order's RECORD."""
    for number, line in enumerate(lines, start=1):
        message = json.loads(line)
        if message["type"] == "RECORD" and message["record"]["order_id"] == order_id:
            return number
    raise AssertionError(f"no RECORD of order {order_id}")


def bookmark(state: dict[str, Any]) -> int:
    return state["bookmarks"][STREAM]["replication_key_value"]


# --- running the target --------------------------------------------------------------------

#: Where `NOTING_TARGET` notes, in its working directory, the streams the workers learn.
STREAMS_TAUGHT = "streams-taught"
#: The command, noting each stream its pool teaches the workers: each one then builds the
#: stream's converter (validator, mapping), which is what a stream costs them.
NOTING_TARGET = textwrap.dedent(
    f"""
    from target_meta_capi.record_workers import RecordWorkerPool
    from target_meta_capi.target import TargetMetaCapi

    add_stream = RecordWorkerPool.add_stream

    def add_stream_noted(pool, spec):
        with open({STREAMS_TAUGHT!r}, "a", encoding="utf-8") as noted:
            noted.write(spec.stream + "\\n")
        return add_stream(pool, spec)

    RecordWorkerPool.add_stream = add_stream_noted
    TargetMetaCapi.cli()
    """
)


def dry_run_config(directory: Path, record_workers: int, **overrides: Any) -> dict[str, Any]:
    return {
        "pixel_id": PIXEL_ID,
        "dry_run": True,
        "dry_run_path": str(directory / "payloads.jsonl"),
        "dead_letter_path": str(directory / "dead_letters.jsonl"),
        "summary_path": str(directory / "summary.json"),
        "progress_interval": 0,
        "streams": ORDERS_MAPPING,
        "record_workers": record_workers,
        **overrides,
    }


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@dataclass
class Run:
    """What one run of the command left behind."""

    returncode: int
    stdout: str
    stderr: str
    directory: Path

    @property
    def states(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    @property
    def events(self) -> list[str]:
        """Every event of the dry-run payloads as canonical JSON, sorted: requests run on
        threads, so their order in the file is not the order they were made in."""
        path = self.directory / "payloads.jsonl"
        if not path.exists():
            return []
        return sorted(
            json.dumps(event, sort_keys=True)
            for line in path.read_text(encoding="utf-8").splitlines()
            for event in json.loads(line)["payload"]["data"]
        )

    @property
    def event_ids(self) -> list[int]:
        return sorted(int(json.loads(event)["event_id"]) for event in self.events)

    @property
    def streams_taught(self) -> list[str]:
        """The streams the workers learned, in order (a run of `NOTING_TARGET` only)."""
        return (self.directory / STREAMS_TAUGHT).read_text(encoding="utf-8").splitlines()

    @property
    def dead_letters(self) -> bytes:
        path = self.directory / "dead_letters.jsonl"
        return path.read_bytes() if path.exists() else b""

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.directory / "summary.json").read_text(encoding="utf-8"))

    def log(self, level: str) -> list[tuple[str, str]]:
        """(logger, message) of each log line at `level`, without its time stamp."""
        entries = []
        for line in self.stderr.splitlines():
            parts = line.split(" | ", 3)
            if len(parts) == 4 and parts[1].strip() == level:
                entries.append((parts[2].strip(), parts[3]))
        return entries

    @property
    def errors(self) -> list[str]:
        return [message for _, message in self.log("ERROR")]

    @property
    def failure(self) -> str:
        """The one line that says why the run failed."""
        [failure] = [error for error in self.errors if error.startswith("target-meta-capi failed")]
        return failure


def run_target(
    directory: Path,
    lines: list[str],
    record_workers: int,
    *,
    noting_streams_taught: bool = False,
    target_script: str | None = None,
    stderr_closed: bool = False,
    input_from_file: bool = False,
    **overrides: Any,
) -> Run:
    """A run of the target's command, or of `target_script` (Python source running a target);
    with `stderr_closed`, started as `2>&-` would (its stderr is then empty)."""
    config_path = write_config(directory, dry_run_config(directory, record_workers, **overrides))
    command = [str(TARGET)]
    if target_script is not None:
        command = [sys.executable, "-c", target_script]
    if noting_streams_taught:
        command = [sys.executable, "-c", NOTING_TARGET]
        (directory / STREAMS_TAUGHT).touch()  # none taught: an empty file, not a missing one
    text = "".join(line + "\n" for line in lines)
    with contextlib.ExitStack() as stack:
        stdin: dict[str, Any] = {"input": text}
        if input_from_file:  # a file, unlike a pipe, is never found dry: no pause mid-input
            (directory / "input.singer").write_text(text, encoding="utf-8")
            stdin = {"stdin": stack.enter_context((directory / "input.singer").open("rb"))}
        completed = subprocess.run(
            [*command, "--config", str(config_path)],
            **stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            cwd=directory,
            preexec_fn=(lambda: os.close(2)) if stderr_closed else None,
        )
    return Run(completed.returncode, completed.stdout, completed.stderr, directory)


def run_both_ways(directory: Path, lines: list[str], **overrides: Any) -> tuple[Run, Run]:
    """The same input with two record workers, and with none."""
    return (
        run_target(directory / "workers", lines, 2, **overrides),
        run_target(directory / "main-process-only", lines, 0, **overrides),
    )


def run_both_ways_to_sandboxes(
    sandbox_factory: Callable[..., SandboxServer],
    directory: Path,
    lines: list[str],
    **sandbox_settings: Any,
) -> tuple[tuple[Run, Run], tuple[dict[int, dict], dict[int, dict]]]:
    """The same input sent for real, with two record workers and with none, each to a sandbox
    of its own; the runs and the events each sandbox accepted, by event_id."""
    runs, received = [], []
    for record_workers in (2, 0):
        sandbox = sandbox_factory(**sandbox_settings)
        runs.append(
            run_target(
                directory / f"workers-{record_workers}",
                lines,
                record_workers,
                dry_run=False,
                access_token=ACCESS_TOKEN,
                graph_url=sandbox.url,
            )
        )
        received.append(
            {int(item["event"]["event_id"]): item["event"] for item in sandbox.accepted_events()}
        )
    return (runs[0], runs[1]), (received[0], received[1])


def summary_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The run summary without what depends on the clock: its duration and pace, and the
    requests (latencies, and how events were cut into requests: a STATE sends half-full
    batches when it arrives, and with workers some of its records are still with them then)."""
    figures = copy.deepcopy(summary)
    del figures["duration_seconds"]
    del figures["pace"]
    del figures["requests"]
    del figures["totals"]["requests"]
    for stream in figures["streams"].values():
        del stream["requests"]
    return figures


# --- watching the processes of a running target ----------------------------------------------


def child_pids(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return []


def process_start_time(pid: int) -> str | None:
    """The start time of a running (not zombie) process, which tells it from a later one that
    reuses its pid; None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. of proc(5)
    state, start_time = fields[0], fields[19]
    return None if state in ("Z", "X") else start_time


@dataclass
class LiveTarget:
    process: subprocess.Popen[str]
    directory: Path

    def write(self, lines: list[str]) -> None:
        """Write lines as a tap does; a target that already stopped reading is not an error."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.write("".join(line + "\n" for line in lines))
            self.process.stdin.flush()

    def close_input(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()

    def workers(self) -> list[int]:
        """The pids of its two record workers, once both were forked."""
        wait_until(lambda: len(child_pids(self.process.pid)) == 2)
        return child_pids(self.process.pid)

    def finish(self) -> Run:
        self.close_input()
        self.process.wait(timeout=60)
        return Run(
            self.process.returncode,
            (self.directory / "stdout").read_text(encoding="utf-8"),
            (self.directory / "stderr").read_text(encoding="utf-8"),
            self.directory,
        )


@contextlib.contextmanager
def live_target(directory: Path, record_workers: int = 2, **overrides: Any) -> Iterator[LiveTarget]:
    """The command (with two record workers by default), reading from a pipe the test writes to."""
    config_path = write_config(directory, dry_run_config(directory, record_workers, **overrides))
    with (directory / "stdout").open("w") as stdout, (directory / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            [str(TARGET), "--config", str(config_path)],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            cwd=directory,
        )
    try:
        yield LiveTarget(process, directory)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the same input with and without workers ------------------------------------------------

PAIRED_RECORDS = 3000  # 7.5 chunks of 400 lines
PAIRED_STATE_EVERY = 500


@pytest.fixture(scope="module")
def paired_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """3000 messy orders with a STATE every 500, with two workers and with none.

    Each STATE falls where a request of 500 events is full and one request is sent at a time,
    so which states are written does not depend on how fast the answers come back."""
    lines = singer_lines(messy_orders(PAIRED_RECORDS), state_every=PAIRED_STATE_EVERY)
    workers, alone = run_both_ways(
        tmp_path_factory.mktemp("paired"), lines, batch_size=500, concurrent_requests=1
    )
    assert workers.returncode == 0, workers.stderr[-3000:]
    assert alone.returncode == 0, alone.stderr[-3000:]
    return workers, alone


def test_workers_send_the_same_events_as_the_main_process_alone(
    paired_runs: tuple[Run, Run],
) -> None:
    workers, alone = paired_runs

    assert workers.event_ids == list(range(1, PAIRED_RECORDS + 1))
    assert workers.events == alone.events


def test_workers_write_the_same_state_lines_as_the_main_process_alone(
    paired_runs: tuple[Run, Run],
) -> None:
    workers, alone = paired_runs

    assert [bookmark(state) for state in workers.states] == list(
        range(PAIRED_STATE_EVERY, PAIRED_RECORDS + 1, PAIRED_STATE_EVERY)
    )
    assert workers.stdout == alone.stdout


def test_workers_report_the_same_run_summary_as_the_main_process_alone(
    paired_runs: tuple[Run, Run],
) -> None:
    workers, alone = paired_runs

    summary = workers.summary
    stream = summary["streams"][STREAM]
    assert stream["records_read"] == stream["events_mapped"] == PAIRED_RECORDS
    assert stream["events_near_cutoff"] == PAIRED_RECORDS // 97
    assert stream["dropped_values"]  # the messy e-mails
    assert summary_figures(summary) == summary_figures(alone.summary)


def test_phones_without_their_country_code_are_counted_and_warned_about_as_without_workers(
    tmp_path: Path,
) -> None:
    records = messy_orders(RECORDS_BEFORE_WORKERS + 300)
    for record in records:
        record["phone"] = "+44 7700 900123"
    national = records[::10]  # a tenth, among the main process's lines and the workers'
    for index, record in enumerate(national):
        record["phone"] = "07700 900123" if index % 2 else "(616) 954-7888"
    workers, alone = run_both_ways(tmp_path, singer_lines(records, state_every=1000))
    assert workers.returncode == alone.returncode == 0
    for run in (workers, alone):
        assert run.summary["streams"][STREAM]["dropped_values"]["ph"] == {
            "no_country_code": len(national)
        }
        [warning] = [w for w in run.summary["warnings"] if "phone numbers were left out" in w]
        assert f"{len(national)} phone numbers" in warning


def test_phones_are_read_in_each_orders_country_by_the_workers_as_by_the_main_process(
    tmp_path: Path,
) -> None:
    records = messy_orders(RECORDS_BEFORE_WORKERS + 300)
    for record in records[::10]:
        record["phone"], record["country"] = "07700 900123", "United Kingdom"
    workers, alone = run_both_ways(
        tmp_path, singer_lines(records, state_every=1000), phone_country_from_country=True
    )
    assert workers.returncode == alone.returncode == 0
    assert workers.events == alone.events
    british = sha256_hex("447700900123")
    hashed = [json.loads(event)["user_data"].get("ph") for event in workers.events]
    assert hashed.count(british) == len(records[::10])
    assert "ph" not in workers.summary["streams"][STREAM]["dropped_values"]


def test_record_workers_2_starts_two_worker_processes(paired_runs: tuple[Run, Run]) -> None:
    workers, _ = paired_runs

    assert [message for _, message in workers.log("INFO") if "worker process" in message] == [
        WORKERS_LOG_LINE
    ]


def test_record_workers_0_leaves_every_record_to_the_main_process(
    paired_runs: tuple[Run, Run],
) -> None:
    _, alone = paired_runs

    assert "worker processes" not in alone.stderr


# --- a stream's first records: the main process's own ----------------------------------------


def test_a_stream_of_no_more_records_than_the_main_process_keeps_is_taught_to_no_worker(
    tmp_path: Path,
) -> None:
    # a database's many small tables: each would cost every worker a converter
    lines = singer_lines(messy_orders(RECORDS_BEFORE_WORKERS), state_every=100)

    run = run_target(tmp_path, lines, 2, noting_streams_taught=True)

    assert run.returncode == 0, run.stderr[-3000:]
    assert WORKERS_LOG_LINE in run.stderr  # forked at the SCHEMA all the same
    assert run.streams_taught == []
    assert run.event_ids == list(range(1, RECORDS_BEFORE_WORKERS + 1))


def test_a_stream_past_the_main_process_records_reaches_meta_in_input_order_as_without_workers(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    records = RECORDS_BEFORE_WORKERS + 600
    lines = singer_lines(messy_orders(records), state_every=records)
    runs, received = [], []
    for record_workers in (2, 0):
        sandbox = sandbox_factory()
        runs.append(
            run_target(
                tmp_path / f"workers-{record_workers}",
                lines,
                record_workers,
                noting_streams_taught=True,
                dry_run=False,
                access_token=ACCESS_TOKEN,
                graph_url=sandbox.url,
                # one request at a time, in the order made; one holds records of both kinds
                batch_size=300,
                concurrent_requests=1,
            )
        )
        # as the sandbox received them, keys in their order
        received.append([json.dumps(item["event"]) for item in sandbox.accepted_events()])
    workers, alone = runs

    assert workers.returncode == alone.returncode == 0, workers.stderr[-3000:]
    assert workers.streams_taught == [STREAM]
    assert [json.loads(event)["event_id"] for event in received[0]] == [
        str(order_id) for order_id in range(1, records + 1)
    ]
    assert received[0] == received[1]


def sent_through_workers(
    sandbox_factory: Callable[..., SandboxServer],
    directory: Path,
    orders: list[dict[str, Any]],
    **settings: Any,
) -> list[dict[str, Any]]:
    """The events a sandbox accepted from a run of `orders` through two record workers."""
    sandbox = sandbox_factory()
    run = run_target(
        directory,
        singer_lines(orders, state_every=len(orders)),
        2,
        noting_streams_taught=True,
        dry_run=False,
        access_token=ACCESS_TOKEN,
        graph_url=sandbox.url,
        **settings,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.streams_taught == [STREAM]
    return [item["event"] for item in sandbox.accepted_events()]


@pytest.mark.parametrize("where", ["run", "stream"])
def test_workers_read_event_times_without_an_offset_in_the_time_zone_setting(
    where: str, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    orders = messy_orders(RECORDS_BEFORE_WORKERS + 100)
    expected = {}
    for order in orders:
        moment = dt.datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
        # Tokyo's wall clock (UTC+9, no daylight saving time), as a local-time column keeps it
        order["created_at"] = (moment + dt.timedelta(hours=9)).replace(tzinfo=None).isoformat()
        expected[order["order_id"]] = math.floor(moment.timestamp())
    zone: dict[str, Any] = {"time_zone": "Asia/Tokyo"}
    if where == "stream":  # the run's own zone is overridden by the stream's
        zone = {
            "time_zone": "America/New_York",
            "streams": {STREAM: {**ORDERS_MAPPING[STREAM], "time_zone": "Asia/Tokyo"}},
        }

    events = sent_through_workers(sandbox_factory, tmp_path, orders, **zone)

    assert {int(event["event_id"]): event["event_time"] for event in events} == expected


def _in_the_us_unless_dialled_abroad(phone: str) -> str:
    """The digits Meta matches for the benchmark's phones read with phone_country_code 1."""
    digits = re.sub(r"\D", "", phone)
    if phone.startswith(("+", "00")):
        return digits.lstrip("0")
    return digits if digits.startswith("1") else "1" + digits


@pytest.mark.parametrize("where", ["run", "stream"])
def test_workers_give_phones_written_without_a_country_code_the_phone_country_code(
    where: str, sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    orders = messy_orders(RECORDS_BEFORE_WORKERS + 100)
    expected = {
        order["order_id"]: hashlib.sha256(
            _in_the_us_unless_dialled_abroad(order["phone"]).encode()
        ).hexdigest()
        for order in orders
        if order["phone"]
    }
    assert any(order["phone"].startswith("(") for order in orders if order["phone"])
    code: dict[str, Any] = {"phone_country_code": "1"}
    if where == "stream":  # the run's own code is overridden by the stream's
        code = {
            "phone_country_code": "44",
            "streams": {STREAM: {**ORDERS_MAPPING[STREAM], "phone_country_code": "+1"}},
        }

    events = sent_through_workers(sandbox_factory, tmp_path, orders, **code)

    received = {
        int(event["event_id"]): event["user_data"]["ph"]
        for event in events
        if "ph" in event["user_data"]
    }
    assert received == expected


def next_line(stream: IO[bytes], timeout: float = 60) -> bytes:
    """The next line a process writes to an unbuffered pipe; fails after `timeout` seconds."""
    assert select.select([stream], [], [], timeout)[0], "no line in time"
    return stream.readline()


def test_a_state_between_main_process_and_worker_records_waits_for_both_to_be_acknowledged(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    # answers come late, and a third of the requests fail once or more and are sent again
    sandbox = sandbox_factory(latency_ms=100, transient_error_rate=0.3, seed=3)
    between = RECORDS_BEFORE_WORKERS + 200  # the main process's records, then the workers'
    lines = singer_lines(messy_orders(between + 200), state_every=between)
    state_between = lines.index(compact(generate.state_message(between)))
    overrides = {"dry_run": False, "access_token": ACCESS_TOKEN, "graph_url": sandbox.url}
    config = write_config(tmp_path, dry_run_config(tmp_path, 2, batch_size=100, **overrides))
    (tmp_path / STREAMS_TAUGHT).touch()
    accepted_when_written: dict[int, set[int]] = {}

    def note_next_state() -> None:
        state = json.loads(next_line(process.stdout))
        # checked as the state is written: what the sandbox had acknowledged by then
        accepted = {int(item["event"]["event_id"]) for item in sandbox.accepted_events()}
        accepted_when_written[bookmark(state)] = accepted

    with (tmp_path / "stderr").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", NOTING_TARGET, "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
            cwd=tmp_path,
        )
    assert process.stdin is not None and process.stdout is not None
    try:
        # the input up to that state, then a pause: the target sends what it holds
        process.stdin.write("".join(line + "\n" for line in lines[: state_between + 1]).encode())
        note_next_state()
        process.stdin.write("".join(line + "\n" for line in lines[state_between + 1 :]).encode())
        process.stdin.close()
        note_next_state()
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    run = Run(0, "", (tmp_path / "stderr").read_text(encoding="utf-8"), tmp_path)
    assert run.streams_taught == [STREAM]
    assert sandbox.stats()["faults"].get("transient_error", 0) > 0
    assert sorted(accepted_when_written) == [between, between + 200]
    for written_at, accepted in accepted_when_written.items():
        assert set(range(1, written_at + 1)) <= accepted


# --- records the workers give back to the main process --------------------------------------


def test_record_breaking_its_schema_among_worker_records_fails_the_run_as_without_workers(
    tmp_path: Path,
) -> None:
    records = messy_orders(1200)
    records[600]["num_items"] = "three items"  # order 601; the schema says integer
    lines = singer_lines(records, state_every=200)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    error = workers.failure
    assert f"input line {line_number_of(lines, 601)}, stream '{STREAM}'" in error
    assert "'num_items'" in error
    for run in (workers, alone):
        assert "three items" not in run.stderr
        assert all(bookmark(state) <= 600 for state in run.states)


@pytest.mark.parametrize("order_id", [100, 601], ids=["main-process", "workers"])
def test_a_record_breaking_its_schema_stops_the_run_without_a_traceback_as_without_workers(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path, order_id: int
) -> None:
    records = messy_orders(1200)
    records[order_id - 1]["num_items"] = "three items"  # the schema says integer
    lines = singer_lines(records, state_every=200)

    (workers, alone), _ = run_both_ways_to_sandboxes(sandbox_factory, tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    for run in (workers, alone):
        assert "Traceback" not in run.stderr
        assert run.errors == [
            f"target-meta-capi failed: Record does not match its SCHEMA (input line "
            f"{line_number_of(lines, order_id)}, stream '{STREAM}'): field 'num_items' breaks "
            """the schema's 'type' (["integer", "null"])"""
        ]


def test_a_bad_record_a_worker_holds_is_named_before_a_later_bad_record_of_another_stream(
    tmp_path: Path,
) -> None:
    # the other stream's record is processed at once, by the main process: the first bad
    # line of the input is still the one named
    records = messy_orders(1200)
    records[600]["num_items"] = "three items"  # order 601, a worker's; the schema: integer
    lines = singer_lines(records, state_every=200)
    audit = {"type": "object", "properties": {"id": {"type": "integer"}}}
    lines.insert(0, json.dumps({"type": "SCHEMA", "stream": "audit", "schema": audit}))
    later = line_number_of(lines, 601)  # the line after order 601's
    lines.insert(later, json.dumps({"type": "RECORD", "stream": "audit", "record": {"id": "x"}}))

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    assert f"input line {line_number_of(lines, 601)}, stream '{STREAM}'" in workers.failure


def test_a_record_line_naming_its_stream_twice_is_refused_as_ambiguous(tmp_path: Path) -> None:
    # a worker would claim it by the stream named first, a decoder keeps the last
    lines = singer_lines(messy_orders(400), state_every=200)
    position = line_number_of(lines, 301) - 1
    lines[position] = lines[position][:-1] + ', "stream": "other"}'

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert (
        workers.failure
        == alone.failure
        == (
            f'target-meta-capi failed: Input line {position + 1} gives the key "stream" twice, '
            "naming different streams: a key given twice is ambiguous"
        )
    )
    for run in (workers, alone):
        assert all(bookmark(state) <= 300 for state in run.states)


def _fails_as_without_workers(directory: Path, bad_line: str, failure: str) -> None:
    """1,200 orders, a STATE every 200, and `bad_line` after the STATE of order 600, where a
    worker gets it: the run fails with `failure` ({line}: its line number) and no state past
    order 600, with two workers as with none."""
    lines = singer_lines(messy_orders(1200), state_every=200)
    position = line_number_of(lines, 601) - 1
    lines.insert(position, bad_line)
    assert lines[position].startswith(record_line_prefixes(STREAM))  # a worker gets it

    workers, alone = run_both_ways(directory, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    assert workers.failure == "target-meta-capi failed: " + failure.format(line=position + 1)
    for run in (workers, alone):
        assert all(bookmark(state) <= 600 for state in run.states)


def test_a_line_nested_too_deeply_among_worker_records_fails_the_run_as_without_workers(
    tmp_path: Path,
) -> None:
    _fails_as_without_workers(
        tmp_path,
        compact(record_message({})).replace("{}", "[" * 100_000 + "]" * 100_000),
        "Input line {line} is not valid JSON (it nests arrays and objects too deeply to be read)",
    )


def _amid_worker_records(line: str) -> tuple[list[str], int]:
    """1,200 orders, a STATE every 200, and `line` before order 601, amid the records the
    workers get; the lines and the line number of `line`."""
    lines = singer_lines(messy_orders(1200), state_every=200)
    position = line_number_of(lines, 601) - 1
    lines.insert(position, line)
    return lines, position + 1


def nested_in_arrays(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


def test_a_schema_nested_600_deep_fails_the_run_naming_its_line_as_without_workers(
    tmp_path: Path,
) -> None:
    properties = {**generate.SCHEMA["properties"], "note": {"examples": nested_in_arrays(1, 600)}}
    deep_schema = {**generate.SCHEMA, "properties": properties}
    lines, line_number = _amid_worker_records(compact(schema_message(deep_schema)))

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    assert workers.failure == (
        "target-meta-capi failed: The SCHEMA message nests arrays and objects too deeply to be "
        f"processed (input line {line_number}, stream '{STREAM}')"
    )
    assert "Traceback" not in workers.stderr + alone.stderr
    for run in (workers, alone):
        assert all(bookmark(state) <= 600 for state in run.states)


def test_a_state_nested_600_deep_fails_the_run_naming_its_line_as_without_workers(
    tmp_path: Path,
) -> None:
    deep_state = {"bookmarks": {STREAM: {"replication_key_value": 600}}}
    deep_state["history"] = nested_in_arrays({}, 600)
    lines, line_number = _amid_worker_records(compact({"type": "STATE", "value": deep_state}))

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    assert workers.failure == (
        f"target-meta-capi failed: Input line {line_number}: the STATE's value nests arrays and "
        "objects more than 100 levels deep (a tap's bookmarks nest a few); check the tap's state."
    )
    assert "Traceback" not in workers.stderr + alone.stderr
    for run in (workers, alone):
        assert all(bookmark(state) <= 600 for state in run.states)
        assert "history" not in run.stdout


def test_a_failed_run_counts_the_records_before_the_bad_one_as_without_workers(
    tmp_path: Path,
) -> None:
    records = messy_orders(RECORDS_BEFORE_WORKERS + 300)
    records[-1]["num_items"] = "three items"  # the last record; the schema says integer
    workers, alone = run_both_ways(tmp_path, singer_lines(records, state_every=1000))
    assert workers.returncode == alone.returncode == 1
    read = [run.summary["totals"]["records_read"] for run in (workers, alone)]
    assert read == [len(records) - 1] * 2


def test_a_failed_run_counts_no_record_after_the_bad_one_as_without_workers(
    tmp_path: Path,
) -> None:
    records = messy_orders(1200)
    records[600]["num_items"] = "three items"  # order 601, amid a chunk; the schema says integer
    workers, alone = run_both_ways(tmp_path, singer_lines(records, state_every=1000))
    assert workers.returncode == alone.returncode == 1
    counted = [
        {
            name: figures[name]
            for name in ("records_read", "events_mapped", "match_key_coverage", "dropped_values")
        }
        for figures in (run.summary["streams"][STREAM] for run in (workers, alone))
    ]
    assert counted[0] == counted[1]
    assert counted[0]["records_read"] == 600
    # a warning of events mapped but never sent would be about records never read
    assert [w for w in workers.summary["warnings"] if "not sent" in w] == [
        w for w in alone.summary["warnings"] if "not sent" in w
    ]


@pytest.mark.parametrize(
    ("record", "kind"), [(None, "null"), ([1, 2], "an array")], ids=["null", "array"]
)
def test_a_record_that_is_not_an_object_among_worker_records_fails_the_run_as_without_workers(
    tmp_path: Path, record: Any, kind: str
) -> None:
    _fails_as_without_workers(
        tmp_path,
        compact({**record_message({}), "record": record}),
        f"Input line {{line}}, stream '{STREAM}': 'record' is {kind}, not a JSON object",
    )


@pytest.mark.parametrize("message_type", [["RECORD"], {"name": "RECORD"}], ids=["array", "object"])
def test_a_message_type_that_is_no_text_is_refused_as_without_workers(
    tmp_path: Path, message_type: Any
) -> None:
    # a line the workers do not claim is checked for the claimed lines it must wait for: an
    # unhashable type there was a TypeError ("unhashable type: 'list'") naming no line
    lines = singer_lines(messy_orders(RECORDS_BEFORE_WORKERS + 100), state_every=1000)
    position = len(lines) - 1  # before the last STATE, after records the workers got
    lines.insert(position, compact({"type": message_type}))

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.failure == alone.failure
    assert workers.failure.startswith(
        f"target-meta-capi failed: Input line {position + 1}: its 'type' is "
    )


def test_events_breaking_metas_rules_are_dead_lettered_byte_for_byte_as_without_workers(
    tmp_path: Path,
) -> None:
    records = messy_orders(1200)
    eight_days_ago = iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8))
    too_old = list(range(50, 1201, 50))
    for order_id in too_old:
        records[order_id - 1]["created_at"] = eight_days_ago
    lines = singer_lines(records, state_every=200)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0
    letters = [json.loads(line) for line in workers.dead_letters.splitlines()]
    assert [int(letter["event_id"]) for letter in letters] == too_old
    assert {letter["rule"] for letter in letters} == {"event_time_too_old"}
    assert workers.dead_letters == alone.dead_letters
    assert workers.event_ids == sorted(set(range(1, 1201)) - set(too_old))
    assert workers.events == alone.events
    assert workers.states[-1] == alone.states[-1]


def test_field_outside_the_schema_is_warned_about_once_as_without_workers_and_delivered(
    tmp_path: Path,
) -> None:
    records = messy_orders(1200)
    for order_id in (300, 700, 1100):
        records[order_id - 1]["loyalty_tier"] = "gold"
    lines = singer_lines(records, state_every=200)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0
    warnings = workers.log("WARNING")
    assert [message for _, message in warnings].count(NO_SCHEMA_WARNING) == 1
    assert warnings == alone.log("WARNING")
    assert workers.event_ids == list(range(1, 1201))
    assert workers.events == alone.events


def test_events_are_sent_in_input_order_around_records_the_workers_give_back(
    tmp_path: Path,
) -> None:
    # a record given back (a field outside the schema) is processed by the main process
    # between the records that came before and after it in its chunk: two records past the
    # main process's first RECORDS_BEFORE_WORKERS, in two chunks
    records = messy_orders(1000)
    for order_id in (600, 900):
        records[order_id - 1]["loyalty_tier"] = "gold"
    # one request at a time: the payloads file is in the order the requests were made
    lines = singer_lines(records, state_every=1000)
    run = run_target(tmp_path, lines, 2, concurrent_requests=1)
    assert run.returncode == 0, run.stderr[-3000:]
    payloads = (tmp_path / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    sent = [
        int(event["event_id"]) for line in payloads for event in json.loads(line)["payload"]["data"]
    ]
    assert sent == list(range(1, 1001))


def test_a_run_started_with_stderr_closed_forks_its_workers_and_delivers_every_event(
    tmp_path: Path,
) -> None:
    records = messy_orders(RECORDS_BEFORE_WORKERS + 100)
    lines = singer_lines(records, state_every=100)

    run = run_target(tmp_path, lines, 2, stderr_closed=True)

    assert run.returncode == 0
    assert run.event_ids == list(range(1, len(records) + 1))
    assert bookmark(run.states[-1]) == len(records)


#: A target whose sink checks string formats with the SDK's validator; the workers' check none.
FORMAT_CHECKING_TARGET = textwrap.dedent(
    """
    from target_meta_capi.sink import EventSink
    from target_meta_capi.target import TargetMetaCapi

    class FormatCheckingSink(EventSink):
        validate_field_string_format = True

    class FormatCheckingTarget(TargetMetaCapi):
        default_sink_class = FormatCheckingSink

    FormatCheckingTarget.cli()
    """
)


def test_a_sink_class_checking_string_formats_keeps_every_record_from_the_workers(
    tmp_path: Path,
) -> None:
    email = {"type": ["string", "null"], "format": "email"}
    schema = {**generate.SCHEMA, "properties": {**generate.SCHEMA["properties"], "email": email}}
    records = messy_orders(RECORDS_BEFORE_WORKERS + 100)
    for record in records:
        record["email"] = f"customer{record['order_id']}@example.com"
    records[-1]["email"] = "no at sign"  # past the records the main process keeps
    lines = singer_lines(records, state_every=100, schema=schema)

    run = run_target(tmp_path, lines, 2, target_script=FORMAT_CHECKING_TARGET)

    assert run.returncode == 1, run.stderr[-3000:]
    assert f"input line {line_number_of(lines, len(records))}" in run.failure
    assert "'email' breaks the schema's 'format'" in run.failure
    assert "no at sign" not in run.stderr


def _converted_by_a_worker(record: dict[str, Any], *, validate: bool = True) -> bytes | None:
    """The event a worker's converter makes of the record's line; None: given back."""
    spec = StreamSpec(STREAM, generate.SCHEMA, ("order_id",), {"streams": ORDERS_MAPPING}, validate)
    line = compact(record_message(record)).encode()
    return StreamConverter(spec).convert([line]).events[0]


def test_a_worker_converts_a_record_breaking_its_schema_when_records_are_not_validated() -> None:
    record = {**messy_orders(1)[0], "status": 5}  # the schema says text
    assert _converted_by_a_worker(record, validate=False) is not None
    assert _converted_by_a_worker(record) is None


def test_a_worker_gives_a_record_without_its_key_property_back_to_the_main_process() -> None:
    record = messy_orders(1)[0]
    del record["order_id"]
    assert _converted_by_a_worker(record) is None


# --- a SCHEMA that changes mid-input ----------------------------------------------------------

STATUS_AS_INTEGER = {
    **generate.SCHEMA,
    "properties": {**generate.SCHEMA["properties"], "status": {"type": ["integer", "null"]}},
}


def orders_with_a_changed_schema() -> tuple[list[dict[str, Any]], list[str]]:
    """Orders 1..800 with a text status; a SCHEMA making status an integer; orders 801..1600
    with status codes, valid under the new schema only."""
    records = messy_orders(1600)
    for record in records[800:]:
        record["status"] = 2
    lines = singer_lines(records[:800], state_every=200)
    lines += singer_lines(records[800:], state_every=200, schema=STATUS_AS_INTEGER)
    return records, lines


def test_records_after_a_changed_schema_are_validated_against_the_new_schema(
    tmp_path: Path,
) -> None:
    _, lines = orders_with_a_changed_schema()

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0, workers.stderr[-3000:]
    assert workers.event_ids == list(range(1, 1601))
    assert workers.events == alone.events


def test_record_valid_only_under_the_replaced_schema_fails_after_the_change_as_without_workers(
    tmp_path: Path,
) -> None:
    records, _ = orders_with_a_changed_schema()
    records[1200]["status"] = "completed"  # order 1201
    lines = singer_lines(records[:800], state_every=200)
    lines += singer_lines(records[800:], state_every=200, schema=STATUS_AS_INTEGER)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.errors == alone.errors
    error = workers.failure
    assert f"input line {line_number_of(lines, 1201)}, stream '{STREAM}'" in error
    assert "'status'" in error


#: The command, noting the lines of each chunk sent to the workers, a line per chunk.
CHUNK_NOTING_TARGET = textwrap.dedent(
    """
    from target_meta_capi.record_workers import RecordWorkerPool
    from target_meta_capi.target import TargetMetaCapi

    submit = RecordWorkerPool.submit

    def submit_noted(pool, stream_id, lines, context):
        with open("chunks", "a", encoding="utf-8") as noted:
            noted.write(f"{len(lines)}\\n")
        return submit(pool, stream_id, lines, context)

    RecordWorkerPool.submit = submit_noted
    TargetMetaCapi.cli()
    """
)


def test_a_schema_sent_again_unchanged_leaves_the_workers_whole_chunks(tmp_path: Path) -> None:
    # a singer-sdk tap sends a child stream's SCHEMA before the records of each parent row,
    # many singer-python taps before each page: the workers were made to finish everything
    # they held at each one, in chunks of a page, slower than no workers at all
    records = messy_orders(RECORDS_BEFORE_WORKERS + 2 * CHUNK_LINES)
    lines = [compact(schema_message())]
    for index, record in enumerate(records, start=1):
        lines.append(compact(record_message(record)))
        if index % 50 == 0:
            lines.append(compact(schema_message()))
    lines.append(compact(generate.state_message(len(records))))

    run = run_target(tmp_path, lines, 2, target_script=CHUNK_NOTING_TARGET, input_from_file=True)

    assert run.returncode == 0, run.stderr[-3000:]
    assert run.event_ids == list(range(1, len(records) + 1))
    assert (tmp_path / "chunks").read_text().split() == [str(CHUNK_LINES)] * 2


# --- how RECORD lines are written ----------------------------------------------------------


def test_singer_python_style_lines_are_processed_by_the_workers_as_without_them(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(1200), state_every=200, encode=singer_python_style)
    assert lines[1].startswith('{"type": "RECORD", "stream": ')

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0
    assert WORKERS_LOG_LINE in workers.stderr
    assert workers.event_ids == list(range(1, 1201))
    assert workers.events == alone.events
    assert workers.stdout.splitlines()[-1] == alone.stdout.splitlines()[-1]


def test_lines_with_stream_before_type_are_processed_as_without_workers(tmp_path: Path) -> None:
    lines = singer_lines(messy_orders(1200), state_every=200, encode=stream_first)
    assert lines[1].startswith('{"stream":')

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0
    assert workers.event_ids == list(range(1, 1201))
    assert workers.events == alone.events
    assert workers.stdout.splitlines()[-1] == alone.stdout.splitlines()[-1]


# --- worker processes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode", [compact, singer_python_style], ids=["singer-sdk-lines", "singer-python-lines"]
)
def test_worker_killed_mid_run_fails_the_run_and_no_later_state_is_written(
    tmp_path: Path, encode: Encoder
) -> None:
    lines = singer_lines(messy_orders(2000), state_every=800, encode=encode)
    first_state = lines.index(encode(generate.state_message(800)))
    with live_target(tmp_path) as target:
        target.write(lines[: first_state + 1])
        wait_until(lambda: (tmp_path / "stdout").read_text() != "")  # state 800 is written
        killed = target.workers()[0]
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: process_start_time(killed) is None)  # dead, not only dying
        target.write(lines[first_state + 1 :])
        run = target.finish()

    assert run.returncode == 1
    assert LOST_WORKER.search(run.failure), run.failure
    assert [bookmark(state) for state in run.states] == [800]
    assert set(range(1, 801)) <= set(run.event_ids)


def test_a_worker_killed_while_it_holds_no_records_fails_the_run_saying_none_were_lost(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(1000), state_every=800)
    first_state = lines.index(compact(generate.state_message(800)))
    with live_target(tmp_path) as target:
        target.write(lines[: first_state + 1])
        wait_until(lambda: (tmp_path / "stdout").read_text() != "")  # state 800: all answered
        killed = target.workers()[0]
        os.kill(killed, signal.SIGKILL)
        # noticed while the tap is quiet: had the input ended first, the workers would have
        # held nothing to lose, and the run would rightly not fail
        wait_until(lambda: "stopped unexpectedly" in (tmp_path / "stderr").read_text())
        run = target.finish()

    assert run.returncode == 1
    assert LOST_WORKER.search(run.failure), run.failure
    assert "it held no records" in run.failure
    assert "the records it held were not sent" not in run.failure


def test_a_worker_killed_while_meta_is_slow_to_answer_ends_the_run_before_the_answer_comes(
    tmp_path: Path, sandbox_factory: Callable[..., SandboxServer]
) -> None:
    # one request of 100 events at a time, answered after ~30 s: the main process waits for
    # room in the window with the second batch, before its workers got a chunk (it processes
    # a stream's first 200 records itself): nothing tells it one of them is gone
    sandbox = sandbox_factory(latency_ms=30_000)
    lines = singer_lines(messy_orders(600), state_every=500)
    with live_target(
        tmp_path,
        dry_run=False,
        access_token=ACCESS_TOKEN,
        graph_url=sandbox.url,
        batch_size=100,
        concurrent_requests=1,
        request_timeout=120,
    ) as target:
        # the target stops reading while it waits: a full pipe must not block the test
        threading.Thread(target=target.write, args=(lines,), daemon=True).start()
        wait_until(lambda: sandbox.stats()["in_flight"] == 1)
        os.kill(target.workers()[0], signal.SIGKILL)
        target.process.wait(timeout=60)
        answered = sandbox.stats()["accepted_requests"]
        run = target.finish()

    assert answered == 0  # the run ended before Meta's first answer
    assert run.returncode == 1
    assert LOST_WORKER.search(run.failure), run.failure
    assert run.states == []  # no record is settled: no state passes one


FORK_REFUSED = "fork failed: Resource temporarily unavailable"
WORKER_THREAD_REFUSED = "a worker could not start a thread"


@pytest.mark.parametrize(
    # processes the user may have, threads included; the target takes six here: itself, two
    # workers, a thread in each and one watching them
    ("processes", "refused"),
    [
        (1, {FORK_REFUSED}),
        # the first worker, refused its thread, may end before the second fork, which then
        # succeeds and leaves that refusal to be the one seen
        (2, {FORK_REFUSED, WORKER_THREAD_REFUSED}),
        (4, {WORKER_THREAD_REFUSED}),
        (5, {"no thread could be started to watch them"}),
    ],
    ids=["first-fork", "second-fork", "a-worker-thread", "the-watching-thread"],
)
def test_workers_a_limit_on_processes_refuses_leave_the_records_to_the_main_process(
    processes: int, refused: set[str]
) -> None:
    lines = singer_lines(messy_orders(600), state_every=300)
    with tempfile.TemporaryDirectory() as directory:
        # one request at a time: the records before the first state are acknowledged before
        # the rest are sent, and its state line is written (both ready at once, only the
        # newest would be)
        config = dry_run_config(Path(directory), 2, concurrent_requests=1)
        completed = run_target_under_a_process_limit(processes, Path(directory), config, lines)
        run = Run(completed.returncode, completed.stdout, completed.stderr, Path(directory))
        event_ids = run.event_ids

    assert run.returncode == 0, run.stderr
    [warning] = [message for _, message in run.log("WARNING") if "Record workers" in message]
    reason = warning.removeprefix("Record workers could not be started (").split("): ")[0]
    assert reason in refused, warning
    assert warning.endswith("raise it, or set record_workers to 0.")
    assert "Traceback" not in run.stderr
    assert event_ids == list(range(1, 601))
    assert [bookmark(state) for state in run.states] == [300, 600]


#: The command, its forks refused for want of memory: ENOMEM, which a large process gets under
#: strict overcommit (vm.overcommit_memory=2), and no test machine can be made to give
FORK_SHORT_OF_MEMORY_TARGET = textwrap.dedent(
    """
    import errno, os
    from target_meta_capi.target import TargetMetaCapi

    def fork():
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    os.fork = fork
    TargetMetaCapi.cli()
    """
)


def test_workers_refused_for_want_of_memory_are_not_said_refused_by_a_limit_on_processes(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(600), state_every=300)

    run = run_target(tmp_path, lines, 2, target_script=FORK_SHORT_OF_MEMORY_TARGET)

    assert run.returncode == 0, run.stderr
    [warning] = [message for _, message in run.log("WARNING") if "Record workers" in message]
    assert warning.startswith(
        "Record workers could not be started (fork failed: Cannot allocate memory): "
    )
    assert "A limit on processes or memory refused them" in warning
    assert run.event_ids == list(range(1, 601))


def test_a_worker_killed_while_converting_a_chunk_is_an_error_naming_its_exit_code() -> None:
    # a fresh interpreter (forking from pytest's process is unsafe); the worker is stopped
    # (SIGSTOP) with the chunk sent, then killed before it could answer
    script = textwrap.dedent(
        """
        import os, signal
        from target_meta_capi.record_workers import RecordWorkerError, RecordWorkerPool

        pool = RecordWorkerPool(1)
        worker = pool._processes[0]
        os.kill(worker.pid, signal.SIGSTOP)
        pool.submit(0, [b"{}"], None)
        os.kill(worker.pid, signal.SIGKILL)
        try:
            pool.take_oldest()
        except RecordWorkerError as error:
            print(error)
        pool.close()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert LOST_WORKER.search(completed.stdout), completed.stdout


@pytest.mark.parametrize("bad_record", [False, True], ids=["finished-run", "failed-run"])
def test_worker_processes_are_gone_after_the_target_exits(tmp_path: Path, bad_record: bool) -> None:
    records = messy_orders(2000)
    if bad_record:
        records[1500]["total"] = "a lot"
    lines = singer_lines(records, state_every=500)
    with live_target(tmp_path) as target:
        target.write(lines[:2])
        workers = {pid: process_start_time(pid) for pid in target.workers()}
        target.write(lines[2:])
        run = target.finish()

    assert run.returncode == (1 if bad_record else 0)
    assert all(start_time is not None for start_time in workers.values())
    wait_until(lambda: all(process_start_time(pid) != started for pid, started in workers.items()))


def waits_on_a_socket(pid: int) -> bool:
    """Whether the process's main thread is blocked in a system call on a socket: for the
    target, sending a chunk to a record worker or waiting for one's answer."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
        # "<number> <first argument> ...": read, write, recvfrom ... take the descriptor first
        return os.readlink(f"/proc/{pid}/fd/{int(fields[1], 16)}").startswith("socket:")
    except (OSError, IndexError, ValueError):  # running, exited, or no descriptor there
        return False


def test_sigterm_to_the_whole_process_group_stops_the_run_as_one_to_the_target_alone(
    tmp_path: Path,
) -> None:
    # systemd stopping a service, or `kill -- -PGID`, signals the workers too, while the target
    # may be waiting for their answers: they must stay to give them, as for Ctrl-C
    lines = singer_lines(messy_orders(2600), state_every=800)
    first_state = lines.index(compact(generate.state_message(800)))
    with live_target(tmp_path) as target:
        target.write(lines[: first_state + 1])
        wait_until(lambda: (tmp_path / "stdout").read_text() != "")  # state 800 is written
        workers = target.workers()
        for worker in workers:  # busy: the target fills their queues and waits for an answer
            os.kill(worker, signal.SIGSTOP)
        target.write(lines[first_state + 1 :])
        wait_until(lambda: waits_on_a_socket(target.process.pid))
        for pid in (target.process.pid, *workers):
            os.kill(pid, signal.SIGTERM)
        for worker in workers:
            os.kill(worker, signal.SIGCONT)
        run = target.finish()

    assert run.returncode == 128 + signal.SIGTERM, run.errors
    assert run.errors == ["Received SIGTERM: stopped before the end of the input"]
    assert bookmark(run.states[0]) == 800
    assert all(set(range(1, bookmark(state) + 1)) <= set(run.event_ids) for state in run.states)


def test_workers_deliver_every_event_to_the_sandbox_and_write_the_final_state(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = 3000
    lines = singer_lines(messy_orders(records), state_every=1000)

    run = run_target(
        tmp_path, lines, 2, dry_run=False, access_token=ACCESS_TOKEN, graph_url=sandbox.url
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert WORKERS_LOG_LINE in run.stderr
    assert sandbox.stats()["events_received"] == records
    received = sorted(int(item["event"]["event_id"]) for item in sandbox.accepted_events())
    assert received == list(range(1, records + 1))
    assert bookmark(run.states[-1]) == records


def test_events_meta_rejects_are_isolated_and_dead_lettered_as_without_workers(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    rejected = ["7", "400", "401", "999"]
    lines = singer_lines(messy_orders(1000), state_every=250)
    (workers, alone), received = run_both_ways_to_sandboxes(
        sandbox_factory, tmp_path, lines, reject_event_ids=rejected
    )
    for events in received:
        assert sorted(events) == sorted(set(range(1, 1001)) - {int(i) for i in rejected})
    assert workers.returncode == 0, workers.stderr[-3000:]
    assert alone.returncode == 0, alone.stderr[-3000:]
    # in the order the answers came back, which the requests in flight at once decide
    letters = sorted_letters(workers.dead_letters)
    assert [letter["event_id"] for letter in letters] == sorted(rejected)
    assert {letter["reason"] for letter in letters} == {"meta_rejected"}
    # the same lines but for Graph's fbtrace_id, which is new for every answer
    assert [without_trace_id(letter) for letter in letters] == [
        without_trace_id(letter) for letter in sorted_letters(alone.dead_letters)
    ]
    assert bookmark(workers.states[-1]) == bookmark(alone.states[-1]) == 1000


def sorted_letters(dead_letters: bytes) -> list[dict[str, Any]]:
    return sorted(
        (json.loads(line) for line in dead_letters.splitlines()),
        key=lambda letter: letter["event_id"],
    )


def without_trace_id(letter: dict[str, Any]) -> dict[str, Any]:
    assert letter["meta_error"]["fbtrace_id"]
    return {**letter, "meta_error": {**letter["meta_error"], "fbtrace_id": None}}


def test_a_state_after_every_record_gives_the_same_states_and_events_as_without_workers(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(600), state_every=1)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 0, workers.stderr[-3000:]
    assert WORKERS_LOG_LINE in workers.stderr
    assert workers.events == alone.events
    for run in (workers, alone):
        bookmarks = [bookmark(state) for state in run.states]
        assert bookmarks == sorted(set(bookmarks))
        assert bookmarks[-1] == 600


@pytest.mark.parametrize("record_workers", [2, 0])
def test_a_state_is_written_while_the_tap_is_quiet(tmp_path: Path, record_workers: int) -> None:
    lines = singer_lines(messy_orders(700), state_every=300)
    second_state = lines.index(compact(generate.state_message(600)))
    with live_target(tmp_path, record_workers=record_workers) as target:
        # 600 records and their states, then nothing: the tap is busy elsewhere
        target.write(lines[: second_state + 1])
        wait_until(lambda: "600" in (tmp_path / "stdout").read_text())
        target.write(lines[second_state + 1 :])
        run = target.finish()

    assert run.returncode == 0
    assert [bookmark(state) for state in run.states][-2:] == [600, 700]


def progress_lines(directory: Path) -> int:
    return (directory / "stderr").read_text(encoding="utf-8").count(" Progress: ")


def test_progress_lines_come_while_the_tap_is_quiet_before_its_first_record(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(50), state_every=50)
    with live_target(tmp_path, progress_interval=0.05) as target:
        target.write(lines[:1])  # the SCHEMA; then the tap runs its query, for minutes maybe
        wait_until(lambda: progress_lines(tmp_path) >= 2, timeout=30)
        target.write(lines[1:])
        run = target.finish()

    assert run.returncode == 0, run.stderr[-3000:]
    assert WORKERS_LOG_LINE in run.stderr  # forked at the SCHEMA, before any progress line
    assert bookmark(run.states[-1]) == 50


def test_workers_are_forked_for_a_schema_that_comes_while_progress_lines_run(
    tmp_path: Path,
) -> None:
    # a first stream no worker can take (no mapping: skipped), a pause, then the orders
    skipped = {"type": "SCHEMA", "stream": "inventory", "schema": {"properties": {}}}
    lines = singer_lines(messy_orders(50), state_every=50)
    with live_target(tmp_path, progress_interval=0.05) as target:
        target.write([compact(skipped)])
        wait_until(lambda: progress_lines(tmp_path) >= 1, timeout=30)
        target.write(lines[:1])  # the workers are forked, and progress lines go on
        wait_until(lambda: WORKERS_LOG_LINE in (tmp_path / "stderr").read_text(), timeout=30)
        seen = progress_lines(tmp_path)
        wait_until(lambda: progress_lines(tmp_path) > seen, timeout=30)
        target.write(lines[1:])
        run = target.finish()

    assert run.returncode == 0, run.stderr[-3000:]
    assert WORKERS_LOG_LINE in run.stderr
    assert bookmark(run.states[-1]) == 50


def test_half_a_surrogate_pair_reaches_meta_as_the_replacement_character_as_without_workers(
    sandbox_factory: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    records = messy_orders(1000)
    cut = (150, 600, 601, 999)
    for order_id in cut:
        records[order_id - 1]["first_name"] = "Zoë\ud83d"
        records[order_id - 1]["user_agent"] = "Mozilla/5.0 (iPhone) \ud83d"
    lines = singer_lines(records, state_every=250, encode=ascii_compact)
    # a worker gets such a line, cannot decode it, and gives it back to the main process
    assert lines[line_number_of(lines, 600) - 1].startswith(record_line_prefixes(STREAM))
    (workers, alone), (with_workers, without) = run_both_ways_to_sandboxes(
        sandbox_factory, tmp_path, lines
    )

    assert workers.returncode == alone.returncode == 0, workers.stderr[-3000:]
    assert WORKERS_LOG_LINE in workers.stderr
    assert sorted(with_workers) == list(range(1, 1001))
    hashed_zoe = normalize_user_data({"fn": "Zoë"}).user_data["fn"]
    for order_id in cut:
        user_data = with_workers[order_id]["user_data"]
        assert user_data["client_user_agent"] == "Mozilla/5.0 (iPhone) \ufffd"
        assert user_data["fn"] == hashed_zoe
    assert with_workers == without
    assert bookmark(workers.states[-1]) == bookmark(alone.states[-1]) == 1000
    assert workers.log("WARNING") == alone.log("WARNING")
    assert "Replaced 8 lone UTF-16 surrogate(s)" in workers.stderr


def test_a_line_that_starts_as_a_record_but_gives_its_type_again_is_refused_either_way(
    tmp_path: Path,
) -> None:
    lines = singer_lines(messy_orders(900), state_every=300)
    # starts like a RECORD of the stream, so a worker gets it, but a decoder keeps the last
    # "type": handed back late, it would be a STATE out of its place
    odd = compact(record_message(messy_orders(1)[0]))[:-1] + ',"type":"STATE","value":{}}'
    position = lines.index(compact(generate.state_message(600))) + 1
    lines.insert(position, odd)

    workers, alone = run_both_ways(tmp_path, lines)

    assert workers.returncode == alone.returncode == 1
    assert workers.failure == alone.failure
    assert f"Input line {position + 1} starts as a RECORD" in workers.failure
    for run in (workers, alone):
        assert all(bookmark(state) <= 600 for state in run.states)


def test_records_of_two_streams_line_by_line_give_the_same_events_as_without_workers(
    tmp_path: Path,
) -> None:
    other = "public-orders-archive"
    lines = [compact(schema_message()), compact({**schema_message(), "stream": other})]
    for first, second in zip(messy_orders(700), messy_orders(700, seed=8), strict=True):
        lines.append(compact(record_message(first)))
        lines.append(compact({**record_message(second), "stream": other}))
    lines.append(compact(generate.state_message(700)))
    streams = {**ORDERS_MAPPING, other: ORDERS_MAPPING[STREAM]}

    workers, alone = run_both_ways(tmp_path, lines, streams=streams)

    assert workers.returncode == alone.returncode == 0, workers.stderr[-3000:]
    assert WORKERS_LOG_LINE in workers.stderr
    assert len(workers.events) == 1400
    assert workers.events == alone.events
    assert workers.states == alone.states


def test_a_record_of_a_stream_seen_once_does_not_hold_back_the_states_after_it(
    tmp_path: Path,
) -> None:
    # its line waits alone for a chunk of its stream that never fills; a file never runs dry
    rare = "public-orders-archive"
    records = messy_orders(20_000)
    lines = [compact(schema_message()), compact({**schema_message(), "stream": rare})]
    lines.append(compact({**record_message(messy_orders(1, seed=8)[0]), "stream": rare}))
    lines.extend(singer_lines(records, state_every=1000)[1:])
    streams = {**ORDERS_MAPPING, rare: ORDERS_MAPPING[STREAM]}
    input_file = tmp_path / "input.singer"
    input_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    config = write_config(tmp_path, dry_run_config(tmp_path, 2, streams=streams))

    with input_file.open("rb") as stdin:  # a file: unlike a pipe, it is never found dry
        completed = subprocess.run(
            [str(TARGET), "--config", str(config)],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    run = Run(completed.returncode, completed.stdout, completed.stderr, tmp_path)

    assert run.returncode == 0, run.stderr[-3000:]
    assert WORKERS_LOG_LINE in run.stderr
    assert len(run.states) > 1  # not only the last one, written at the end of the input
    assert bookmark(run.states[0]) < 20_000


def chunk_sizes_of_wide_records() -> list[int]:
    """Bytes of each chunk of lines sent to one worker, for 12 records of ~300 kB each."""
    pool = RecordWorkerPool(1)
    chunk_sizes: list[int] = []
    submit = pool.submit

    def recorded_submit(stream_id: int, lines: list[Line], context: Any) -> None:
        chunk_sizes.append(sum(map(len, lines)))
        submit(stream_id, lines, context)

    pool.submit = recorded_submit  # type: ignore[method-assign]
    records = ParallelRecords(
        pool,
        number=itertools.count().__next__,
        add_events=lambda *args: None,
        add_tally=lambda *args: None,
        reprocess=lambda *args: None,
        records_before_workers=0,
    )
    spec = StreamSpec(STREAM, generate.SCHEMA, ("order_id",), {"streams": ORDERS_MAPPING}, True)
    records.route(STREAM, spec, destination=None)
    padding = "x" * 300_000  # a wide row: a long text column
    try:
        for number, order in enumerate(messy_orders(12), start=1):
            line = compact(record_message({**order, "user_agent": padding})).encode()
            assert records.claim(line, number)
        records.flush()
    finally:
        records.close()
    return chunk_sizes


def test_lines_go_to_the_workers_in_chunks_of_at_most_a_mebibyte() -> None:
    # a fresh interpreter: forking from pytest's own process, which has threads, is unsafe
    # (Python 3.12+ warns that it "may lead to deadlocks in the child")
    script = (
        "from tests.test_record_workers import chunk_sizes_of_wide_records\n"
        "print(*chunk_sizes_of_wide_records())"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    chunk_sizes = [int(size) for size in completed.stdout.split()]
    assert sum(chunk_sizes) > 3 * CHUNK_BYTES
    assert max(chunk_sizes) < CHUNK_BYTES + 400_000  # a chunk is sent once it reaches 1 MiB


class _ChunkRecorder:
    """A RecordWorkerPool that forks nothing: keeps the chunks submitted, answers none."""

    size = 1
    pending = 0

    def __init__(self) -> None:
        self.streams: list[str] = []
        self.chunks: dict[str, list[Line]] = {}
        self.forgotten: list[int] = []

    def add_stream(self, spec: StreamSpec) -> int:
        self.streams.append(spec.stream)
        return len(self.streams) - 1

    def submit(self, stream_id: int, lines: list[Line], context: Any) -> None:
        self.chunks.setdefault(self.streams[stream_id], []).extend(lines)

    def oldest_ready(self) -> bool:
        return False

    def forget_stream(self, stream_id: int) -> None:
        self.forgotten.append(stream_id)


def _routing_to(
    pool: _ChunkRecorder, streams: list[str], *, records_before_workers: int = 0
) -> ParallelRecords:
    """A router claiming the streams' lines after their first `records_before_workers`
    records, in chunks of 10,000."""
    records = ParallelRecords(
        pool,  # type: ignore[arg-type]
        number=itertools.count(1).__next__,
        add_events=lambda *args: None,
        add_tally=lambda *args: None,
        reprocess=lambda *args: None,
        chunk_lines=10_000,
        records_before_workers=records_before_workers,
    )
    for stream in streams:
        spec = StreamSpec(stream, generate.SCHEMA, ("order_id",), {}, True)
        records.route(stream, spec, destination=None)
    return records


def test_a_stream_whose_schema_changes_before_workers_learned_it_leaves_nothing_to_forget() -> None:
    pool = _ChunkRecorder()
    records = _routing_to(pool, [STREAM], records_before_workers=100)
    records.unroute(STREAM)
    assert pool.streams == pool.forgotten == []


class _CountedScans(dict):
    """A routing table that counts the scans of its entries."""

    scans = 0

    def items(self) -> Any:
        type(self).scans += 1
        return super().items()

    def __iter__(self) -> Any:
        type(self).scans += 1
        return super().__iter__()


def test_claiming_a_line_of_one_of_many_interleaved_streams_scans_no_routing_table() -> None:
    # 200 streams whose lines come one after the other: finding each line's stream by trying
    # every stream's prefix made the main process the bottleneck (~50 µs a line)
    streams = [f"public-table_{index:03d}" for index in range(200)]
    pool = _ChunkRecorder()
    records = _routing_to(pool, streams)
    records._routes = _CountedScans(records._routes)
    lines: dict[str, list[Line]] = {stream: [] for stream in streams}
    number = 0
    for round_number in range(5):
        for stream in streams:
            message = {"type": "RECORD", "stream": stream, "record": {"order_id": round_number}}
            line = compact(message) if round_number % 2 else json.dumps(message)
            line = line.encode() if round_number < 3 else line
            lines[stream].append(line)
            number += 1
            assert records.claim(line, number)
        unrouted = compact({"type": "RECORD", "stream": "other", "record": {}}).encode()
        assert not records.claim(unrouted, number)

    assert _CountedScans.scans == 0
    records.flush()
    assert pool.chunks == lines


def test_streams_named_with_escapes_get_their_own_lines_and_no_other() -> None:
    # a name holding a quote or a backslash is escaped in the line: where it ends is found
    # by trying the prefixes, and a name that only starts the same is another stream
    streams = ['say "hi"', "back\\slash", "back", 'say "hi" again', "é"]
    pool = _ChunkRecorder()
    records = _routing_to(pool, streams[:3])
    claimed: dict[str, list[Line]] = {}
    for number, stream in enumerate(streams * 2, start=1):
        message = {"type": "RECORD", "stream": stream, "record": {"order_id": number}}
        for line in (compact(message).encode(), json.dumps(message, ensure_ascii=False)):
            if records.claim(line, number):
                claimed.setdefault(stream, []).append(line)
    records.flush()

    assert sorted(claimed) == sorted(streams[:3])
    assert pool.chunks == claimed


def test_a_line_cut_off_within_its_stream_name_is_left_to_the_main_process() -> None:
    # which refuses it as JSON that is not valid, naming its line
    records = _routing_to(_ChunkRecorder(), [STREAM])
    whole = compact(record_message({"order_id": 1}))
    cut = whole[: whole.index(STREAM) + 3]
    assert not records.claim(cut, 1)
    assert not records.claim(cut.encode(), 2)
    assert records.claim(whole, 3)


def test_no_worker_is_forked_when_no_stream_can_use_one(tmp_path: Path) -> None:
    # record metadata is added by the SDK's record path, which only the main process runs
    lines = singer_lines(messy_orders(500), state_every=250)

    run = run_target(tmp_path, lines, 2, add_record_metadata=True)

    assert run.returncode == 0, run.stderr[-3000:]
    assert "worker processes" not in run.stderr
    assert run.event_ids == list(range(1, 501))


# --- units -----------------------------------------------------------------------------------


def test_workers_can_be_forked_only_while_no_other_thread_runs() -> None:
    # a fresh interpreter: pytest's own process has threads of its own
    script = textwrap.dedent(
        """
        import threading
        from target_meta_capi.record_workers import can_fork_workers

        alone = can_fork_workers()
        stop = threading.Event()
        thread = threading.Thread(target=stop.wait)
        thread.start()
        with_a_thread = can_fork_workers()
        stop.set()
        thread.join()
        print(alone, with_a_thread, can_fork_workers())
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )

    assert completed.stdout.split() == ["True", "False", "True"]


def test_worker_sockets_hold_a_whole_chunk_so_it_passes_in_one_write() -> None:
    # a fresh interpreter: forking from pytest's own process, which has threads, is unsafe
    script = textwrap.dedent(
        """
        import os, socket
        from target_meta_capi.record_workers import RecordWorkerPool

        def send_buffer(fileno):
            with socket.socket(fileno=os.dup(fileno)) as end:
                return end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

        default_pair = socket.socketpair()
        pool = RecordWorkerPool(1)
        print(send_buffer(default_pair[0].fileno()), send_buffer(pool._connections[0].fileno()))
        pool.close()
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    default, widened = map(int, completed.stdout.split())
    if int(Path("/proc/sys/net/core/wmem_max").read_text()) < 1024 * 1024:
        pytest.skip("this kernel allows no socket buffer of 1 MB")

    assert widened >= 1024 * 1024 > default


def test_closing_the_pool_kills_a_worker_that_does_not_stop_instead_of_waiting_for_it() -> None:
    # a fresh interpreter, as above; the worker is stopped (SIGSTOP): it reads no "stop"
    script = textwrap.dedent(
        """
        import os, signal
        from target_meta_capi.record_workers import RecordWorkerPool

        pool = RecordWorkerPool(1)
        worker = pool._processes[0]
        os.kill(worker.pid, signal.SIGSTOP)
        pool.close()
        print(worker.exitcode)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(completed.stdout) == -signal.SIGKILL


def test_record_line_prefixes_match_the_lines_singer_sdk_and_singer_python_write() -> None:
    prefixes = record_line_prefixes(STREAM)
    record = {"order_id": 1, "email": "a@example.com"}
    singer_sdk_line = SimpleSingerWriter().serialize_message(
        RecordMessage(stream=STREAM, record=record)
    )
    singer_python_line = json.dumps({"type": "RECORD", "stream": STREAM, "record": record})

    assert singer_sdk_line.startswith(prefixes)
    assert singer_python_line.startswith(prefixes)


def test_record_line_prefixes_do_not_match_a_stream_whose_name_only_starts_the_same() -> None:
    line = SimpleSingerWriter().serialize_message(
        RecordMessage(stream=f"{STREAM}-archive", record={"order_id": 1})
    )

    assert not line.startswith(record_line_prefixes(STREAM))


def test_a_target_started_among_other_threads_processes_records_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from ._target_support import order_stream, orders_config, run_in_process

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        config = orders_config(
            "http://127.0.0.1:9",
            tmp_path,
            dry_run=True,
            record_workers=2,
            dry_run_path=str(tmp_path / "payloads.jsonl"),
        )
        with caplog.at_level("INFO"):
            result = run_in_process(config, order_stream(30, state_every=10))
    finally:
        stop.set()
        other.join()
    assert result.exit_code == 0
    assert result.states[-1] == {"bookmarks": {"public-orders": 30}}
    assert "record workers are forked only while no other thread runs" in caplog.text
    assert "worker processes" not in caplog.text
    assert result.target.stats.snapshot()["streams"]["public-orders"]["events_mapped"] == 30


def test_a_pool_left_open_at_exit_is_stopped_instead_of_hanging_the_interpreter() -> None:
    # Workers ignore SIGTERM, which is how multiprocessing ends its children at exit.
    script = (
        "from target_meta_capi.record_workers import RecordWorkerPool\n"
        "pool = RecordWorkerPool(2)\n"
        "print(*(process.pid for process in pool._processes))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    for pid in map(int, completed.stdout.split()):
        assert not Path(f"/proc/{pid}").exists()
