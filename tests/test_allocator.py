"""The CLI asks glibc for one malloc arena (see allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_glibc_takes_the_arena_limit() -> None:
    # in a fresh interpreter: the setting is process-wide
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from target_meta_capi.allocator import use_one_malloc_arena as k; print(k())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"
