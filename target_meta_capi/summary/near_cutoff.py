"""Events close to Meta's event_time cutoff: still accepted, too old within a day."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from target_meta_capi.capi.rules import max_event_age_seconds

NEAR_CUTOFF_WINDOW_SECONDS = 24 * 3600


def is_near_cutoff(event: Mapping[str, Any], now: float) -> bool:
    """True when the event is still accepted but will be too old for Meta within 24 hours."""
    event_time = event.get("event_time")
    if type(event_time) is not int:
        return False
    cutoff = now - max_event_age_seconds(event.get("action_source"))
    return cutoff <= event_time < cutoff + NEAR_CUTOFF_WINDOW_SECONDS
