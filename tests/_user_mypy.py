"""mypy --strict on a user's program that imports this checkout's client library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mypy_strict(program: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """mypy --strict's verdict on `program` alone: the library is looked at for its types, its
    own errors left out (as for an installed package), where the lowest versions' environment
    lacks the stubs of requests. `cache` is mypy's cache directory."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(cache), str(program)],
        capture_output=True,
        text=True,
        cwd=program.parent,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # this checkout's package, not another
    )  # fmt: skip
