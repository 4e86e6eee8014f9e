"""The msgspec reader parses like the SDK's reader and keeps input text out of its errors."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from singer_sdk.exceptions import InvalidInputLine

from target_meta_capi.fast_io import FastSingerReader


def _read(data: bytes) -> list[dict]:
    messages: list[dict] = []
    callbacks = {"RECORD": messages.append, "STATE": messages.append}
    FastSingerReader().process_lines(io.BytesIO(data), callbacks)
    return messages


def test_floats_arrive_as_decimal_with_their_digits() -> None:
    [message] = _read(b'{"type":"RECORD","stream":"s","record":{"total":129.10,"n":3}}\n')
    assert message["record"] == {"total": Decimal("129.10"), "n": 3}
    assert isinstance(message["record"]["n"], int)


def test_str_lines_are_read_too() -> None:
    messages: list[dict] = []
    FastSingerReader().process_lines(
        io.StringIO('{"type":"RECORD","stream":"s","record":{"fn":"Zoë"}}\n'),
        {"RECORD": messages.append},
    )
    assert messages[0]["record"] == {"fn": "Zoë"}


def test_unparseable_line_names_its_number_but_not_its_content() -> None:
    data = b'{"type":"STATE","value":{}}\n{"type":"RECORD","record":{"em":"mary@example.com"\n'
    with pytest.raises(InvalidInputLine) as raised:
        _read(data)
    assert "line 2" in str(raised.value)
    assert "mary@example.com" not in str(raised.value)


def test_blank_line_is_invalid_input_like_in_the_sdk() -> None:
    with pytest.raises(InvalidInputLine):
        _read(b'{"type":"STATE","value":{}}\n\n')


def test_json_that_is_not_an_object_is_invalid_input() -> None:
    with pytest.raises(InvalidInputLine):
        _read(b"[1, 2]\n")
