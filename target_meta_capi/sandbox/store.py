"""Where the sandbox keeps accepted events: in memory, and optionally a JSONL and a SQLite file.

Each record is ``{"event": <event as received>, "params": <request parameters>}``; the
files add ``received_at`` (Unix seconds, float). Events are stored as received, i.e.
hashed exactly as the sender hashed them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from target_meta_capi.capi.request import OPTIONAL_PARAMETERS

#: The request's parameters the sandbox records: the path's, and the optional ones a client
#: sends beside its events
REQUEST_PARAM_NAMES = ("pixel_id", "api_version", *OPTIONAL_PARAMETERS)

_SQLITE_SCHEMA = (
    "\nCREATE TABLE IF NOT EXISTS events (\n"
    "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    received_at REAL NOT NULL,\n"
    + "".join(f"    {name} TEXT,\n" for name in REQUEST_PARAM_NAMES)
    + "    event_name TEXT,\n"
    "    event_time INTEGER,\n"
    "    event_id TEXT,\n"
    "    action_source TEXT,\n"
    "    event_json TEXT NOT NULL\n"
    ")\n"
)
_SQLITE_COLUMNS = (
    "received_at",
    *REQUEST_PARAM_NAMES,
    "event_name",
    "event_time",
    "event_id",
    "action_source",
    "event_json",
)
_SQLITE_INSERT = (
    f"INSERT INTO events ({', '.join(_SQLITE_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_SQLITE_COLUMNS))})"
)


_encode = msgspec.json.Encoder().encode

#: What the counts by test_event_code call the events sent without one
NO_TEST_EVENT_CODE = "(none)"
#: Meta counts an event_name + event_id once within 48 hours; duplicate counting forgets a key
#: this long after it was first seen
DEDUP_WINDOW_SECONDS = 48 * 3600
#: and remembers at most this many keys, forgetting the oldest first (~85 MB when full)
MAX_DEDUP_KEYS = 1_000_000


class RecordingFileError(Exception):
    """A recording file (``setting`` is record_jsonl or record_sqlite) cannot be opened."""

    def __init__(self, setting: str, path: str | Path, reason: str) -> None:
        super().__init__(f"{setting}: cannot open {path} ({reason})")
        self.setting = setting
        self.path = path
        self.reason = reason


class RecordingWriteError(Exception):
    """A request's events could not be written to a recording file (a full disk, say): they
    were recorded nowhere, neither in the files nor in memory and its counts."""

    def __init__(self, setting: str, path: str | Path, reason: str) -> None:
        super().__init__(f"{setting}: cannot write {path} ({reason})")
        self.setting = setting
        self.path = path
        self.reason = reason


def _same_file(first: str | Path, second: str | Path) -> bool:
    """Whether two paths name one file: spelled alike once resolved (``./x`` and ``x``, a
    symbolic link), or, when both exist, one file under two names (a hard link)."""
    if Path(first).resolve() == Path(second).resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist yet
        return False


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def event_id_text(event_id: Any) -> str | None:
    """An event_id as the sandbox compares it: as text, so ``42`` and ``"42"`` are the same id.

    A string is itself, anything else its JSON (``42`` -> ``"42"``, ``["x"]`` -> ``'["x"]'``);
    None when there is no event_id. The reject list and duplicate counting both use it.
    """
    if event_id is None or event_id.__class__ is str:
        return event_id
    return _encode(event_id).decode()


class EventStore:
    """Thread-safe; ``record`` is called once per accepted request with all its events."""

    def __init__(
        self,
        *,
        max_events_in_memory: int | None = None,
        jsonl_path: str | Path | None = None,
        sqlite_path: str | Path | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events_in_memory)
        # hashes of (event_name, event_id): enough to count what Meta would deduplicate;
        # also in the order first seen, with when (time.monotonic()), to forget them
        self._seen_event_keys: set[int] = set()
        self._seen_order: deque[int] = deque()
        self._seen_times: deque[float] = deque()
        self._dedup_window_seconds = DEDUP_WINDOW_SECONDS
        self._max_dedup_keys = MAX_DEDUP_KEYS
        self._reset_counts()
        self._jsonl: BinaryIO | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._jsonl_path = jsonl_path
        self._sqlite_path = sqlite_path
        if (
            jsonl_path is not None
            and sqlite_path is not None
            and _same_file(jsonl_path, sqlite_path)
        ):
            # SQLite would write its pages over the JSONL lines, and its file then fails a
            # JSONL reader: one of the two recordings would be lost
            raise RecordingFileError(
                "record_sqlite",
                sqlite_path,
                "the JSONL recording goes there: give each its own file",
            )
        if jsonl_path is not None:
            try:
                # unbuffered: what a failed write leaves is in the file, where it is cut off
                # again, not in a buffer that the next write or close() would flush
                self._jsonl = open(jsonl_path, "ab", buffering=0)  # noqa: SIM115
            except OSError as error:
                reason = error.strerror or str(error)
                raise RecordingFileError("record_jsonl", jsonl_path, reason) from None
        if sqlite_path is not None:
            try:
                self._sqlite = sqlite3.connect(str(sqlite_path), check_same_thread=False)
                self._sqlite.execute("PRAGMA journal_mode=WAL")
                self._sqlite.execute(_SQLITE_SCHEMA)
                self._sqlite.commit()
                mismatch = self._sqlite_table_mismatch()
            except sqlite3.Error as error:
                mismatch = str(error)
            if mismatch is not None:
                self.close()
                raise RecordingFileError("record_sqlite", sqlite_path, mismatch)

    def _sqlite_table_mismatch(self) -> str | None:
        """Why the file's ``events`` table cannot take the sandbox's rows, if it cannot.

        CREATE TABLE IF NOT EXISTS keeps a table another program or another version of the
        sandbox made: its rows would fail at every accepted request, not here.
        """
        assert self._sqlite is not None
        columns = {row[1] for row in self._sqlite.execute("PRAGMA table_info(events)")}
        missing = [name for name in _SQLITE_COLUMNS if name not in columns]
        if not missing:
            return None
        return f"its table events is not the sandbox's: no column {', '.join(missing)}"

    def _reset_counts(self) -> None:
        self._duplicate_events = 0
        self._events_without_event_id = 0
        self._by_event_name: Counter[str] = Counter()
        self._by_pixel_id: Counter[str] = Counter()
        self._by_test_event_code: Counter[str] = Counter()

    def record(self, events: list[dict[str, Any]], params: Mapping[str, Any]) -> None:
        """Record a request's events everywhere, or (RecordingWriteError) nowhere."""
        received_at = time.time()
        now = time.monotonic()
        with self._lock:
            # the files first: a write that fails leaves memory and the counts as they were,
            # so that they agree with the files about what was received
            self._write_files(events, params, received_at)
            self._by_pixel_id[str(params.get("pixel_id"))] += len(events)
            test_event_code = params.get("test_event_code") or NO_TEST_EVENT_CODE
            self._by_test_event_code[test_event_code] += len(events)
            by_event_name = self._by_event_name
            seen = self._seen_event_keys
            seen_order = self._seen_order
            seen_times = self._seen_times
            cutoff = now - self._dedup_window_seconds
            while seen_times and seen_times[0] <= cutoff:
                seen.discard(seen_order.popleft())
                seen_times.popleft()
            for event in events:
                self._events.append({"event": event, "params": params})
                # an accepted event has a non-empty string event_name (rules.validate_event)
                by_event_name[event["event_name"]] += 1
                event_id = event.get("event_id")
                if event_id is None:
                    self._events_without_event_id += 1
                    continue
                if event_id.__class__ is not str:
                    event_id = event_id_text(event_id)
                key = hash((event.get("event_name"), event_id))
                if key in seen:
                    self._duplicate_events += 1
                else:
                    seen.add(key)
                    seen_order.append(key)
                    seen_times.append(now)
                    if len(seen_order) > self._max_dedup_keys:
                        seen.discard(seen_order.popleft())
                        seen_times.popleft()

    def _write_files(
        self, events: list[dict[str, Any]], params: Mapping[str, Any], received_at: float
    ) -> None:
        jsonl_end = None
        if self._jsonl is not None:
            jsonl_end = self._write_jsonl(events, params, received_at)
        if self._sqlite is not None:
            try:
                self._write_sqlite(events, params, received_at)
            except sqlite3.Error as error:
                with contextlib.suppress(sqlite3.Error):
                    self._sqlite.rollback()
                if jsonl_end is not None:
                    self._cut_jsonl(jsonl_end)
                raise RecordingWriteError(
                    "record_sqlite", str(self._sqlite_path), str(error)
                ) from None

    def _write_jsonl(
        self, events: list[dict[str, Any]], params: Mapping[str, Any], received_at: float
    ) -> int:
        """Append the events' lines, whole or not at all; the file's size before them."""
        assert self._jsonl is not None
        # params and the timestamp are the same for the whole request: encode them once
        prefix = b'{"received_at":%r,"params":%s,"event":' % (received_at, _encode(params))
        lines = memoryview(b"".join(b"%s%s}\n" % (prefix, _encode(event)) for event in events))
        end = os.fstat(self._jsonl.fileno()).st_size
        try:
            while lines:  # an unbuffered write may write only part
                lines = lines[self._jsonl.write(lines) :]
        except OSError as error:
            # a part of a line would make the file unreadable from there on
            self._cut_jsonl(end)
            reason = error.strerror or str(error)
            raise RecordingWriteError("record_jsonl", str(self._jsonl_path), reason) from None
        return end

    def _cut_jsonl(self, size: int) -> None:
        assert self._jsonl is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self._jsonl.fileno(), size)

    def _write_sqlite(
        self, events: list[dict[str, Any]], params: Mapping[str, Any], received_at: float
    ) -> None:
        assert self._sqlite is not None
        request_columns = tuple(params.get(name) for name in REQUEST_PARAM_NAMES)
        self._sqlite.executemany(
            _SQLITE_INSERT,
            [
                (
                    received_at,
                    *request_columns,
                    _text_or_none(event.get("event_name")),
                    event.get("event_time") if type(event.get("event_time")) is int else None,
                    event_id_text(event.get("event_id")),
                    _text_or_none(event.get("action_source")),
                    _encode(event).decode(),
                )
                for event in events
            ],
        )
        self._sqlite.commit()

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted events, oldest first (the last ``limit`` ones if given)."""
        with self._lock:
            if limit is None or limit >= len(self._events):
                return list(self._events)
            return list(self._events)[-limit:] if limit > 0 else []

    def counts(self) -> dict[str, Any]:
        """Counts over every event recorded since the last clear (not only those in memory)."""
        with self._lock:
            return {
                "duplicate_events": self._duplicate_events,
                "events_without_event_id": self._events_without_event_id,
                "events_in_memory": len(self._events),
                "events_by_event_name": dict(self._by_event_name.most_common()),
                "events_by_pixel_id": dict(self._by_pixel_id.most_common()),
                "events_by_test_event_code": dict(self._by_test_event_code.most_common()),
            }

    def clear(self) -> None:
        """Forget events in memory, counts and the dedup history; recorded files are kept."""
        with self._lock:
            self._events.clear()
            self._seen_event_keys.clear()
            self._seen_order.clear()
            self._seen_times.clear()
            self._reset_counts()

    def close(self) -> None:
        with self._lock:
            if self._jsonl is not None:
                self._jsonl.close()
                self._jsonl = None
            if self._sqlite is not None:
                # WAL while it runs (reports read it meanwhile); once closed, an ordinary file:
                # one in WAL mode cannot be read in a directory the reader cannot write to,
                # and a reader leaves -wal and -shm files beside it. Left in WAL if a reader
                # holds it open now.
                with contextlib.suppress(sqlite3.Error):
                    self._sqlite.execute("PRAGMA journal_mode=DELETE")
                self._sqlite.close()
                self._sqlite = None
