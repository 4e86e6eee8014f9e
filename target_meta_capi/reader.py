"""Reads Singer messages from stdin, counting lines so that every error can name its line.

Error messages never quote a line: it may hold customer data.
"""

from __future__ import annotations

import codecs
import contextlib
import decimal
import io
import json
import math
import os
import re
import select
import signal
import stat
import sys
import time
import typing as t
from collections import Counter, defaultdict

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

import msgspec
from singer_sdk.io_base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_meta_capi.capi._words import json_kind
from target_meta_capi.pace import PaceClock

# floats as Decimal, as the SDK's own reader does: money keeps its digits
input_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
_raw_decoder = msgspec.json.Decoder(msgspec.Raw)
# Singer lines are UTF-8 JSON: stdin is read as bytes, which msgspec decodes as they are, so
# no line is decoded to text and encoded back (for the record workers, twice). Its buffer is
# 1 MB: stdin's own reads 8 KB at a time, each read lets the sending threads take the GIL and
# the reading thread wait for it back. A read still returns what a pipe holds without waiting.
_INPUT_BUFFER_BYTES = 1 << 20

#: When a 1 MB stdin pipe runs dry, reading waits this long before the next read. singer-sdk
#: taps write and flush one line at a time, so a target faster than its tap would wake up
#: and read once per line: behind tap-postgres, 200,000 records came as ~28,000 chunks of
#: ~7 lines for the workers, and the target used 70% more CPU than from a file, taken from
#: the tap. A tap writes ~40 KB in 5 ms; a pipe of the default 64 KB would make it wait.
INPUT_GATHER_SECONDS = 0.005

#: The longest one select() waits; a longer wait (a max_batch_wait_seconds of centuries, for
#: "never") is waited in turns: select() refuses one beyond ~292 years (OverflowError).
_LONGEST_SELECT_SECONDS = 86400.0

#: A line of input: bytes from stdin, or text from a file object given instead.
Line: t.TypeAlias = "bytes | str"
#: Waits up to so many seconds for input; True when some came.
InputWait: t.TypeAlias = "t.Callable[[float], bool]"

# A string escape of half a UTF-16 surrogate pair ("\ud83d": an emoji cut in two when a
# column was truncated) is valid JSON and json.loads (singer-sdk's reader) takes it, but
# msgspec refuses the whole line, and no UTF-8 text for Meta can hold it. Escapes are matched
# one whole escape at a time from the left, so that in "\\ud83d" (an escaped backslash, then
# text) nothing is taken for a surrogate; a pair that is whole stays as it is.
_ESCAPE_PATTERN = (
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    r"|(u[dD][89a-fA-F][0-9a-fA-F]{2})|.)"
)
_ESCAPES: dict[type, re.Pattern[t.Any]] = {
    str: re.compile(_ESCAPE_PATTERN, re.DOTALL),
    bytes: re.compile(_ESCAPE_PATTERN.encode(), re.DOTALL),
}
_REPLACEMENT_ESCAPE = {str: "\\ufffd", bytes: b"\\ufffd"}


_ERROR_POSITION = re.compile(r"\(byte (\d+)\)")
_NON_JSON_NUMBERS = (b"NaN", b"Infinity", b"-Infinity")


def _likely_cause(line: Line, error: msgspec.DecodeError) -> str:
    """What a producer of Singer lines may have written where msgspec stopped: a byte order
    mark (a file saved by a Windows editor) or NaN/Infinity (Python's json.dumps writes them
    for float values, which singer-python taps may pass on); "" for anything else."""
    found = _ERROR_POSITION.search(str(error))
    if found is None:
        return ""
    position = int(found.group(1))  # in the line's UTF-8 bytes
    encoded = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    if position == 0 and encoded.startswith(codecs.BOM_UTF8):
        return ": it starts with a byte order mark (BOM), which JSON does not allow"
    if encoded.startswith(_NON_JSON_NUMBERS, position):
        return ": NaN and Infinity are no JSON numbers; the tap must write null for them"
    return ""


