"""JSON read from an answer (its body, a header), which may hold anything at all."""

from __future__ import annotations

import json
from typing import Any


def answer_json(text: str | bytes) -> Any:
    """The JSON value `text` holds, or None when it holds none: not JSON, or nested past
    Python's recursion limit (100,000 "[" raise RecursionError, not ValueError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
