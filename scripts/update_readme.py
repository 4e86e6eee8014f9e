"""Regenerate the README's generated sections from the code, so they cannot drift.

    .venv/bin/python scripts/update_readme.py          # rewrite README.md in place
    .venv/bin/python scripts/update_readme.py --check  # exit 1 if README.md is stale

Sections: the settings table (`target-meta-capi --about --format=markdown`) and the alias
table (`target_meta_capi.mapping.ALIASES`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from target_meta_capi.mapping import ALIASES

README = Path(__file__).resolve().parent.parent / "README.md"
_RUN_CLI = "from target_meta_capi.target import TargetMetaCapi; TargetMetaCapi.cli()"


def settings_table() -> str:
    about = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^## Settings\n\n(?P<table>(?:\|.*\n)+)", about, re.MULTILINE)
    if match is None:
        raise SystemExit("no settings table in `--about --format=markdown` output")
    return match["table"].rstrip("\n")


def alias_table() -> str:
    rows = ["| CAPI field | column names that map to it by themselves |", "|---|---|"]
    rows += [
        f"| `{field}` | {', '.join(f'`{name}`' for name in names)} |"
        for field, names in ALIASES.items()
    ]
    return "\n".join(rows)


def render(text: str) -> str:
    for name, content in (("settings", settings_table()), ("aliases", alias_table())):
        pattern = re.compile(
            rf"(?P<start><!-- generated:{name} -->\n)(?:.*?\n)?(?P<end><!-- /generated:{name} -->)",
            re.DOTALL,
        )
        match = pattern.search(text)
        if match is None:
            raise SystemExit(f"README.md lacks the markers of the generated section {name!r}")
        text = text[: match.end("start")] + content + "\n" + text[match.start("end") :]
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is stale")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is stale: run scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
