"""The event_id derived from a row, for an event no column gives one.

``event_id`` is the mapped or aliased column's value as text; otherwise it is derived from the
row so that the same row always gets the same id (and Meta deduplicates a resend): the first 32
hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces, integral numbers as
integers, other numbers as the float equal to them — or, for a decimal with more digits than a
float holds, as its exact digits in a text; date-times as their UTC moment, one without an
offset read as UTC) of ``[stream_name, [key property values…],
event_name]``, or, for a stream without key properties (or a record missing one), of
``[stream_name, {record without _sdc_* columns}, event_name]``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

EVENT_ID_HEX_DIGITS = 32


def _canonical(value: Any) -> Any:
    """The same data gives the same JSON whether numbers arrive as Decimal, float or int."""
    if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
        if math.isfinite(value) and value == int(value):
            return int(value)
        if isinstance(value, Decimal) and value.is_finite():
            return _canonical_decimal(value)
        return float(value)
    if isinstance(value, dt.datetime):
        return _utc_moment(value).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _utc_moment(value: dt.datetime) -> dt.datetime:
    """The moment in UTC, a time without offset read as UTC: a tap writes one moment in other
    forms (tap-postgres: a `timestamp` with +00:00 in a RECORD, without it in a BATCH file; a
    `timestamptz` in the session's zone), and the row's id must not change with the form."""
    if value.utcoffset() is None:
        return value.replace(tzinfo=dt.timezone.utc)
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        # past 9999-12-31 or before 0001-01-01 in UTC, which no datetime holds (a "valid
        # until" 9999-12-31 23:59:59 written west of UTC): its own form names it as uniquely
        return value


def _canonical_decimal(value: Decimal) -> float | str:
    """A non-integral decimal as the float holding exactly its value, as ids were always
    derived; otherwise (more digits than a float holds, or a whole number past its range) as
    exact text, so that two such values never share an id. Trailing zeros after the point do
    not count: 2.50 and 2.5 are the same value."""
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    text = format(value, "f")
    # a whole number past a float's range (1E+400) has no point, and its zeros are digits
    return text.rstrip("0") if "." in text else text


def deterministic_event_id(stream_name: str, row_identity: Any, event_name: str) -> str:
    """First 32 hex digits of SHA-256 of canonical JSON [stream, identity, event_name]."""
    text = json.dumps(
        [stream_name, _canonical(row_identity), event_name],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:EVENT_ID_HEX_DIGITS]
