"""Meta's rate-limit usage headers: how close an app or business is to being throttled.

Graph adds them to most answers once enough calls were made. X-App-Usage (app tokens) holds
the app's `call_count`, `total_cputime` and `total_time`, each a percentage of its limit.
X-Business-Use-Case-Usage (system user tokens, which the Conversions API usually runs on) maps
each business id to a list of such entries, one per use case, plus
`estimated_time_to_regain_access` in minutes once the business is throttled. At 100% of any
of them Graph starts refusing calls (the throttling codes, errors.THROTTLE_CODES).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._answer_json import answer_json

APP_USAGE_HEADER = "x-app-usage"
BUSINESS_USAGE_HEADER = "x-business-use-case-usage"
USAGE_SHARES = ("call_count", "total_cputime", "total_time")


def regain_access_seconds(headers: Mapping[str, str]) -> float | None:
    """Meta's estimate of when a throttled business regains access, in seconds, or None.

    The longest `estimated_time_to_regain_access` of any entry counts (0 while not throttled).
    """
    longest = max(
        _numbers(_business_entries(headers), ("estimated_time_to_regain_access",)), default=0
    )
    return float(longest) * 60 if longest > 0 else None


def rate_limit_usage_percent(headers: Mapping[str, str]) -> float | None:
    """The highest share (percent) of any rate limit the answer reports as used, or None."""
    app = _header_json(headers, APP_USAGE_HEADER)
    entries = [*_business_entries(headers), *([app] if isinstance(app, dict) else [])]
    return max(_numbers(entries, USAGE_SHARES), default=None)


def _header_json(headers: Mapping[str, str], name: str) -> Any:
    value = next((value for key, value in headers.items() if key.lower() == name), None)
    return answer_json(value) if isinstance(value, str) else None


def _business_entries(headers: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    usage = _header_json(headers, BUSINESS_USAGE_HEADER)
    for entries in usage.values() if isinstance(usage, dict) else ():
        if isinstance(entries, list):
            yield from (entry for entry in entries if isinstance(entry, dict))


def _numbers(entries: Iterable[dict[str, Any]], keys: tuple[str, ...]) -> Iterator[float]:
    for entry in entries:
        for key in keys:
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # a whole number past any float: as unreadable as inf
                    continue
                if math.isfinite(number):
                    yield number
