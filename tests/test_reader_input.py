"""The reader takes stdin as bytes through a larger buffer: exactly the lines stdin holds.

A stdin pipe is widened to 1 MB, and when it runs dry the reader lets the tap write on for a
moment before reading again, instead of waking up for every line a tap writes and flushes.
"""

from __future__ import annotations

import io
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest

from target_meta_capi import reader as reader_module
from target_meta_capi.reader import (
    INPUT_GATHER_SECONDS,
    NumberedSingerReader,
    SingerInputError,
    TerminationRequested,
)

fcntl = pytest.importorskip("fcntl")

# a descriptor select() refuses (FD_SETSIZE is 1024), as it refuses a Windows pipe
_PAST_FD_SETSIZE = 1100
# CRLF and a lone CR, an accented name, a byte that is not UTF-8, a blank line, no final newline
RAW_INPUT = b'{"a": 1}\r\n{"b": "x\ry"}\n{"n": "Zo\xc3\xab"}\n\n{"bad": "\xff"}\n{"last": 2}'


def test_stdin_is_read_as_the_bytes_it_holds_split_at_newlines_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "input.singer"
    path.write_bytes(RAW_INPUT)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert list(NumberedSingerReader().default_input) == io.BytesIO(RAW_INPUT).readlines()


def test_lines_read_as_bytes_are_decoded_as_utf8_and_a_bad_byte_names_its_line() -> None:
    reader = NumberedSingerReader()
    seen: list[dict] = []
    lines = io.BytesIO(
        b'{"type": "STATE", "value": {"name": "Zo\xc3\xab"}}\n'
        b"\n"
        b'{"type": "STATE", "value": "\xff"}\n'
    )
    with pytest.raises(SingerInputError, match=r"^Input line 3 is not valid JSON"):
        reader.process_lines(lines, {"STATE": seen.append})
    assert seen == [{"type": "STATE", "value": {"name": "Zoë"}}]


def test_an_escaped_half_of_a_surrogate_pair_becomes_the_replacement_character() -> None:
    reader = NumberedSingerReader()
    seen: list[dict] = []
    lines = io.BytesIO(
        # half a pair, a whole pair, and an escaped backslash followed by "udc00"
        b'{"type": "STATE", "value": ["Zo\xc3\xab\\ud83d", "\\ud83d\\ude00", "\\\\udc00"]}\n'
        # half a pair, then a byte that is not UTF-8: still refused for that byte
        b'{"type": "STATE", "value": "\\udc00\xff"}\n'
    )
    with pytest.raises(SingerInputError, match=r"^Input line 2 is not valid JSON: it is not UTF-8"):
        reader.process_lines(lines, {"STATE": seen.append})
    assert seen == [{"type": "STATE", "value": ["Zoë\ufffd", "\U0001f600", "\\udc00"]}]
    assert (reader.lone_surrogates_replaced, reader.first_line_with_lone_surrogate) == (1, 1)


def test_a_stdin_without_a_file_is_read_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    replacement = io.StringIO('{"type": "STATE", "value": {}}\n')
    monkeypatch.setattr(sys, "stdin", replacement)
    assert NumberedSingerReader().default_input is replacement


@pytest.fixture
def stdin_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, io.BufferedWriter]]:
    """stdin is the read end of a fresh pipe; yields its descriptor and the tap's write end."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stdin, os.fdopen(write_end, "wb") as tap:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield read_end, tap


def _tap_writing_on_each_pause(reader: NumberedSingerReader, tap: io.BufferedWriter) -> None:
    """At each of the reader's pauses, the tap writes 50 more lines; after two, it ends."""
    batches = iter([[b'{"n": %d}\n' % n for n in range(first, first + 50)] for first in (1, 51)])

    def write_next_batch(wait_for_input: object) -> None:
        batch = next(batches, None)
        if batch is None:
            tap.close()
        else:
            tap.write(b"".join(batch))
            tap.flush()

    reader.on_input_pause = write_next_batch
    tap.write(b'{"n": 0}\n')
    tap.flush()


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_a_stdin_pipe_is_widened_so_the_tap_can_write_a_megabyte_ahead(
    stdin_pipe: tuple[int, io.BufferedWriter],
) -> None:
    read_end, _ = stdin_pipe
    assert NumberedSingerReader().default_input.fileno() == read_end
    assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) >= 1 << 20


