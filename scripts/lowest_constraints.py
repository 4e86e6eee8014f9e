"""Prints a pip constraints file that pins every dependency a pyproject.toml declares (its
extras' too) at its lower bound, for `make test-lowest`: a bound stays true only while something
installs it and runs the tests. A dependency without a lower bound is refused, since no
oldest version could be tested for it.

Usage: lowest_constraints.py [PYPROJECT]   (the project's own by default)
"""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# the operators whose version is the oldest allowed
LOWER_BOUND_OPERATORS = (">=", "~=", "==")


def lowest_pins(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    pins = []
    for text in declared:
        requirement = Requirement(text)
        bounds = [s.version for s in requirement.specifier if s.operator in LOWER_BOUND_OPERATORS]
        if not bounds:
            raise SystemExit(f"{pyproject.name}: {text!r} needs a lower bound")
        # "~=0.54,>=0.54.2": the highest of them is the oldest version allowed
        pins.append(f"{requirement.name}=={max(bounds, key=Version)}")
    return pins


if __name__ == "__main__":
    print("\n".join(lowest_pins(Path(sys.argv[1]) if len(sys.argv) > 1 else PYPROJECT)))
