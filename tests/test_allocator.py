"""The CLI tunes glibc's malloc (see allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc settings")
def test_glibc_takes_one_arena_and_the_mmap_threshold() -> None:
    # in a fresh interpreter: the settings are process-wide
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from target_meta_capi.allocator import tune_malloc; print(tune_malloc())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"
