"""The benchmarks stand on the package and the development tools, not on the test suite."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda path: path.name)
def test_a_benchmark_imports_nothing_from_the_tests_package(path: Path) -> None:
    from_tests = {module for module in _imported_modules(path) if module.split(".")[0] == "tests"}
    assert not from_tests


def test_the_pipeline_benchmark_starts_from_the_repository_root() -> None:
    completed = subprocess.run(
        [sys.executable, "benchmarks/pipeline.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--tap-postgres" in completed.stdout
