"""What mapping one record gives: the event, with the values left out of it
(:class:`MappedEvent`), or the error naming stream, record and field (:class:`MappingError`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from target_meta_capi.capi.normalize import DroppedValue


class MappingError(ValueError):
    """A record cannot become an event. Names stream, record and field — never a PII value."""

    def __init__(self, stream: str, field: str, message: str, record_key: str | None = None):
        self.stream = stream
        self.field = field
        self.message = message
        self.record_key = record_key
        record = f"record {record_key}" if record_key else "record"
        super().__init__(f"stream {stream!r}, {record}, field {field!r}: {message}")


@dataclass(slots=True)  # not frozen: a frozen dataclass is slow to build, once per record
class MappedEvent:
    event: dict[str, Any]
    dropped: list[DroppedValue]
    event_id: str


NO_EVENT_NAME = (
    "no event name: map a column, or set streams.<stream>.event_name or default_event_name"
)
NO_EVENT_TIME = "no event time: map a column to event_time"
