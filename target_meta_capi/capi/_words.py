"""Words of messages and log lines: counts with the noun agreeing ("1 event", "2 events"), and
the kind of a JSON value as the JSON a user wrote names it ("an array", not "a list"), and a
setting's value as its JSON wrote it."""

from __future__ import annotations

import decimal
import typing as t

import msgspec


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`count` and `singular`, or `plural` (by default `singular` + "s") unless it is 1.

    `singular` may carry the words that agree with the count ("event was", plural "events
    were"): then `plural` is given.
    """
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def json_kind(value: t.Any) -> str:
    """What kind of JSON value this is, without the value: it may be customer data."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float, decimal.Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a JSON object"
    # not read from JSON: made by a stream map's expression (a tuple, a datetime)
    return f"a {type(value).__name__}"


def shown_json(value: t.Any) -> str:
    """A setting's value as its JSON wrote it (1.0, ["website"], null), not as Python shows
    it (Decimal('1.0'), ['website'], None); text in quotes, as messages quote names."""
    if isinstance(value, str):
        return repr(value)
    try:
        # on one line, spaced as people write it: [1.5, 2.5]
        return msgspec.json.format(_JSON_ENCODER.encode(value), indent=0).decode()
    except (TypeError, msgspec.EncodeError):  # not from JSON: made in Python, shown as such
        return repr(value)


_JSON_ENCODER = msgspec.json.Encoder(decimal_format="number")
