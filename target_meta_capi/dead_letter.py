"""The dead-letter file: one JSON line per event that Meta would not or did not accept.

Lines are deterministic (no timestamps) so two runs over the same input can be compared, and
carry only the hashed wire event and Meta's error fields — never raw PII, never the token.
A dead-lettered event is settled: state moves past it, so the line must be on disk before any
state that covers it is written (`sync()`).
"""

from __future__ import annotations

import datetime
import decimal
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from target_meta_capi.capi.errors import GraphAPIError
from target_meta_capi.capi.rules import RuleViolation

DeadLetterReason = Literal["local_validation", "meta_rejected"]


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
    event: Mapping[str, Any]

    @classmethod
    def from_violations(
        cls,
        *,
        stream: str,
        key: Mapping[str, Any],
        event: Mapping[str, Any],
        violations: Sequence[RuleViolation],
    ) -> DeadLetter:
        """An event that failed local validation; the first violation names rule and field."""
        first = violations[0]
        return cls(
            stream=stream,
            key=key,
            event_id=event.get("event_id"),
            event_name=event.get("event_name"),
            reason="local_validation",
            rule=first.rule,
            field=first.field,
            message="; ".join(f"{v.field}: {v.message}" for v in violations),
            meta_error=None,
            event=event,
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "key": dict(self.key),
            "event_id": self.event_id,
            "event_name": self.event_name,
            "reason": self.reason,
            "rule": self.rule,
            "field": self.field,
            "message": self.message,
            "meta_error": dict(self.meta_error) if self.meta_error is not None else None,
            "event": self.event,
        }

    @property
    def summary_reason(self) -> str:
        """The reason as the run summary counts it: `rule:<name>`, `meta:<code>[/<subcode>]`."""
        if self.meta_error is None:
            return f"rule:{self.rule}"
        subcode = self.meta_error.get("error_subcode")
        code = self.meta_error.get("code")
        return f"meta:{code}" if subcode is None else f"meta:{code}/{subcode}"


def meta_error_fields(error: GraphAPIError) -> dict[str, Any]:
    """Meta's error object, with Graph's own field names."""
    return {
        "code": error.code,
        "error_subcode": error.subcode,
        "message": error.message,
        "error_user_title": error.user_title,
        "error_user_msg": error.user_message,
        "fbtrace_id": error.fbtrace_id,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def encode_dead_letter(letter: DeadLetter) -> str:
    """The JSONL line for a dead letter (without the newline)."""
    return json.dumps(letter.to_dict(), ensure_ascii=False, default=_json_default)


class DeadLetterWriter:
    """Appends dead letters to a JSONL file; safe to call from several threads.

    The file is opened on the first letter, so a clean run leaves no empty file behind, and
    in append mode, so a rerun never destroys the letters of an earlier run.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._unsynced = False
        self.count = 0

    def write(self, letter: DeadLetter) -> None:
        line = encode_dead_letter(letter)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(line + "\n")
            self._file.flush()
            self._unsynced = True
            self.count += 1

    def sync(self) -> None:
        """Make written letters durable; called before writing a state that covers them."""
        with self._lock:
            if self._file is not None and self._unsynced:
                os.fsync(self._file.fileno())
                self._unsynced = False

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
                self._unsynced = False
