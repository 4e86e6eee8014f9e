"""What of an event may be written where people read it: files, logs, reports.

Hashed customer information (SHA-256 digests) may; every other user_data value — IP address,
user agent, fbc/fbp cookies, unhashed ids — is personal data too, and is masked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .normalize import is_sha256_hex

MASK = "<redacted>"


def redact_user_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every user_data value that is not a SHA-256 digest masked."""
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        return event
    return {**event, "user_data": {key: _mask(value) for key, value in user_data.items()}}


def unhashed_user_data_values(event: Mapping[str, Any]) -> Iterator[str]:
    """The event's user_data values, as text, that `redact_user_data` masks: what a message
    quoting them (an error answer echoing the request) must not carry either."""
    user_data = event.get("user_data")
    if isinstance(user_data, dict):
        yield from _unhashed_texts(list(user_data.values()))


def _unhashed_texts(values: list[Any]) -> Iterator[str]:
    for value in values:
        if isinstance(value, list):
            yield from _unhashed_texts(value)
        elif value is not None and not _is_digest(value):
            yield value if isinstance(value, str) else str(value)


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return value if _is_digest(value) else MASK


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and is_sha256_hex(value)
