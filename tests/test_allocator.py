"""The CLI asks glibc to give large freed blocks back to the system (see allocator.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_glibc_takes_the_mmap_threshold() -> None:
    # in a fresh interpreter: the setting is process-wide
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from target_meta_capi.allocator import keep_large_blocks_mmapped as k; print(k())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "True"
