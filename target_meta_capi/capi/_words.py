"""Words of messages and log lines: counts with the noun agreeing ("1 event", "2 events"), and
the kind of a JSON value as the JSON a user wrote names it ("an array", not "a list")."""

from __future__ import annotations

import decimal
import typing as t


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
