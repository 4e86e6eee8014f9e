"""The dead-letter file: one JSON line per event that Meta would not or did not accept.

Lines are deterministic (no timestamps) so two runs over the same input can be compared, and
carry only the wire event with its hashed customer data (every other user_data value, such as
the IP address and user agent, masked, and so is customer information a stream's mapping puts
outside user_data) and Meta's error fields — never raw PII, never the token.
A dead-lettered event is settled: state moves past it, so the line must be on disk before any
state that covers it is written (`sync()`).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import errno
import json
import os
import stat
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from target_meta_capi.capi.errors import GraphAPIError
from target_meta_capi.capi.normalize import MATCH_KEYS, DroppedValue
from target_meta_capi.capi.privacy import MASK, shown_event
from target_meta_capi.capi.rules import RuleViolation
from target_meta_capi.summary import (
    MAPPING_REASON_PREFIX,
    RULE_REASON_PREFIX,
    graph_error_reason,
)
from target_meta_capi.summary.summary_file import (
    FIFO_READER_WAIT_SECONDS,
    NoReaderError,
    open_for_appending,
)

DeadLetterReason = Literal["local_validation", "unmappable", "meta_rejected"]
#: The rule of a record whose value could not be turned into the event field it maps to.
UNMAPPABLE_VALUE_RULE = "unmappable_value"


@dataclass(frozen=True)
class DeadLetter:
    """One rejected event and why it was rejected."""

    stream: str
    key: Mapping[str, Any]
    event_id: str | None
    event_name: str | None
    reason: DeadLetterReason
    rule: str | None
    field: str | None
    message: str
    meta_error: Mapping[str, Any] | None
    # None when no event could be made of the record
    event: Mapping[str, Any] | None

    @classmethod
    def from_violations(
        cls,
        *,
        stream: str,
        key: Mapping[str, Any],
        event: Mapping[str, Any],
        violations: Sequence[RuleViolation],
        dropped: Sequence[DroppedValue] = (),
    ) -> DeadLetter:
        """An event that failed local validation; the first violation names rule and field.

        The values of user_data left out (`dropped`, by key and reason, never the value) say
        why an event has no customer information left, where the row had some."""
        first = violations[0]
        message = "; ".join(f"{v.field}: {v.message}" for v in violations)
        # user_data's own (a dotted key is another parameter's value, custom_data.value)
        left_out = [value for value in dropped if "." not in value.key]
        if left_out and any(v.field.startswith("user_data") for v in violations):
            # a key Meta does not know came from the row (an object column's): not named
            shown = ", ".join(
                dict.fromkeys(
                    f"{value.key} {value.reason}" if value.key in MATCH_KEYS else value.reason
                    for value in left_out
                )
            )
            message += f" (left out of user_data: {shown})"
        return cls(
            stream=stream,
            key=key,
            event_id=event.get("event_id"),
            event_name=event.get("event_name"),
            reason="local_validation",
            rule=first.rule,
            field=first.field,
            message=message,
            meta_error=None,
            event=event,
        )

    @classmethod
    def from_unmappable_record(
        cls,
        *,
        stream: str,
        key: Mapping[str, Any],
        event_name: str | None,
        field: str,
        message: str,
    ) -> DeadLetter:
        """A record that cannot become an event: a value its field cannot take ("12,50" for
        custom_data.value, 30 February in a text column mapped to event_time). The key says which
        row to fix."""
        return cls(
            stream=stream,
            key=key,
            event_id=None,
            event_name=event_name,
            reason="unmappable",
            rule=UNMAPPABLE_VALUE_RULE,
            field=field,
            message=message,
            meta_error=None,
            event=None,
        )

    @classmethod
    def from_meta_error(
        cls,
        *,
        stream: str,
        key: Mapping[str, Any],
        event: Mapping[str, Any],
        error: GraphAPIError,
    ) -> DeadLetter:
        """An event Meta rejected on its own (isolated by splitting its request)."""
        return cls(
            stream=stream,
            key=key,
            event_id=event.get("event_id"),
            event_name=event.get("event_name"),
            reason="meta_rejected",
            rule=None,
            field=None,
            message=error.message,
            meta_error=meta_error_fields(error),
            event=event,
        )

    def to_dict(self, masked_fields: Collection[Sequence[str]] = ()) -> dict[str, Any]:
        """The letter as written; `masked_fields`: paths of the event whose values are masked
        too (customer information a stream's mapping puts outside user_data). Meta's error
        texts come without them already: the request that sent them cut them out."""
        masked = {tuple(path) for path in masked_fields}
        return {
            "stream": self.stream,
            "key": dict(self.key),
            # the event's own, repeated: masked where the event's are
            "event_id": _masked_if(("event_id",) in masked, self.event_id),
            "event_name": _masked_if(("event_name",) in masked, self.event_name),
            "reason": self.reason,
            "rule": self.rule,
            "field": self.field,
            "message": self.message,
            "meta_error": dict(self.meta_error) if self.meta_error is not None else None,
            # hashed customer data only: the IP address and user agent are personal data too
            "event": (
                shown_event(dict(self.event), masked_fields) if self.event is not None else None
            ),
        }

    @property
    def summary_reason(self) -> str:
        """The reason as the run summary counts it: `rule:<name>`, `mapping:<field>` (a value
        the field cannot take), or Meta's answer as failed attempts are counted."""
        if self.reason == "unmappable":
            return f"{MAPPING_REASON_PREFIX}{self.field}"
        if self.meta_error is None:
            return f"{RULE_REASON_PREFIX}{self.rule}"
        return graph_error_reason(
            self.meta_error.get("http_status"),
            self.meta_error.get("code"),
            self.meta_error.get("error_subcode"),
        )


def meta_error_fields(error: GraphAPIError) -> dict[str, Any]:
    """Meta's error object, with Graph's own field names."""
    return {
        "http_status": error.http_status,
        "code": error.code,
        "error_subcode": error.subcode,
        "message": error.message,
        "error_user_title": error.user_title,
        "error_user_msg": error.user_message,
        "fbtrace_id": error.fbtrace_id,
    }


# A whole key beyond it is written as its text: as a JSON number, the digits of 1E+5000 are more
# than Python writes out, and those of 1E+999999 take minutes to compute.
_KEY_NUMBER_LIMIT = decimal.Decimal("1E+100")


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        # a key is how a person finds the row: as a number only when the number is exactly it
        if value.is_finite() and abs(value) < _KEY_NUMBER_LIMIT:
            if value == value.to_integral_value():
                return int(value)
            as_float = float(value)
            if decimal.Decimal(repr(as_float)) == value:
                return as_float
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def _masked_if(masked: bool, value: str | None) -> str | None:
    return MASK if masked and value is not None else value


def encode_dead_letter(letter: DeadLetter, masked_fields: Collection[Sequence[str]] = ()) -> str:
    """The JSONL line for a dead letter (without the newline)."""
    return json.dumps(letter.to_dict(masked_fields), ensure_ascii=False, default=_json_default)


class DeadLetterWriteError(Exception):
    """The dead-letter file cannot be written (disk full, no permission …): the run stops,
    and no state is written past the letters it could not keep."""


class DeadLetterWriter:
    """Appends dead letters to a JSONL file; safe to call from several threads.

    The file is opened on the first letter, so a clean run leaves no empty file behind, and
    in append mode, so a rerun never destroys the letters of an earlier run. A line that
    cannot be written whole is cut off again, so the file stays valid JSONL for that rerun.
    Runs in parallel may share the file: each appends under an advisory lock (flock).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._regular = True
        self._unsynced = False
        self._failure: str | None = None  # why the file could not be written, once it failed
        self.count = 0
        self._masked_fields: dict[str, frozenset[tuple[str, ...]]] = {}

    def mask_fields(self, stream: str, paths: Iterable[tuple[str, ...]]) -> None:
        """Mask these event paths in the stream's letters from now on, besides user_data's
        unhashed values: its mapping puts customer information there."""
        with self._lock:
            self._masked_fields[stream] = self._masked_fields.get(stream, frozenset()) | set(paths)

    def write(self, letter: DeadLetter) -> None:
        masked_fields = self._masked_fields.get(letter.stream, ())
        line = (encode_dead_letter(letter, masked_fields) + "\n").encode()
        with self._lock:
            if self._failure is not None:
                # at once: each letter would otherwise wait its turn for what failed the
                # first (a lock held, a FIFO's reader), while the run cannot go on anyway
                raise DeadLetterWriteError(self._failure)
            try:
                file = self._open()
                if self._regular:
                    with _held_exclusively(file):
                        _append_whole(file, line)
                else:
                    _append(file, line)
            except OSError as error:
                raise self._failed(error) from None
            self._unsynced = self._regular
            self.count += 1

    def _open(self) -> IO[bytes]:
        # callers hold self._lock
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                regular = stat.S_ISREG(os.stat(self.path).st_mode)
            except FileNotFoundError:
                regular = True
            # unbuffered: a line is in the file when write returns, or the call fails; readable
            # to find a regular file's last whole line
            if regular:
                self._file = self.path.open("a+b", buffering=0)
            else:
                # a FIFO without a reader: never an open() that waits for one without end
                descriptor = open_for_appending(self.path)
                self._file = open(descriptor, "ab", buffering=0)  # noqa: SIM115  # kept open
            # a pipe or device (/dev/stderr) has no size to mend and nothing to fsync
            self._regular = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        return self._file

    def sync(self) -> None:
        """Make written letters durable; called before writing a state that covers them."""
        with self._lock:
            if self._file is not None and self._unsynced:
                try:
                    os.fsync(self._file.fileno())
                except OSError as error:
                    raise self._failed(error) from None
                self._unsynced = False

    def close(self) -> None:
        with self._lock:
            if self._file is None:
                return
            file, self._file = self._file, None
            if self._failure is not None:  # what could be kept is on disk; the run failed
                with contextlib.suppress(OSError):
                    file.close()
                return
            try:
                if self._regular:
                    os.fsync(file.fileno())
            except OSError as error:
                raise self._failed(error) from None
            finally:
                with contextlib.suppress(OSError):
                    file.close()
            self._unsynced = False

    def _failed(self, error: OSError) -> DeadLetterWriteError:
        # callers hold self._lock
        if isinstance(error, NoReaderError):
            reason = f"a FIFO nobody reads within {FIFO_READER_WAIT_SECONDS:g} s"
            fix = "start its reader or set dead_letter_path to a file"
        elif error.errno == errno.EWOULDBLOCK:
            reason = f"{error.strerror} for {LOCK_WAIT_SECONDS:g} s"
            fix = "end what holds it (another run, a tool that locks it) or fix dead_letter_path"
        else:
            reason = error.strerror or str(error)
            fix = "free space or fix dead_letter_path"
        self._failure = (
            f"Cannot write the dead-letter file {self.path}: {reason}. No state is written "
            f"past the events it should have kept; {fix}, then rerun from the last state."
        )
        return DeadLetterWriteError(self._failure)


def _append(file: IO[bytes], line: bytes) -> None:
    unwritten = memoryview(line)
    while unwritten:
        unwritten = unwritten[file.write(unwritten) or 0 :]


def _append_whole(file: IO[bytes], line: bytes) -> None:
    """Append `line` to a regular file after its last whole line, or leave it as it was.

    Held exclusively, so the end is every writer's: runs in parallel may share the file. A half
    line there is a killed run's (its letter comes again when it reruns from its last state):
    it is cut off first. A whole letter there without its newline (written by another tool) is
    kept, and the newline added. A line this call cannot write whole is cut off again."""
    descriptor = file.fileno()
    end = os.fstat(descriptor).st_size
    start = _whole_lines_size(descriptor, end)
    if start < end and _is_whole_letter(os.pread(descriptor, end - start, start)):
        line = b"\n" + line
        start = end
    elif start < end:
        os.ftruncate(descriptor, start)
    try:
        _append(file, line)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, start)
        raise


#: How long a letter waits for another run's writer to let go of the file's lock: far
#: longer than appending a line takes, and within the grace period a signal gives.
LOCK_WAIT_SECONDS = 10.0


@contextlib.contextmanager
def _held_exclusively(file: IO[bytes]) -> Iterator[None]:
    """An advisory lock on the whole file, which other runs' writers take too (released if the
    process dies); where the platform has none, only this process's threads are kept apart."""
    if fcntl is None:
        yield
        return
    # never waited on without end: any user who can read the file (0644 by default) can
    # hold a lock on it, and a blocked flock() outlives SIGTERM and the grace period
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(errno.EWOULDBLOCK, "another process holds its lock") from None
            time.sleep(0.01)
    try:
        yield
    finally:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _is_whole_letter(text: bytes) -> bool:
    """Whether the text after a file's last newline is a whole JSON object, not half of one."""
    try:
        return isinstance(json.loads(text), dict)
    # UnicodeDecodeError is a ValueError: a character cut in two; a half line of many
    # nested objects may be too deep to parse
    except (ValueError, RecursionError):
        return False


def _whole_lines_size(descriptor: int, size: int, chunk: int = 1 << 16) -> int:
    """Bytes of the file of `size` bytes up to the end of its last whole line (a file ends with
    a newline)."""
    position = size
    if position == 0 or os.pread(descriptor, 1, position - 1) == b"\n":
        return position  # as nearly always: read no more than its last byte
    while position > 0:
        start = max(0, position - chunk)
        newline = os.pread(descriptor, position - start, start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0
