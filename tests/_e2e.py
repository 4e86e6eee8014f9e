"""End-to-end tests' prerequisites: where Meltano is, and what to do when one is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def skip_or_fail(reason: str) -> NoReturn:
    # `make test` and CI set E2E_REQUIRED=1: there a missing prerequisite is a failure, not a
    # quiet skip that would let the pipeline go untested.
    if os.environ.get("E2E_REQUIRED") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def find_meltano() -> str | None:
    """MELTANO_BIN, the .venv-meltano `make test` installs, or meltano on PATH."""
    candidates = [
        os.environ.get("MELTANO_BIN"),
        str(REPO_ROOT / ".venv-meltano/bin/meltano"),
        shutil.which("meltano"),
    ]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)