@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_a_dry_pipe_is_read_again_after_the_tap_had_a_moment_to_write_on(
    stdin_pipe: tuple[int, io.BufferedWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = NumberedSingerReader()
    sleeps: list[tuple[float, bool]] = []
    # signals must still stop the reader during the pause: it counts as waiting for input
    monkeypatch.setattr(
        reader_module.time,
        "sleep",
        lambda seconds: sleeps.append((seconds, reader._waiting_for_input)),
    )
    _tap_writing_on_each_pause(reader, stdin_pipe[1])
    lines = list(reader.default_input)
    assert lines == [b'{"n": %d}\n' % n for n in range(101)]
    assert sleeps == [(INPUT_GATHER_SECONDS, True)] * 3


def test_a_file_on_stdin_is_neither_widened_nor_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "input.singer"
    path.write_bytes(b'{"n": 0}\n' * 3)
    sleeps: list[float] = []
    monkeypatch.setattr(reader_module.time, "sleep", sleeps.append)
    with path.open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert reader_module._widen_pipe(stdin.fileno()) is False
        assert len(list(NumberedSingerReader().default_input)) == 3
    assert sleeps == []


def test_stdins_reader_gives_the_descriptor_it_reads(
    stdin_pipe: tuple[int, io.BufferedWriter],
) -> None:
    read_end, _ = stdin_pipe
    assert NumberedSingerReader().default_input.fileno() == read_end


def _refuse_to_widen(descriptor: int, command: int, argument: int = 0) -> int:
    # what an unprivileged process asking for more than /proc/sys/fs/pipe-max-size gets
    raise PermissionError(1, "Operation not permitted")


@pytest.mark.parametrize("refused_by", ["the system", "the platform"])
def test_a_pipe_that_cannot_be_widened_is_read_as_soon_as_a_line_comes(
    stdin_pipe: tuple[int, io.BufferedWriter], monkeypatch: pytest.MonkeyPatch, refused_by: str
) -> None:
    # a 64 KB pipe would be full after a few ms of a fast tap: waiting would stall it
    if refused_by == "the system" and hasattr(fcntl, "F_SETPIPE_SZ"):
        monkeypatch.setattr(reader_module.fcntl, "fcntl", _refuse_to_widen)
    else:  # no F_SETPIPE_SZ (not Linux)
        monkeypatch.setattr(reader_module, "_widen_pipe", lambda descriptor: False)
    reader = NumberedSingerReader()
    sleeps: list[float] = []
    monkeypatch.setattr(reader_module.time, "sleep", sleeps.append)
    _tap_writing_on_each_pause(reader, stdin_pipe[1])
    assert len(list(reader.default_input)) == 101
    assert sleeps == []


def test_stdin_read_again_keeps_the_one_wake_pipe(
    stdin_pipe: tuple[int, io.BufferedWriter],
) -> None:
    read_end, _ = stdin_pipe
    reader = NumberedSingerReader()
    assert reader.default_input.fileno() == read_end
    wake_end = reader.wake_descriptor
    assert isinstance(wake_end, int)
    assert reader.default_input.fileno() == read_end
    assert reader.wake_descriptor == wake_end


@pytest.fixture
def stdin_pipe_select_cannot_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[io.BufferedWriter]:
    """stdin is a pipe at a descriptor select() refuses; yields the tap's write end."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= _PAST_FD_SETSIZE:
        if hard != resource.RLIM_INFINITY and hard <= _PAST_FD_SETSIZE:
            pytest.skip(f"at most {hard} open files allowed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (_PAST_FD_SETSIZE + 1, hard))
    read_end, write_end = os.pipe()
    os.dup2(read_end, _PAST_FD_SETSIZE)
    os.close(read_end)
    try:
        with os.fdopen(_PAST_FD_SETSIZE, "rb") as stdin, os.fdopen(write_end, "wb") as tap:
            monkeypatch.setattr(sys, "stdin", stdin)
            yield tap
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_stop_ends_a_blocking_read_of_a_stdin_select_cannot_watch_at_once(
    stdin_pipe_select_cannot_watch: io.BufferedWriter,
) -> None:
    # Nothing wakes a read blocked on the pipe but the signal handler's own exception; the
    # tap's line 5 s later would end the read otherwise.
    reader = NumberedSingerReader()
    tap = stdin_pipe_select_cannot_watch
    main_thread = threading.get_ident()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: reader.request_stop(signum))
    stop = threading.Timer(0.3, signal.pthread_kill, (main_thread, signal.SIGUSR1))
    line = threading.Timer(5, lambda: (tap.write(b"\n"), tap.flush()))
    started = time.monotonic()
    stop.start()
    line.start()
    try:
        with pytest.raises(TerminationRequested):
            list(reader.default_input)
        assert time.monotonic() - started < 4
    finally:
        for timer in (stop, line):
            timer.cancel()
            timer.join()
        signal.signal(signal.SIGUSR1, previous)


class _ReaderWithAStopLandingAfterItsLastCheck(NumberedSingerReader):
    """A signal lands right after the reader checked for a stop before it waits for the tap
    (in _Stdin.wait_for_input, for as long as it takes), before it counts as waiting for
    input."""

    landed = False

    def stop_if_requested(self) -> None:
        super().stop_if_requested()
        waits_for_the_tap = any(
            frame.f_code.co_name == "wait_for_input" and frame.f_locals["seconds"] == math.inf
            for frame, _ in traceback.walk_stack(None)
        )
        if not self.landed and waits_for_the_tap:
            self.landed = True
            signal.raise_signal(signal.SIGUSR1)


def test_a_stop_landing_just_before_the_wait_for_a_quiet_tap_ends_that_wait(
    stdin_pipe: tuple[int, io.BufferedWriter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler found the reader not waiting yet and only asked it to stop at its next
    # line, which a quiet tap may send in hours.
    monkeypatch.setattr(reader_module, "_widen_pipe", lambda descriptor: False)  # no gathering
    reader = _ReaderWithAStopLandingAfterItsLastCheck()
    tap = stdin_pipe[1]
    fed = threading.Event()

    def tap_writes_a_line_later() -> None:
        fed.set()
        tap.write(b"\n")
        tap.flush()

    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: reader.request_stop(signum))
    timer = threading.Timer(3, tap_writes_a_line_later)
    timer.start()
    try:
        with pytest.raises(TerminationRequested):
            list(reader.default_input)
        assert reader.landed
        assert not fed.is_set()  # stopped while the tap was quiet, not at its next line
    finally:
        signal.signal(signal.SIGUSR1, previous)
        timer.cancel()
        timer.join()


def _refusal_of(line: bytes) -> str:
    with pytest.raises(SingerInputError) as raised:
        NumberedSingerReader().process_lines(io.BytesIO(line), {"STATE": lambda message: None})
    return str(raised.value)


def test_a_line_starting_with_a_byte_order_mark_is_refused_saying_so() -> None:
    assert _refusal_of(b'\xef\xbb\xbf{"type": "STATE", "value": 1}\n').endswith(
        "(byte 0)): it starts with a byte order mark (BOM), which JSON does not allow"
    )


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_for_a_number_is_refused_saying_what_to_write_instead(number: str) -> None:
    line = f'{{"type": "STATE", "value": {{"total": {number}}}}}\n'.encode()
    assert _refusal_of(line).endswith(
        "): NaN and Infinity are no JSON numbers; the tap must write null for them"
    )


def test_nan_elsewhere_than_where_the_line_breaks_is_no_hint() -> None:
    line = b'{"type": "STATE", "value": "NaN" x}\n'
    assert _refusal_of(line) == (
        "Input line 1 is not valid JSON (JSON is malformed: expected ',' or '}' (byte 33))"
    )


def test_a_line_cut_short_is_refused_without_a_hint() -> None:
    assert _refusal_of(b'{"type": "STATE", "value": 1\n') == (
        "Input line 1 is not valid JSON (Input data was truncated)"
    )


def test_a_byte_that_is_not_utf8_is_placed_within_its_line() -> None:
    reader = NumberedSingerReader()
    line = b'{"type": "STATE", "value": {"email": "jane\xff@example.com"}}\n'
    position = line.index(b"\xff")
    with pytest.raises(SingerInputError) as raised:
        reader.process_lines(io.BytesIO(line), {"STATE": lambda message: None})
    assert str(raised.value) == (
        "Input line 1 is not valid JSON: it is not UTF-8 (invalid start byte at byte "
        f"{position} of the line)"
    )
    assert "jane" not in str(raised.value)


def test_a_text_line_holding_a_lone_surrogate_is_refused_as_not_utf8() -> None:
    # a caller's text stream, or bytes decoded with surrogateescape: \udcff stood for b"\xff"
    line = '{"type": "STATE", "value": {"email": "jane\udcff@example.com"}}\n'
    reader = NumberedSingerReader()
    with pytest.raises(SingerInputError) as raised:
        reader.process_lines(io.StringIO(line), {"STATE": lambda message: None})
    assert str(raised.value) == (
        "Input line 1 is not valid JSON: it is not UTF-8 (a lone surrogate at character "
        f"{line.index(chr(0xDCFF))} of the line)"
    )
    assert "jane" not in str(raised.value)


def test_a_line_not_utf8_is_named_so_when_its_json_breaks_before_the_byte() -> None:
    # msgspec before 0.23 refuses the JSON before it reaches the byte, as 0.23 refuses any
    # line that is not UTF-8: neither says where the byte is, which Python is asked
    line = b'{"type": "STATE",, "value": {"email": "jane\xff@example.com"}}\n'
    position = line.index(b"\xff")
    assert _refusal_of(line) == (
        "Input line 1 is not valid JSON: it is not UTF-8 (invalid start byte at byte "
        f"{position} of the line)"
    )


def test_a_line_with_half_a_surrogate_pair_nested_too_deeply_is_named_by_its_line() -> None:
    reader = NumberedSingerReader()
    # msgspec refuses the half pair first; the line, repaired, is then too deep to decode
    line = b'{"type": "STATE", "value": ["\\ud83d", ' + b"[" * 100_000 + b"]" * 100_000 + b"]}\n"
    with pytest.raises(SingerInputError) as raised:
        reader.process_lines(io.BytesIO(line), {"STATE": lambda message: None})
    assert str(raised.value) == (
        "Input line 1 is not valid JSON (it nests arrays and objects too deeply to be read)"
    )


def test_a_wait_for_input_longer_than_select_can_wait_ends_when_input_comes(
    stdin_pipe: tuple[int, io.BufferedWriter],
) -> None:
    # max_batch_wait_seconds 1e10 (centuries: "never"): select() alone cannot wait that long
    reader = NumberedSingerReader()
    tap = stdin_pipe[1]
    answers: list[bool] = []

    def wait_at_the_pause(wait_for_input: t.Callable[[float], bool]) -> None:
        tap.write(b'{"n": 1}\n')
        tap.close()
        answers.append(wait_for_input(1e10))

    reader.on_input_pause = wait_at_the_pause

    assert list(reader.default_input) == [b'{"n": 1}\n']
    assert answers == [True]
