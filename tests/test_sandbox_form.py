"""The sandbox reads urlencoded bodies (as Meta's SDKs send them) exactly as parse_qs does."""

from __future__ import annotations

import json
import random
from urllib.parse import parse_qs, urlencode

import pytest

from target_meta_capi.sandbox.request_body import _parse_form


def reference(body: bytes) -> dict[str, str]:
    text = body.decode("utf-8")
    return {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}


def test_a_request_body_as_metas_sdk_sends_it_is_read_whole() -> None:
    events = [
        json.dumps({"event_name": "Purchase", "user_data": {"em": ["ab" * 32]}, "n": i})
        for i in range(200)
    ]
    body = urlencode({"data": json.dumps(events), "access_token": "EAAtoken"}).encode()
    params = _parse_form(body)
    assert params == reference(body)
    assert json.loads(params["data"]) == events


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&b=2&a=3",  # the last value wins
        b"a&b=&=c",  # no "=", blank value, blank name
        b"a=100%25+sure&b=%E2%82%AC",  # escaped "%", "+", a UTF-8 euro sign
        b"a=%FF%FE",  # escapes that are not UTF-8
        b"a=50%&b=%zz&c=%4",  # "%" not followed by two hex digits
        b"a=x=y&b=%3D=",  # "=" inside a value, escaped and not
        b"&&a=1&&",
    ],
)
def test_edge_cases_read_as_parse_qs_reads_them(body: bytes) -> None:
    assert _parse_form(body) == reference(body)


def test_random_bodies_read_as_parse_qs_reads_them() -> None:
    pieces = [b"%", b"%2", b"%41", b"%e2%82%ac", b"%FF", b"=", b"&", b"+", b"a", b"Z", b"0",
              b"f", b" ", b"_", b"\n", b"\r\n", b"%0A", b"%3d", "é".encode()]  # fmt: skip
    generator = random.Random(7)
    for _ in range(20_000):
        body = b"".join(generator.choice(pieces) for _ in range(generator.randint(0, 14)))
        assert _parse_form(body) == reference(body), body
