"""Recognizing a SHA-256 digest written as hex: normalization keeps one as given, Meta's
rules take one as hashed, and the privacy filter knows one is not raw customer data."""

from __future__ import annotations

import re

SHA256_HEX_PATTERN = re.compile(r"[0-9a-fA-F]{64}")


def is_sha256_hex(text: str) -> bool:
    return SHA256_HEX_PATTERN.fullmatch(text) is not None