def replace_lone_surrogates(line: Line) -> tuple[Line, int]:
    """The line with each escaped lone surrogate replaced by the escape of U+FFFD (the same
    length, so a position in it is one in the line), and how many there were."""
    replacement = _REPLACEMENT_ESCAPE[type(line)]
    replaced = 0

    def replace(escape: re.Match) -> t.Any:
        nonlocal replaced
        if escape.group(1) is None:
            return escape.group(0)
        replaced += 1
        return replacement

    return _ESCAPES[type(line)].sub(replace, line), replaced


class SingerInputError(InvalidInputLine):
    """The input is not a valid Singer message stream; the message names the line."""


def assert_line_requires(
    message_dict: dict, requires: set[str] | frozenset[str], line_number: int
) -> None:
    """The one wording of a message without a key it must have, whichever the key ('type',
    read here; 'stream' and the others, read in messages.py): the SDK's own quotes the whole
    line, customer data included."""
    missing = requires.difference(message_dict)
    if missing:
        raise SingerInputError(
            f"Input line {line_number} lacks required key(s) "
            f"{', '.join(repr(key) for key in sorted(missing))}"
        )


class TerminationRequested(BaseException):
    """SIGTERM/SIGINT arrived: stop reading (a BaseException so no handler swallows it).

    Raised only where nothing is half done: at a line boundary, or while waiting for input.
    An exception raised anywhere a signal happens to land could leave a lock taken or a
    request counted but never settled (and the shutdown waiting for it).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"received signal {signal.Signals(signum).name}")
        self.signum = signum


class RecordRouter(t.Protocol):
    """Claims RECORD lines to process them elsewhere; gives back, in input order, what it
    cannot process (`NumberedSingerReader.reprocess_line`)."""

    def claim(self, line: Line, line_number: int) -> bool:
        """Take this line (True), or leave it to the reader (False)."""

    def flush(self) -> None:
        """Finish every claimed line (before a SCHEMA, at the end)."""


#: How RECORD lines begin as singer-sdk taps (compact JSON) and singer-python taps
#: (json.dumps) write them: the opening, the "stream" key, the separator after its value.
RECORD_LINE_LAYOUTS = (
    ('{"type":"RECORD"', ',"stream":', ","),
    ('{"type": "RECORD"', ', "stream": ', ", "),
)
# the messages singer-sdk dispatches, each a callback of _process_lines
_MESSAGE_TYPES = "SCHEMA, RECORD, STATE, BATCH or ACTIVATE_VERSION"
_RECORD_OPENINGS: dict[type, tuple[t.Any, ...]] = {
    str: tuple(opening for opening, _, _ in RECORD_LINE_LAYOUTS),
    bytes: tuple(opening.encode() for opening, _, _ in RECORD_LINE_LAYOUTS),
}
# Messages that need not wait for the claimed lines before them: a STATE covers them by the
# numbers they got when claimed, a record of another stream does not depend on them, and an
# ACTIVATE_VERSION is ignored. (Nor does a SCHEMA repeating its stream's last one: see
# `_repeats_schema`.)
_NO_WAIT_TYPES = frozenset({"STATE", "RECORD", "ACTIVATE_VERSION"})
_TYPE_KEY = frozenset({"type"})


_RECORD_STREAM_HEADS: dict[type, tuple[t.Any, ...]] = {
    str: tuple(opening + stream_key for opening, stream_key, _ in RECORD_LINE_LAYOUTS),
    bytes: tuple((opening + stream_key).encode() for opening, stream_key, _ in RECORD_LINE_LAYOUTS),
}
_STREAM_KEY: dict[type, t.Any] = {str: '"stream"', bytes: b'"stream"'}
_JSON_TEXT_DECODER = json.JSONDecoder()


def _stream_named_first(line: Line) -> t.Any:
    """The stream a RECORD line names right after its type, as a record router reads it (by
    the line's start); None when it names none there."""
    head = next((head for head in _RECORD_STREAM_HEADS[type(line)] if line.startswith(head)), None)
    if head is None:
        return None
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    try:
        return _JSON_TEXT_DECODER.raw_decode(text, len(head))[0]
    except ValueError:
        return None


def _shown_type(value: t.Any) -> str:
    """A message's "type" as an error names it: text quoted, another value by its JSON kind
    (not Python's repr, Decimal('5.5'); and a line's values are not quoted)."""
    return repr(value) if isinstance(value, str) else json_kind(value)


class _Stdin(io.RawIOBase):
    """stdin's file for the reader: tells it when reading would wait for the tap."""

    def __init__(
        self, descriptor: int, reader: NumberedSingerReader, *, gather_seconds: float = 0.0
    ) -> None:
        super().__init__()
        self._file = io.FileIO(descriptor, "rb", closefd=False)
        self._reader = reader
        self._gather_seconds = gather_seconds

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer: t.Any) -> int | None:
        if self.wait_for_input(0):
            self._reader.input_flows()
            with self._reader.waiting_for_input():
                return self._file.readinto(buffer)
        with self._reader.pace_clock.waiting_for("input"):
            self._reader.input_pauses(self.wait_for_input)
            with self._reader.waiting_for_input():
                if self._gather_seconds:
                    time.sleep(self._gather_seconds)
            self.wait_for_input(math.inf)
            with self._reader.waiting_for_input():
                return self._file.readinto(buffer)

    def wait_for_input(self, seconds: float) -> bool:
        """Whether input arrives within `seconds` (or end of input). A wait that is not 0
        answers wake-ups meanwhile: without that, what another thread must tell the reading
        one (a request failed for good) would wait for the tap's next line or the end of a
        partial batch's wait, however quiet the tap."""
        stdin = self._file.fileno()
        wake_end = self._reader.wake_descriptor
        watched = [stdin] if wake_end is None or seconds <= 0 else [stdin, wake_end]
        deadline = time.monotonic() + seconds
        while True:
            remaining = min(max(0.0, deadline - time.monotonic()), _LONGEST_SELECT_SECONDS)
            try:
                with self._reader.waiting_for_input():
                    readable = select.select(watched, [], [], remaining)[0]
            except (OSError, ValueError):  # select cannot watch this file here (Windows pipes)
                return seconds == 0
            if wake_end in readable:
                self._reader.woken()
            if stdin in readable:
                return True
            if time.monotonic() >= deadline:
                return False


