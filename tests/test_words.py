"""Counts with the noun agreeing (capi/_words.py)."""

from __future__ import annotations

import pytest

from target_meta_capi.capi._words import counted


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "0 events"), (1, "1 event"), (2, "2 events"), (1000, "1000 events")]
)
def test_only_a_count_of_one_takes_the_singular(count, expected):
    assert counted(count, "event") == expected


def test_a_plural_not_made_with_s_is_given():
    assert (counted(1, "retry", "retries"), counted(3, "retry", "retries")) == (
        "1 retry",
        "3 retries",
    )
