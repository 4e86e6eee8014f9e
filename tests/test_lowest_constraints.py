"""scripts/lowest_constraints.py: the pins `make test-lowest` installs, read from pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lowest_constraints.py"


def _constraints(tmp_path: Path, pyproject: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pyproject.toml"
    path.write_text(textwrap.dedent(pyproject))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60
    )


def test_each_dependency_and_extra_is_pinned_at_its_lower_bound(tmp_path: Path) -> None:
    completed = _constraints(
        tmp_path,
        """
        [project]
        dependencies = ["singer-sdk~=0.54,>=0.54.2", "msgspec~=0.18", "Requests >= 2.31"]
        [project.optional-dependencies]
        test = ["ruff==0.17.6"]
        """,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == [
        "singer-sdk==0.54.2",
        "msgspec==0.18",
        "Requests==2.31",
        "ruff==0.17.6",
    ]


def test_a_dependency_without_a_lower_bound_is_refused(tmp_path: Path) -> None:
    completed = _constraints(
        tmp_path,
        """
        [project]
        dependencies = ["requests>=2.31", "urllib3<3"]
        """,
    )

    assert completed.returncode != 0
    assert "'urllib3<3' needs a lower bound" in completed.stderr


def test_the_projects_own_dependencies_all_have_a_lower_bound() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stderr
    pins = completed.stdout.split()
    assert "singer-sdk" in [pin.partition("==")[0] for pin in pins]
    assert all(re.fullmatch(r"[\w.-]+==\d[\w.]*", pin) for pin in pins), pins
