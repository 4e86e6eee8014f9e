"""Counts in messages and log lines, with the noun agreeing: "1 event", "2 events"."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`count` and `singular`, or `plural` (by default `singular` + "s") unless it is 1.

    `singular` may carry the words that agree with the count ("event was", plural "events
    were"): then `plural` is given.
    """
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