def _widen_pipe(descriptor: int) -> bool:
    """Let the tap write up to 1 MB ahead while the target is busy; True if stdin is a pipe
    that holds that much now (Linux, within the system's pipe-max-size).

    A pipe holds 64 KB by default: ~70 wide records, which a tap writes in a few ms and then
    waits, however much CPU it could use meanwhile.
    """
    set_pipe_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # None without fcntl too
    if set_pipe_size is None:
        return False
    try:
        if not stat.S_ISFIFO(os.fstat(descriptor).st_mode):
            return False
        return fcntl.fcntl(descriptor, set_pipe_size, _INPUT_BUFFER_BYTES) >= _INPUT_BUFFER_BYTES
    except OSError:
        return False


def _is_one_json_value(line: bytes) -> bool:
    """Whether the line is one JSON value with nothing after it, in UTF-8 (read, not built:
    msgspec.Raw takes bytes inside a string as they are)."""
    try:
        _raw_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):  # too deep: its error is decoding's to say
        return False
    return _utf8_error(line) is None


def _utf8_error(line: Line) -> UnicodeDecodeError | None:
    """Why the line's bytes are not UTF-8; None when they are (or it is text already)."""
    if not isinstance(line, bytes):
        return None
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return error
    return None


class NumberedSingerReader(GenericSingerReader[str]):
    """Reads Singer messages with msgspec, counting lines so every error can name its line.

    Blank lines are skipped. Error messages never quote the line: it may hold customer data.
    """

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.messages_read = 0
        #: Keeps the time from finding stdin dry (and pausing, see `on_input_pause`) until the
        #: tap's next bytes came: the tap was the slower side then. The target shares its own.
        self.pace_clock = PaceClock()
        #: The stream and type ("RECORD", "SCHEMA" ...) of the message being processed; None
        #: when none is (before the first, between two, at the end of input).
        self.current_stream: str | None = None
        self.current_message_type: str | None = None
        #: Whether every input line was read: what fails now fails at the end of input.
        self.input_ended = False
        #: Takes RECORD lines to process elsewhere (record_workers.py), or None.
        self.record_router: RecordRouter | None = None
        #: Called when stdin has no line waiting, before reading waits for the tap, with a
        #: function that waits up to some seconds for input and says whether it came.
        self.on_input_pause: t.Callable[[InputWait], None] | None = None
        #: Called before a read of stdin that finds input waiting, between two lines (a read
        #: takes up to 1 MB, or a burst of a tap's lines): where work held back for later may
        #: be done while the input flows without a pause.
        self.on_input_flow: t.Callable[[], None] | None = None
        #: Called on the reading thread after `wake` (from any thread), at once if it waits
        #: for input, else when it next finds stdin dry.
        self.on_wake: t.Callable[[], None] | None = None
        #: Called with the error that ends reading, before it leaves `process_lines`.
        self.on_failure: t.Callable[[Exception], None] | None = None
        #: Whether an error is the input's own (a line to fix at the source): the record
        #: router's lines read before it are processed first, and may fail first.
        self.is_bad_input: t.Callable[[BaseException], bool] = lambda error: False
        #: Called with the signal that stopped reading, before `TerminationRequested` leaves
        #: `process_lines`.
        self.on_stop: t.Callable[[int], object] | None = None
        # (read end, write end) of the pipe that `wake` writes to, once stdin is read
        self._wake_pipe: tuple[int, int] | None = None
        self._stop_signal: int | None = None
        self._waiting_for_input = False
        self._callbacks: dict[str, t.Callable[[dict], None]] = {}
        #: Escaped lone surrogates replaced with U+FFFD (`replace_lone_surrogates`), and the
        #: first input line that had one: the run warns about them.
        self.lone_surrogates_replaced = 0
        self.first_line_with_lone_surrogate: int | None = None
        #: Each stream's last SCHEMA line processed.
        self._schema_lines: dict[str, Line] = {}

    @property
    def default_input(self) -> t.IO[t.Any]:
        stdin = sys.stdin
        try:
            descriptor = stdin.fileno()
        except (AttributeError, OSError, ValueError):  # replaced by an object without a file
            return stdin
        gather_seconds = INPUT_GATHER_SECONDS if _widen_pipe(descriptor) else 0.0
        if self._wake_pipe is None:
            self._wake_pipe = os.pipe()
            for end in self._wake_pipe:
                os.set_blocking(end, False)
        # lines end at b"\n" only, nothing translated: as sys.stdin's newline handling
        return io.BufferedReader(
            _Stdin(descriptor, self, gather_seconds=gather_seconds),
            buffer_size=_INPUT_BUFFER_BYTES,
        )

    @property
    def wake_descriptor(self) -> int | None:
        """What `wake` makes readable, once stdin is read."""
        return None if self._wake_pipe is None else self._wake_pipe[0]

    def wake(self) -> None:
        """From any thread or a signal handler: have the reading thread call `on_wake` (and
        check for a stop) if it waits for the tap, or when it next does."""
        pipe = self._wake_pipe  # once: `close_wake_pipe` may run meanwhile
        if pipe is not None:
            with contextlib.suppress(OSError):  # full already (BlockingIOError): woken anyway
                os.write(pipe[1], b"\0")

    def close_wake_pipe(self) -> None:
        """At the end of the run, once nothing may call `wake` any more: close its pipe. A
        process running the target in its own, reading stdin run after run, would otherwise
        keep two descriptors open for each run."""
        pipe, self._wake_pipe = self._wake_pipe, None
        if pipe is not None:
            for end in pipe:
                os.close(end)

    def woken(self) -> None:
        """On the reading thread: take the wake-ups and call `on_wake`."""
        assert self._wake_pipe is not None
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_pipe[0], 4096):
                pass
        if self.on_wake is not None:
            self.on_wake()

    def input_pauses(self, wait_for_input: InputWait) -> None:
        self.stop_if_requested()
        if self.on_input_pause is not None:
            self.on_input_pause(wait_for_input)

    def input_flows(self) -> None:
        if self.on_input_flow is not None:
            self.on_input_flow()

    def request_stop(self, signum: int) -> None:
        """From a signal handler: stop reading at the next safe point (now, if waiting)."""
        self._stop_signal = signum
        if self._waiting_for_input:
            raise TerminationRequested(signum)
        # It may have checked for a stop a moment ago and be about to wait for the tap: the
        # wake-up ends that wait, and the check after it stops reading.
        self.wake()

    def stop_if_requested(self) -> None:
        if self._stop_signal is not None:
            raise TerminationRequested(self._stop_signal)

    @contextlib.contextmanager
    def waiting_for_input(self) -> t.Iterator[None]:
        """A stretch where a signal may stop reading at once: blocked on stdin, nothing half
        done."""
        self.stop_if_requested()
        self._waiting_for_input = True
        try:
            yield
        finally:
            self._waiting_for_input = False

    def deserialize_json(self, line: Line) -> dict:  # type: ignore[override]
        message = self._decode_json(line)
        if not isinstance(message, dict):
            raise SingerInputError(
                f"Input line {self.line_number} is not a Singer message (a JSON object)"
            )
        return message

    def _decode_json(self, line: Line) -> t.Any:
        """The line's one JSON value; an error naming the line if it holds none."""
        try:
            message = input_decoder.decode(line)
        except msgspec.DecodeError as error:
            # only here, after msgspec refused the line: the lines that decode pay nothing.
            # msgspec 0.23 says "Invalid UTF-8 encoded string" without where; Python says where
            not_utf8 = _utf8_error(line)
            if not_utf8 is not None:
                raise self._not_utf8(not_utf8, line) from None
            message = self._decode_with_lone_surrogates_replaced(line, error)
        except UnicodeDecodeError as error:  # msgspec before 0.23
            raise self._not_utf8(error, line) from None
        except UnicodeEncodeError as error:
            raise self._text_not_utf8(error, line) from None
        except RecursionError:
            raise self._too_deep() from None
        return message

    def _decode_with_lone_surrogates_replaced(
        self, line: Line, error: msgspec.DecodeError
    ) -> t.Any:
        """The line decoded with U+FFFD for each escaped lone surrogate, if it had any and is
        valid JSON then; otherwise the error naming the line (the one after the replacement:
        its positions are the line's, and it is about what is still wrong)."""
        repaired, replaced = replace_lone_surrogates(line)
        if replaced:
            try:
                message = input_decoder.decode(repaired)
            except msgspec.DecodeError as still:
                error = still
            except UnicodeDecodeError as not_utf8:
                raise self._not_utf8(not_utf8, repaired) from None
            except RecursionError:
                raise self._too_deep() from None
            else:
                self.lone_surrogates_replaced += replaced
                # lines given back by record workers come later than lines read after them
                first = self.first_line_with_lone_surrogate
                self.first_line_with_lone_surrogate = min(
                    first or self.line_number, self.line_number
                )
                return message
        raise SingerInputError(
            f"Input line {self.line_number} is not valid JSON ({error}){_likely_cause(line, error)}"
        ) from None

    def _too_deep(self) -> SingerInputError:
        # msgspec decodes nested arrays and objects by recursing: a line nesting them thousands
        # deep is no Singer message, and must not read as a crash of the target
        return SingerInputError(
            f"Input line {self.line_number} is not valid JSON (it nests arrays and objects too "
            "deeply to be read)"
        )

    def _not_utf8(self, error: UnicodeDecodeError, line: Line) -> SingerInputError:
        # the message says where, never the bytes; the error's offset is within the string
        # value being decoded, so it is turned into one within the line
        value = error.object
        found = line.find(value) if isinstance(line, bytes) and isinstance(value, bytes) else -1
        where = f" at byte {found + error.start} of the line" if found >= 0 else ""
        return SingerInputError(
            f"Input line {self.line_number} is not valid JSON: it is not UTF-8 ({error.reason}"
            f"{where})"
        )

    def _text_not_utf8(self, error: UnicodeEncodeError, line: Line) -> SingerInputError:
        # a line given as text (a caller's text stream, stdin decoded with surrogateescape)
        # holding a lone surrogate: it stood for bytes that were not UTF-8, and has no UTF-8
        where = f" at character {error.start} of the line" if error.object is line else ""
        return SingerInputError(
            f"Input line {self.line_number} is not valid JSON: it is not UTF-8 (a lone "
            f"surrogate{where})"
        )

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        try:
            return self._process_lines(file_input, callbacks)
        except TerminationRequested as stop:
            if self.on_stop is not None:
                self.on_stop(stop.signum)
            raise
        except Exception as error:
            first = self._first_failure(error)
            if self.on_failure is not None:
                self.on_failure(first)
            if first is error:
                raise
            raise first from None  # not "during handling of" the later line's error

    def _process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        self._callbacks = callbacks
        counts: dict[str, int] = defaultdict(int)
        for line in file_input or self.default_input:
            if self._stop_signal is not None:
                raise TerminationRequested(self._stop_signal)
            self.line_number += 1
            if not line or line.isspace():  # as `not line.strip()`, without copying the line
                continue
            router = self.record_router
            if router is not None and router.claim(line, self.line_number):
                self.messages_read += 1
                counts["RECORD"] += 1
                continue
            message = self._decode(line)
            message_type = message.get("type")
            # a type that is no text (a list, an object) is unhashable: refused by _dispatch
            if (
                router is not None
                and not (message_type.__class__ is str and message_type in _NO_WAIT_TYPES)
                and not self._repeats_schema(line, message)
            ):
                router.flush()  # what it holds comes before this message
            counts[self._dispatch(message)] += 1
            self.messages_read += 1
            if message_type == "SCHEMA" and isinstance(stream := message.get("stream"), str):
                self._schema_lines[stream] = line
        self.input_ended = True
        if self.record_router is not None:
            self.record_router.flush()
        return Counter(counts)

    def _first_failure(self, error: Exception) -> Exception:
        """The input's first bad line's error. Bad input at a line the record router did not
        claim (a record of a stream it does not take, say) may come before lines it claimed
        are processed: one of them failing is the error to report, as without the router."""
        router = self.record_router
        if router is None or not self.is_bad_input(error):
            return error
        failing_line = self.line_number
        try:
            router.flush()
        except Exception as earlier:  # reported when it is bad input
            if self.is_bad_input(earlier):
                return earlier  # the reader stands at its line
        self.line_number = failing_line
        return error

    def failed_reading_a_line(self, error: BaseException) -> bool:
        """Whether `error` came from reading the next input line itself: a MemoryError for a
        line longer than the memory left, raised while the file's C code joins its parts.
        A line's processing happens in the functions the loop calls. The line it was reading
        is then `line_number + 1`."""
        innermost = error.__traceback__
        while innermost is not None and innermost.tb_next is not None:
            innermost = innermost.tb_next
        reading_loop = NumberedSingerReader._process_lines.__code__
        return innermost is not None and innermost.tb_frame.f_code is reading_loop

    def _repeats_schema(self, line: Line, message: dict) -> bool:
        """Whether this is a SCHEMA line the same as its stream's last one: singer-python taps
        send a stream's SCHEMA again before each page of records, singer-sdk taps a child
        stream's before the records of each parent row. The SDK ignores such a SCHEMA, so the
        record router's lines need not be finished first: waiting for them before every page
        left the workers idle, slower than none."""
        stream = message.get("stream")
        return (
            message.get("type") == "SCHEMA"
            and isinstance(stream, str)
            and self._schema_lines.get(stream) == line
        )

    def reprocess_line(self, line: Line, line_number: int) -> None:
        """Process a line the record router claimed and gives back, as if read now.

        An error then names that line; otherwise reading goes on where it was.
        """
        reading_at = self.line_number
        self.line_number = line_number
        self._dispatch(self._decode(line))
        self.line_number = reading_at

    def process_batch_record(
        self, stream: str, record_head: bytes, record_line: bytes, place: int
    ) -> None:
        """Process one line of a BATCH message's file as the RECORD message holding its record
        would be, at `place` (the BATCH's input line, naming the file and the line in it):
        claimed by the record router as such a line, or processed here.

        `record_head` is how a singer-sdk tap's RECORD line of the stream starts (through
        `"stream":…,`). A record line is put into it only once it is known to hold one JSON
        value and nothing after it: `{…},"stream":"other"` would otherwise make a line of
        another stream.
        """
        self.stop_if_requested()  # between two records of a file: nothing is half done
        reading_at = self.line_number
        self.line_number = place
        router = self.record_router
        claimed = False
        if router is not None:
            if _is_one_json_value(record_line):
                claimed = router.claim(record_head + b'"record":' + record_line + b"}", place)
            else:
                # processed here only after the lines the router claimed before it, as a line
                # it gives back is: the first line of the file to fail is the one named
                router.flush()
        if not claimed:
            record = self._decode_json(record_line)
            self._dispatch({"type": "RECORD", "stream": stream, "record": record})
        self.line_number = reading_at
        # a BATCH of a million records reads no stdin for minutes: between two of its records
        # is where half-full batches past max_batch_wait_seconds go out, as between two lines
        self.input_flows()

    def _decode(self, line: Line) -> dict:
        message = self.deserialize_json(line)
        if not line.startswith(_RECORD_OPENINGS[type(line)]):
            return message
        # Decoders keep the last value of a key given twice. A record router claims a line as
        # a RECORD of a stream by its start, and hands it back later: refused either way.
        if message.get("type") != "RECORD":
            raise SingerInputError(
                f'Input line {self.line_number} starts as a RECORD but gives the key "type" '
                f"again ({_shown_type(message.get('type'))}): a key given twice is ambiguous"
            )
        if line.count(_STREAM_KEY[type(line)]) > 1 and _stream_named_first(line) not in (
            None,
            message.get("stream"),
        ):
            raise SingerInputError(
                f'Input line {self.line_number} gives the key "stream" twice, naming different '
                "streams: a key given twice is ambiguous"
            )
        return message

    def _dispatch(self, message: dict) -> str:
        assert_line_requires(message, _TYPE_KEY, self.line_number)
        message_type = message["type"]
        if not isinstance(message_type, str):
            raise SingerInputError(
                f"Input line {self.line_number}: its 'type' is {json_kind(message_type)}, not "
                f"a message type (expected {_MESSAGE_TYPES})"
            )
        callback = self._callbacks.get(message_type)
        if callback is None:
            raise SingerInputError(
                f"Input line {self.line_number} has unknown message type {message_type!r} "
                f"(expected {_MESSAGE_TYPES})"
            )
        # a line given back by the record router is processed while another message may be
        # (a STATE draining the workers): that one's context holds again after it
        outer = (self.current_stream, self.current_message_type)
        stream = message.get("stream")
        self.current_stream = stream if isinstance(stream, str) else None
        self.current_message_type = message_type
        callback(message)
        # left as it was on an error, which then names this message
        self.current_stream, self.current_message_type = outer
        return message_type
