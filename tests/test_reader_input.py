"""The reader takes stdin through a larger buffer and must read exactly the lines stdin gives."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from target_meta_capi.reader import NumberedSingerReader

# CRLF and a lone CR, an accented name, a byte that is not UTF-8, a blank line, no final newline
RAW_INPUT = b'{"a": 1}\r\n{"b": "x\ry"}\n{"n": "Zo\xc3\xab"}\n\n{"bad": "\xff"}\n{"last": 2}'


def _as_stdin(path: Path, errors: str) -> io.TextIOWrapper:
    return open(path, encoding="utf-8", errors=errors, newline="\n")


@pytest.mark.parametrize("errors", ["surrogateescape", "strict"])
def test_lines_from_a_file_backed_stdin_are_those_stdin_itself_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errors: str
) -> None:
    path = tmp_path / "input.singer"
    path.write_bytes(RAW_INPUT.replace(b"\xff", b"?") if errors == "strict" else RAW_INPUT)
    with _as_stdin(path, errors) as stdin:
        expected = list(stdin)
    with _as_stdin(path, errors) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert list(NumberedSingerReader().default_input) == expected


def test_a_stdin_without_a_file_is_read_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    replacement = io.StringIO('{"type": "STATE", "value": {}}\n')
    monkeypatch.setattr(sys, "stdin", replacement)
    assert NumberedSingerReader().default_input is replacement
