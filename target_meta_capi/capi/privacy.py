"""What of an event may be written where people read it: files, logs, reports.

Hashed customer information (SHA-256 digests) may; every other user_data value — IP address,
user agent, fbc/fbp cookies, unhashed ids — is personal data too, and is masked.
"""

from __future__ import annotations

from typing import Any

from .normalize import is_sha256_hex

MASK = "<redacted>"


def redact_user_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every user_data value that is not a SHA-256 digest masked."""
    user_data = event.get("user_data")
    if not isinstance(user_data, dict):
        return event
    return {**event, "user_data": {key: _mask(value) for key, value in user_data.items()}}


def _mask(value: Any) -> Any:
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, str) and is_sha256_hex(value):
        return value
    return MASK
