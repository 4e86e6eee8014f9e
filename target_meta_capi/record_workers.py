"""Record workers: forked processes that turn RECORD lines into checked, encoded events.

Decoding, validating, date parsing, mapping, hashing and checking Meta's rules cost ~25 µs of
Python per record (docs/performance.md), independently for each record, while one core holds
one Python thread at a time. Here that work runs in worker processes, for each stream once
the main process has processed its first `RECORDS_BEFORE_WORKERS` records itself (a stream
costs each worker a set-up that a few records do not pay back); the main process keeps what
must happen once: numbering records in the ack ledger (as they are read, so a STATE covers
them at once), batching, sending, dead letters and state.

The contract: for each line of a chunk a worker answers with the event encoded as JSON and
the record's key, or with None — "process this line yourself" — for anything but a clean
record of the stream (not a RECORD of it, invalid JSON, a schema violation, a field outside
the schema, an unparseable date, a missing key property, a mapping error, a broken rule of
Meta). The main process then processes that line exactly as it does without workers, under
the number it got when read and in its stream's order, so every error, warning and dead
letter is the same with or without them.

Workers are forked, so they start in milliseconds with every module loaded, and only from a
process with no other thread: a fork copies locks held by other threads, locked forever.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import json
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
import typing as t
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_ready
from multiprocessing.process import BaseProcess
from typing import Any

from singer_sdk.sinks import Sink

from target_meta_capi.capi.request import body_json
from target_meta_capi.delivery import TargetFailure
from target_meta_capi.mapping import build_event_mapper, reports_deleted
from target_meta_capi.reader import RECORD_LINE_LAYOUTS, Line, input_decoder
from target_meta_capi.settings import SECRET_SETTINGS
from target_meta_capi.sink import ConvertedRecord, EventSink, PrivacySafeValidator, convert_record
from target_meta_capi.summary import MappingTally, is_near_cutoff
from target_meta_capi.validation import CompiledRecordValidator, TimestampPlan, parse_timestamps

#: Lines per chunk: sending one costs ~1% of its work, and a STATE waits for at most
#: `CHUNKS_PER_WORKER` chunks per worker to come back (a few tens of ms).
CHUNK_LINES = 400
#: ... or fewer, when they come to this many bytes: memory is bounded by the lines gathered
#: per stream and chunks in flight, whatever the size of a line.
CHUNK_BYTES = 1024 * 1024
#: Chunks a worker holds at once: one at work, one queued, so it never waits for the next.
CHUNKS_PER_WORKER = 2
#: RECORD lines of a stream the main process processes itself before the workers get the
#: rest. Each worker compiles a stream's validator and mapping (~10 ms) before its first
#: record, which is what the main process spends on ~200 records, saved when workers do them:
#: a database's many small tables would cost the workers more than they save
#: (docs/performance.md, "Long, quiet and wide runs").
RECORDS_BEFORE_WORKERS = 200
MAX_WORKERS = 8
#: Asked of the kernel for each end of a worker's socket pair (it may give less).
SOCKET_BUFFER_BYTES = 2 * 1024 * 1024


class RecordWorkersUnavailable(Exception):
    """The workers could not be started: a fork or a thread was refused (a limit on processes,
    RLIMIT_NPROC or a container's pids limit, counts threads too; or memory short)."""


class RecordWorkerError(TargetFailure):
    """A worker process is gone (killed, out of memory): its chunks are lost, stop the run."""


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_worker_count() -> int:
    """One worker per CPU (the main process mostly waits for them); none on a single CPU.

    None by default outside Linux: macOS system libraries are not safe to use after a fork,
    which is why Python itself stopped forking there by default.
    """
    cpus = available_cpus()
    return 0 if cpus < 2 or not sys.platform.startswith("linux") else min(cpus, MAX_WORKERS)


def can_fork_workers() -> bool:
    """Forking is possible here and safe now: no thread but this one runs."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


def record_line_prefixes(stream: str) -> tuple[str, ...]:
    """How RECORD lines of `stream` start as singer-sdk taps and as singer-python taps write them.

    Lines written any other way are processed by the main process, so this only has to be
    right, not complete.
    """
    name = json.dumps(stream, ensure_ascii=False)
    return tuple(
        opening + stream_key + name + separator
        for opening, stream_key, separator in RECORD_LINE_LAYOUTS
    )


# What comes before and after the stream's name in a RECORD line, by type of line
_RECORD_HEADS: dict[type, tuple[tuple[t.Any, t.Any], ...]] = {
    str: tuple((opening + key, separator) for opening, key, separator in RECORD_LINE_LAYOUTS),
    bytes: tuple(
        ((opening + key).encode(), separator.encode())
        for opening, key, separator in RECORD_LINE_LAYOUTS
    ),
}
_QUOTE: dict[type, t.Any] = {str: '"', bytes: b'"'}
_BACKSLASH: dict[type, t.Any] = {str: "\\", bytes: b"\\"}


@dataclass(frozen=True)
class StreamSpec:
    """What a worker needs to process a stream's records as its sink does."""

    stream: str
    schema: dict[str, Any]
    key_properties: tuple[str, ...]
    config: dict[str, Any]
    validate: bool


def worker_spec(stream_name: str, sink: EventSink, config: Mapping[str, Any]) -> StreamSpec | None:
    """What workers need to process the stream as its sink would (a sink the SDK's stream
    maps pass records to unchanged); None when they cannot: record metadata, a validator
    other than theirs (a sink class checking string formats, say), or nothing to map."""
    if sink.mapper is None or sink.include_sdc_metadata_properties:
        return None
    validator = sink._validator
    if validator is not None and not (
        isinstance(validator, PrivacySafeValidator)
        and isinstance(validator.inner, CompiledRecordValidator)
    ):
        return None
    return StreamSpec(
        stream=stream_name,
        schema=sink.schema,
        key_properties=tuple(sink.key_properties),
        config={k: v for k, v in config.items() if k not in SECRET_SETTINGS},
        validate=validator is not None,
    )


@dataclass
class ConvertedChunk:
    """A worker's answer for one chunk: per line an encoded event and its key, or None; and
    the counts of the events between two lines answered None, one tally for each stretch
    (one more than the Nones): the main process counts a stretch only once it reached it, so
    that the lines after one it fails on are not counted as read, as without workers."""

    events: list[bytes | None]
    keys: list[dict[str, Any] | None]
    tallies: list[MappingTally]


class StreamConverter:
    """Worker side: one stream's RECORD lines → events, as the main process would make them."""

    def __init__(self, spec: StreamSpec) -> None:
        self._stream = spec.stream
        self._key_properties = spec.key_properties
        self._validator = CompiledRecordValidator(spec.schema) if spec.validate else None
        self._timestamps = TimestampPlan.for_schema(spec.schema)
        mapper = build_event_mapper(
            spec.stream,
            spec.key_properties,
            spec.config,
            schema_properties=tuple(spec.schema.get("properties") or ()),
        )
        # a stream is routed to workers only once its sink has a mapper, which it built from
        # these arguments (the config's secrets aside, which mapping reads none of)
        assert mapper is not None
        self._mapper = mapper

    def convert(self, lines: Sequence[Line]) -> ConvertedChunk:
        events: list[bytes | None] = []
        keys: list[dict[str, Any] | None] = []
        tally = MappingTally()
        tallies = [tally]
        now = time.time()
        for line in lines:
            try:
                converted = self._convert(line)
            except Exception:  # whatever it is, the main process reports it properly
                converted = None
            if converted is None or converted.violations:
                events.append(None)
                keys.append(None)
                tally = MappingTally()  # the next stretch's
                tallies.append(tally)
                continue
            event = converted.event
            events.append(body_json(event, check_types=False))  # the mapping's: JSON's types
            keys.append(converted.key)
            tally.event_mapped(event, converted.dropped, near_cutoff=is_near_cutoff(event, now))
        return ConvertedChunk(events, keys, tallies)

    def _convert(self, line: Line) -> ConvertedRecord | None:
        """The steps of the target's record path for a plain stream, or None to leave it."""
        message = input_decoder.decode(line)
        if (
            message.__class__ is not dict
            or message.get("type") != "RECORD"
            or message.get("stream") != self._stream
        ):
            return None
        record = message.get("record")
        if record.__class__ is not dict or reports_deleted(record):
            return None  # a deleted row is counted by the main process, not sent
        # the SDK's own list of metadata columns; the method reads nothing from its sink
        Sink._remove_sdc_metadata_from_record(None, record)  # type: ignore[arg-type]
        if self._validator is not None:
            self._validator.validate(record)
        timestamps = self._timestamps
        if not record.keys() <= timestamps.properties:
            return None  # the SDK warns about fields outside the schema
        parse_timestamps(record, timestamps, None, None)
        for key_property in self._key_properties:
            if key_property not in record:
                return None
        return convert_record(self._mapper, record)


def _unconverted(lines: Sequence[Line]) -> ConvertedChunk:
    nothing = MappingTally()  # one for every (empty) stretch: none is added to
    return ConvertedChunk([None] * len(lines), [None] * len(lines), [nothing] * (len(lines) + 1))


def _serve(connection: Connection, inherited: Sequence[Connection]) -> None:
    """A worker's life: learn streams, convert chunks, until told to stop or orphaned."""
    for other in inherited:
        other.close()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stdout carries the target's state only
    # A stop sent to the whole process group (Ctrl-C; SIGTERM from systemd or `kill -- -PGID`)
    # is the main process's to handle: it still needs these workers for the records it is
    # finishing, then stops them itself; a worker whose main process is gone exits at EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Receiving on a thread of its own: while this process sends an answer the main process
    # may be sending the next chunk, and two blocked senders would wait for each other.
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def receive() -> None:
        try:
            while True:
                inbox.put(connection.recv())
        except (EOFError, OSError):  # the main process is gone
            inbox.put(None)

    try:
        threading.Thread(target=receive, daemon=True).start()
    except RuntimeError:  # "can't start new thread" (a limit on processes): the pool sees
        return  # this worker end before it is ready, and records stay in the main process
    try:
        connection.send("ready")
    except OSError:  # the main process gave up on the workers: another could not start
        return
    converters: dict[int, StreamConverter | None] = {}
    while (message := inbox.get()) is not None:
        kind, stream_id, payload = message
        if kind == "lines":
            converter = converters.get(stream_id)
            answer = converter.convert(payload) if converter else _unconverted(payload)
            try:
                connection.send(answer)
            except OSError:  # the main process stopped listening: it has given up on us
                return
        elif kind == "stream":
            try:
                converters[stream_id] = StreamConverter(payload)
            except Exception:  # the main process then processes this stream itself
                converters[stream_id] = None
        elif kind == "forget":
            converters.pop(stream_id, None)
        else:  # "stop"
            return


def _widen_socket_buffers(connection: Connection) -> None:
    """Let a whole chunk or answer (~0.5 MB) pass in one write and one read.

    With the default ~200 KB, a message takes several reads, and a worker's receiving thread
    waits for the converting thread to let go of the GIL before each (~3% of a run).
    """
    with (
        contextlib.suppress(OSError),
        socket.fromfd(connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as end,
    ):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)


class RecordWorkerPool:
    """Forked worker processes; chunks go round-robin and come back in the order sent.

    `on_lost`, when given, is called (on a thread of the pool's) the moment a worker ends
    while the pool is open: the main process may be waiting for Meta's answers, minutes in
    an outage, before it next sends that worker a chunk or reads one back.
    """

    def __init__(
        self, workers: int, on_lost: Callable[[RecordWorkerError], None] | None = None
    ) -> None:
        context = multiprocessing.get_context("fork")
        pipes = [context.Pipe() for _ in range(workers)]
        for pair in pipes:
            for end in pair:
                _widen_socket_buffers(end)
        ours = [mine for mine, _ in pipes]
        theirs = [their for _, their in pipes]
        # Workers share what exists now (modules, config, schemas) copy-on-write; a garbage
        # collection, in a worker or in this process, would touch every object of it and
        # copy its pages (≈ 9 MB more memory over 200,000 records of the benchmark). Frozen
        # until the pool closes: a process running the target in its own, run after run,
        # would otherwise never collect garbage made of what was alive at a fork (a finished
        # run's target, its own objects). Not kept frozen for such a process if it froze
        # objects itself: whether it did cannot be told (Python 3.12 reports objects frozen
        # as modules load), and unfrozen objects cost memory, not correctness.
        self._frozen = True
        gc.freeze()
        # whatever sits in these buffers would be written once more by each child; either is
        # None when started with that descriptor closed (`2>&-`)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        self._processes: list[BaseProcess] = []
        self._connections = ours
        self._pending: deque[tuple[Connection, Any]] = deque()
        self._closing = False
        self._watcher: threading.Thread | None = None
        self._join_lock = threading.Lock()
        try:
            for index, connection in enumerate(theirs):
                inherited = ours + theirs[:index] + theirs[index + 1 :]
                process = context.Process(
                    target=_serve,
                    args=(connection, inherited),
                    name=f"target-meta-capi-record-worker-{index}",
                    daemon=True,
                )
                process.start()
                self._processes.append(process)
        except OSError as error:  # EAGAIN under a limit on processes, or ENOMEM
            for connection in theirs:
                connection.close()
            self.close()
            raise RecordWorkersUnavailable(f"fork failed: {error.strerror or error}") from None
        for connection in theirs:
            connection.close()
        # each worker says it is ready once its receiving thread runs; one that could not
        # start that thread has ended instead
        for connection in ours:
            try:
                connection.recv()
            except (EOFError, OSError):
                self.close()
                raise RecordWorkersUnavailable("a worker could not start a thread") from None
        if on_lost is not None:
            # a thread only now: the workers are forked, and forking with one running is unsafe
            watcher = threading.Thread(
                target=self._watch, args=(on_lost,), name="record-worker-watch", daemon=True
            )
            try:
                watcher.start()
            except RuntimeError:  # "can't start new thread"
                self.close()
                raise RecordWorkersUnavailable("no thread could be started to watch them") from None
            self._watcher = watcher
        # Workers ignore SIGTERM (see _serve), and multiprocessing ends the interpreter by
        # sending its children SIGTERM and joining them: a pool still open at exit (a path
        # that forgot close()) would hang the process. atexit runs this before that.
        atexit.register(self.close)
        self._turn = itertools.cycle(ours)
        self._stream_ids = itertools.count()

    @property
    def size(self) -> int:
        return len(self._connections)

    @property
    def pending(self) -> int:
        """Chunks sent and not taken back yet."""
        return len(self._pending)

    def add_stream(self, spec: StreamSpec) -> int:
        """Teach every worker a stream; chunks of it are then submitted under the id returned."""
        stream_id = next(self._stream_ids)
        self._send_all(("stream", stream_id, spec))
        return stream_id

    def forget_stream(self, stream_id: int) -> None:
        """Let workers drop a stream they learned, and its memos."""
        self._send_all(("forget", stream_id, None))

    def submit(self, stream_id: int, lines: list[Line], context: Any) -> None:
        """Send a chunk; `take_oldest` gives back its answer with `context`."""
        connection = next(self._turn)
        self._send(connection, ("lines", stream_id, lines))
        self._pending.append((connection, context))

    def oldest_ready(self) -> bool:
        """The answer to the oldest pending chunk has arrived."""
        return bool(self._pending) and self._pending[0][0].poll()

    def take_oldest(self) -> tuple[ConvertedChunk, Any]:
        """The answer to the oldest pending chunk (waits for it) and its context."""
        connection, context = self._pending.popleft()
        try:
            return connection.recv(), context
        except (EOFError, OSError):
            raise RecordWorkerError(self._describe_loss(self._process_of(connection))) from None

    def close(self) -> None:
        """Stop every worker (at the end of a run, or to give up on what they hold)."""
        self._closing = True  # before they end: the watching thread then knows they were told
        atexit.unregister(self.close)
        self._pending.clear()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.send(("stop", 0, None))
            connection.close()
        for process in self._processes:
            process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            # it ends as the workers do; still running, it would keep a process running the
            # target in its own from forking workers for its next run (`can_fork_workers`)
            self._watcher.join()
        if self._frozen:  # once: a later pool of the same process may have frozen again
            self._frozen = False
            gc.unfreeze()

    def _watch(self, on_lost: Callable[[RecordWorkerError], None]) -> None:
        """Wait, without polling, for any worker to end; report it unless told to stop."""
        ended = wait_for_ready([process.sentinel for process in self._processes])
        if not self._closing:
            lost = next(process for process in self._processes if process.sentinel in ended)
            theirs = self._connections[self._processes.index(lost)]
            # the tap may be quiet, every chunk answered: then it took no records with it
            held = any(connection is theirs for connection, _ in list(self._pending))
            on_lost(RecordWorkerError(self._describe_loss(lost, held=held)))

    def _send_all(self, message: tuple[str, int, Any]) -> None:
        for connection in self._connections:
            self._send(connection, message)

    def _send(self, connection: Connection, message: tuple[str, int, Any]) -> None:
        try:
            connection.send(message)
        except OSError:
            raise RecordWorkerError(self._describe_loss(self._process_of(connection))) from None

    def _process_of(self, connection: Connection) -> BaseProcess:
        return self._processes[self._connections.index(connection)]

    def _describe_loss(self, lost: BaseProcess, *, held: bool = True) -> str:
        # its pipe closes while it exits, a moment before its exit code can be read; one
        # thread at a time (the watching thread and the main process's may both describe
        # it): the waitpid of the second would fail, and it would read no exit code
        with self._join_lock:
            lost.join(timeout=1)
        codes = ", ".join(
            f"{process.name} exit code {process.exitcode}"
            for process in self._processes
            if process.exitcode is not None
        )
        lost_records = (
            "the records it held were not sent"
            if held
            else "it held no records, but those sent to it next would be lost: the run stops"
        )
        return (
            f"A record worker process stopped unexpectedly ({codes or 'no exit code yet'}); "
            f"{lost_records}. Check memory limits (an out-of-memory kill shows as exit code -9) "
            "and rerun from the last state."
        )


@dataclass(eq=False)
class _Route:
    """A stream routed to the workers, and its lines gathered for the next chunk."""

    stream: str
    prefixes: dict[type, tuple[t.Any, ...]]  # as text and as UTF-8, by type of line
    spec: StreamSpec
    destination: Any
    records_left_to_main: int  # before its lines are claimed
    stream_id: int | None = None  # once the workers learned the stream
    lines: list[Line] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    record_numbers: list[int] = field(default_factory=list)
    size: int = 0  # of the lines gathered

    def take_gathered(self) -> tuple[list[Line], list[int], list[int]]:
        gathered = (self.lines, self.line_numbers, self.record_numbers)
        self.lines, self.line_numbers, self.record_numbers = [], [], []
        self.size = 0
        return gathered


class ParallelRecords:
    """The reader's record router (reader.RecordRouter): leaves the first
    `records_before_workers` RECORD lines of each stream routed to it to the main process,
    then claims the stream's RECORD lines, numbers them in the ack ledger at once (`number`),
    so that a STATE read after them covers them without waiting, sends them to the pool in
    chunks of one stream, and hands the answers on in the order the chunks were sent — within
    a stream, input order: runs of events with their numbers to `add_events`, counts to
    `add_tally`, given-back lines with their line and record numbers to `reprocess`."""

    def __init__(
        self,
        pool: RecordWorkerPool,
        *,
        number: Callable[[], int],
        add_events: Callable[[Any, list[bytes], list[dict[str, Any]], list[int]], None],
        add_tally: Callable[[str, MappingTally], None],
        reprocess: Callable[[Line, int, int], None],
        chunk_lines: int = CHUNK_LINES,
        records_before_workers: int = RECORDS_BEFORE_WORKERS,
    ) -> None:
        self._pool = pool
        self._number = number
        self._add_events = add_events
        self._add_tally = add_tally
        self._reprocess = reprocess
        self._chunk_lines = chunk_lines
        self._records_before_workers = records_before_workers
        self._max_pending = CHUNKS_PER_WORKER * pool.size
        self._routes: dict[t.Any, _Route] = {}  # by line prefix, text and UTF-8
        self._last_route: _Route | None = None  # lines of one stream tend to come together

    def route(self, stream: str, spec: StreamSpec, destination: Any) -> None:
        """Claim the RECORD lines of `stream` once the main process processed the first ones
        (anew after a changed SCHEMA); their events go to `destination`."""
        text = record_line_prefixes(stream)
        prefixes: dict[type, tuple[t.Any, ...]] = {
            str: text,
            bytes: tuple(prefix.encode() for prefix in text),
        }
        route = _Route(stream, prefixes, spec, destination, self._records_before_workers)
        for prefix in (*prefixes[str], *prefixes[bytes]):
            self._routes[prefix] = route

    def unroute(self, stream: str) -> None:
        """Stop claiming the stream's lines (its schema is changing); workers forget it."""
        self.flush()
        for route in {route for route in self._routes.values() if route.stream == stream}:
            if route.stream_id is not None:
                self._pool.forget_stream(route.stream_id)
        self._routes = {
            prefix: route for prefix, route in self._routes.items() if route.stream != stream
        }
        self._last_route = None

    def claim(self, line: Line, line_number: int) -> bool:
        kind = line.__class__
        route = self._last_route
        if route is None or not line.startswith(route.prefixes[kind]):
            route = self._route_of(line)
            if route is None:
                return False
            self._last_route = route
        if route.stream_id is None and not self._to_workers(route):
            return False
        route.lines.append(line)
        route.line_numbers.append(line_number)
        route.record_numbers.append(self._number())
        route.size += len(line)
        if len(route.lines) >= self._chunk_lines or route.size >= CHUNK_BYTES:
            self._send(route, wait=True)
        return True

    def _to_workers(self, route: _Route) -> bool:
        """Whether this line of a stream the workers have not learned yet goes to them: the
        main process keeps a stream's first lines, so a stream of a few records costs the
        workers nothing, and the lines it processed reach the sink before any chunk."""
        if route.records_left_to_main > 0:
            route.records_left_to_main -= 1
            return False
        route.stream_id = self._pool.add_stream(route.spec)
        return True

    def _route_of(self, line: Line) -> _Route | None:
        """The route whose prefix starts the line, found by the line's own prefix: one lookup
        however many streams are routed (a scan of every prefix cost ~50 µs per line when 200
        streams came interleaved). Prefixes are whole JSON strings between fixed parts, so at
        most one matches a line."""
        kind = line.__class__
        quote, backslash = _QUOTE[kind], _BACKSLASH[kind]
        for head, separator in _RECORD_HEADS[kind]:
            if not line.startswith(head):
                continue
            end = line.find(quote, len(head) + 1)  # the stream name's closing quote...
            if end < 0:
                return None
            if backslash in line[len(head) : end]:  # ... unless it is escaped: look further
                return next(
                    (
                        candidate
                        for candidate in self._routes.values()
                        if line.startswith(candidate.prefixes[kind])
                    ),
                    None,
                )
            return self._routes.get(line[: end + 1 + len(separator)])
        return None

    def flush(self) -> None:
        for route in dict.fromkeys(self._routes.values()):
            if route.lines:
                self._send(route, wait=False)
        while self._pool.pending:
            self._apply_oldest()

    def close(self) -> None:
        """Give up on what the workers hold and stop them (after a failure or a signal)."""
        for route in self._routes.values():
            route.take_gathered()
        self._pool.close()

    def _send(self, route: _Route, *, wait: bool) -> None:
        assert route.stream_id is not None  # lines are gathered only once workers learned it
        lines, line_numbers, record_numbers = route.take_gathered()
        self._pool.submit(route.stream_id, lines, (route, lines, line_numbers, record_numbers))
        # apply what is back, and wait for the oldest while every worker has its fill
        while self._pool.oldest_ready() or (wait and self._pool.pending >= self._max_pending):
            self._apply_oldest()

    def _apply_oldest(self) -> None:
        chunk, (route, lines, line_numbers, record_numbers) = self._pool.take_oldest()
        # each stretch counted before its events go on: adding them may send batches, and a
        # failure or a signal while it waits for the window must not leave sent events
        # uncounted as read; and not before the line given back ahead of it is processed,
        # which may stop the run: then the records after that line were never read
        tallies = chunk.tallies
        self._add_tally(route.stream, tallies[0])
        events = chunk.events
        start = 0
        stretch = 0
        for index, event in enumerate(events):
            if event is None:
                if start < index:
                    self._add_run(route, chunk, record_numbers, start, index)
                self._reprocess(lines[index], line_numbers[index], record_numbers[index])
                stretch += 1
                if tallies[stretch].records:
                    self._add_tally(route.stream, tallies[stretch])
                start = index + 1
        if start < len(events):
            self._add_run(route, chunk, record_numbers, start, len(events))

    def _add_run(
        self, route: _Route, chunk: ConvertedChunk, numbers: list[int], start: int, stop: int
    ) -> None:
        self._add_events(
            route.destination,
            chunk.events[start:stop],  # type: ignore[arg-type]
            chunk.keys[start:stop],  # type: ignore[arg-type]
            numbers[start:stop],
        )
