"""The reader takes stdin as bytes through a larger buffer: exactly the lines stdin holds."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from target_meta_capi.reader import NumberedSingerReader, SingerInputError

# CRLF and a lone CR, an accented name, a byte that is not UTF-8, a blank line, no final newline
RAW_INPUT = b'{"a": 1}\r\n{"b": "x\ry"}\n{"n": "Zo\xc3\xab"}\n\n{"bad": "\xff"}\n{"last": 2}'


def test_stdin_is_read_as_the_bytes_it_holds_split_at_newlines_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "input.singer"
    path.write_bytes(RAW_INPUT)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert list(NumberedSingerReader().default_input) == io.BytesIO(RAW_INPUT).readlines()


def test_lines_read_as_bytes_are_decoded_as_utf8_and_a_bad_byte_names_its_line() -> None:
    reader = NumberedSingerReader()
    seen: list[dict] = []
    lines = io.BytesIO(
        b'{"type": "STATE", "value": {"name": "Zo\xc3\xab"}}\n'
        b"\n"
        b'{"type": "STATE", "value": "\xff"}\n'
    )
    with pytest.raises(SingerInputError, match=r"^Input line 3 is not valid JSON"):
        reader.process_lines(lines, {"STATE": seen.append})
    assert seen == [{"type": "STATE", "value": {"name": "Zoë"}}]


def test_a_stdin_without_a_file_is_read_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    replacement = io.StringIO('{"type": "STATE", "value": {}}\n')
    monkeypatch.setattr(sys, "stdin", replacement)
    assert NumberedSingerReader().default_input is replacement
