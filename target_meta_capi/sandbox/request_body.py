"""Reading a request body in each form Graph takes: JSON, urlencoded (as Meta's SDKs send
it), multipart/form-data, any of them gzipped. A body Graph would refuse is a GraphError."""

from __future__ import annotations

import binascii
import re
import zlib
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec

from target_meta_capi.sandbox.graph_errors import GraphError, invalid_parameter

# msgspec reads the same JSON as the json module, several times faster
decode_json = msgspec.json.Decoder().decode
# what decoding untrusted JSON may raise: msgspec.DecodeError for malformed text (a ValueError
# only from msgspec 0.21 on), RecursionError for arrays or objects nested too deep (~1000 levels)
JSON_ERRORS = (msgspec.DecodeError, RecursionError)
_MULTIPART_NAME = re.compile(rb'\bname=(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)
_MULTIPART_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


def gunzip(body: bytes, limit: int) -> bytes:
    """gzip.decompress(body), one member after another, that stops past ``limit`` bytes.

    A few KB of gzip can inflate to gigabytes: decompressing it whole could exhaust memory
    before its size is known. zlib.error for a body that is not gzip (or is cut short).
    """
    members: list[bytes] = []
    size = 0
    data = body
    while data:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header, trailer
        while not decompressor.eof:
            chunk = decompressor.decompress(data, limit + 1 - size)
            size += len(chunk)
            if size > limit:
                raise GraphError(413, 100, "(#100) Request body too large")
            members.append(chunk)
            data = decompressor.unconsumed_tail
            if not data and not decompressor.eof:
                raise zlib.error("the gzip body ends inside a member")
        # what follows a member: another one, or zero padding (as gzip.decompress allows)
        data = decompressor.unused_data.lstrip(b"\x00")
    return b"".join(members)


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    match = _MULTIPART_BOUNDARY.search(content_type)
    if match is None:
        raise invalid_parameter("(#100) multipart body without boundary")
    delimiter = b"--" + (match.group(1) or match.group(2)).encode("latin-1")
    params: dict[str, Any] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, separator, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            continue
        name_match = _MULTIPART_NAME.search(head)
        if name_match is None:
            continue
        name = (name_match.group(1) or name_match.group(2)).decode("utf-8", "replace")
        params[name] = value.removesuffix(b"\r\n").decode("utf-8", "replace")
    return params


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not body.strip():
        return {}
    if media_type == "multipart/form-data":
        return _parse_multipart(body, content_type)
    if media_type == "application/x-www-form-urlencoded":
        return _parse_form(body)
    if media_type == "application/json" or body.lstrip()[:1] == b"{":
        try:
            params = decode_json(body)
        except JSON_ERRORS:
            raise invalid_parameter("(#100) The request body is not valid JSON") from None
        if not isinstance(params, dict):
            raise invalid_parameter("(#100) The request body must be a JSON object")
        return params
    return _parse_form(body)


def _parse_form(body: bytes) -> dict[str, Any]:
    """A urlencoded body as parse_qs(keep_blank_values=True) reads it, the last value winning.

    Meta's SDKs send events this way, as percent-encoded JSON: a 1,000-event request holds
    ~400,000 escapes, which urllib's pure-Python unquote takes ~25 ms to decode, ~3 ms here.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_parameter("(#100) The request body is not valid UTF-8") from None
    params: dict[str, Any] = {}
    for pair in body.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            params[_unquote_plus(name)] = _unquote_plus(value)
    return params


_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _unquote_plus(text: bytes) -> str:
    """urllib.parse.unquote_plus for bytes, decoded in C where that gives the same result."""
    text = text.replace(b"+", b" ")
    if b"%" not in text:
        return text.decode("utf-8", "replace")
    if b"=" in text or _LONE_PERCENT.search(text):
        return unquote_to_bytes(text).decode("utf-8", "replace")
    # Quoted-printable's =XX escapes are %XX's; with no "=" of its own and every "%" before
    # two hex digits, the text holds nothing else quoted-printable would read differently.
    return binascii.a2b_qp(text.replace(b"%", b"=")).decode("utf-8", "replace")
