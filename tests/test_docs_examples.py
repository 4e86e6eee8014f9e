"""The Python examples of docs/client.md, the README's client section and docs/sandbox.md run
as written.

A document's ```python blocks run in order in one namespace, as a reader following the page in
one Python session runs them, against a sandbox started here. The documents tell the reader to
start the sandbox on port 8787 and name its URL once, `http://127.0.0.1:8787`; that URL is the
one thing replaced, by this sandbox's (pixel and token are the sandbox's defaults, as written).
docs/sandbox.md's example starts a sandbox of its own. A block preceded by
`<!-- not run: REASON -->` is not run. The client's examples (docs/client.md, the README's
section) also type-check under mypy --strict, as in a strictly typed application.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from target_meta_capi.sandbox import SandboxServer
from tests._user_mypy import mypy_strict

ROOT = Path(__file__).resolve().parent.parent
# the address the documents tell the reader to start the sandbox on
DOCUMENTED_SANDBOX_URL = "http://127.0.0.1:8787"
_NOT_RUN = re.compile(r"<!-- not run: (?P<reason>.+?) -->")
_README_CLIENT_SECTION = re.compile(r"^## \d+\. The client library\n(.*?)(?=^## )", re.M | re.S)


@dataclass(frozen=True)
class Block:
    line: int  # of the block's first line of code, in the document
    code: str
    not_run: str | None  # the reason a `<!-- not run: ... -->` marker gives


def python_blocks(text: str, first_line: int = 1) -> list[Block]:
    """The ```python blocks of markdown `text` whose first line is line `first_line`."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = _NOT_RUN.fullmatch(previous.strip())
        code = textwrap.dedent("\n".join(lines[index + 1 : end]))
        blocks.append(Block(first_line + index + 1, code, marker["reason"] if marker else None))
        index = end + 1
    return blocks


def document_blocks(document: str) -> list[Block]:
    text = (ROOT / document).read_text(encoding="utf-8")
    if document != "README.md":
        return python_blocks(text)
    section = _README_CLIENT_SECTION.search(text)
    assert section is not None, "README.md has no client library section"
    return python_blocks(section[1], first_line=text.count("\n", 0, section.start(1)) + 1)


def run_blocks(document: str, blocks: list[Block], sandbox_url: str) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        code = block.code.replace(DOCUMENTED_SANDBOX_URL, sandbox_url)
        # blank lines first, so that a traceback names the document's own line numbers
        exec(compile("\n" * (block.line - 1) + code, document, "exec"), namespace)


def test_python_blocks_are_found_with_their_line_and_not_run_marker():
    text = "# T\n\n```python\nx = 1\n```\n\n<!-- not run: needs y -->\n```python\nimport y\n```\n"
    assert python_blocks(text) == [
        Block(line=4, code="x = 1", not_run=None),
        Block(line=9, code="import y", not_run="needs y"),
    ]


@pytest.mark.parametrize("document", ["docs/client.md", "README.md"])
def test_python_examples_run_as_written_against_the_sandbox(
    document: str, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = [block for block in document_blocks(document) if block.not_run is None]
    assert blocks, f"{document} has no Python examples to run"
    assert any(DOCUMENTED_SANDBOX_URL in block.code for block in blocks), (
        f"{document}'s examples do not name the sandbox's URL, {DOCUMENTED_SANDBOX_URL}"
    )
    run_blocks(document, blocks, sandbox.url)
    stats = sandbox.stats()
    assert stats["rejected_requests"] == 0, stats["rejected_by_subcode"]
    assert stats["accepted_requests"] == stats["requests"] > 0


def test_sandbox_python_example_runs_as_written() -> None:
    blocks = [block for block in document_blocks("docs/sandbox.md") if block.not_run is None]
    assert blocks, "docs/sandbox.md has no Python examples to run"
    # it starts its own sandbox, on a free port: no URL to replace
    run_blocks("docs/sandbox.md", blocks, DOCUMENTED_SANDBOX_URL)


@pytest.mark.parametrize("document", ["docs/client.md", "README.md"])
def test_client_examples_type_check_under_mypy_strict(
    document: str, tmp_path: Path, mypy_cache: Path
) -> None:
    # a user copying them into a strictly typed application gets no error from them
    blocks = [block for block in document_blocks(document) if block.not_run is None]
    program = tmp_path / "client_examples.py"
    program.write_text("\n\n".join(block.code for block in blocks))
    checked = mypy_strict(program, mypy_cache)
    assert checked.returncode == 0, checked.stdout
