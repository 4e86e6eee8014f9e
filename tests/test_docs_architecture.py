"""docs/architecture.md, the map of the code, names every module in the part about its half
(the client library, the target, the sandbox), so that a module added is a module mapped."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "target_meta_capi"
MAP = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
HEADINGS = {"capi": "## The client library", "sandbox": "## The sandbox"}
TARGET_HEADING = "## The target"


def _section(heading: str) -> str:
    start = MAP.index(heading)
    end = MAP.find("\n## ", start + len(heading))
    return MAP[start : end if end != -1 else len(MAP)]


def _modules() -> list[Path]:
    # private modules (_words.py, __init__.py, __main__.py) are parts of the ones named
    return sorted(path for path in PACKAGE.rglob("*.py") if not path.name.startswith("_"))


@pytest.mark.parametrize("module", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_is_named_in_the_part_of_the_code_map_about_its_half(module: Path) -> None:
    relative = module.relative_to(PACKAGE)
    heading = (
        HEADINGS.get(relative.parts[0], TARGET_HEADING)
        if len(relative.parts) > 1
        else TARGET_HEADING
    )

    assert f"`{module.name}`" in _section(heading)
