"""The sandbox, driven with plain HTTP requests as a Graph client would."""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from target_meta_capi.capi.privacy import is_loopback_host
from target_meta_capi.capi.rules import MAX_AGE_SECONDS
from target_meta_capi.sandbox import SandboxConfig, SandboxServer, cli
from target_meta_capi.sandbox import handler as handler_module
from target_meta_capi.sandbox import server as server_module
from target_meta_capi.sandbox import store as store_module
from target_meta_capi.sandbox.faults import FaultInjector

from ._target_support import wait_until

TOKEN = "sandbox-token"
PIXEL = "1234567890"
HASH = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"  # sha256("mary")


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout",
        "user_data": {
            "em": [HASH],
            "client_user_agent": "Mozilla/5.0",
            "client_ip_address": "203.0.113.9",
        },
        "custom_data": {"value": 12.5, "currency": "EUR"},
    }
    event.update(overrides)
    return event


def post_events(
    sandbox: SandboxServer, events: Any, *, timeout: float = 10, **params: Any
) -> requests.Response:
    body = {"data": events, "access_token": TOKEN, **params}
    return requests.post(sandbox.events_url(), json=body, timeout=timeout)


def graph_error(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]


def post_raw(
    sandbox: SandboxServer, body: bytes, headers: dict[str, str], path: str | None = None
) -> tuple[int, Any]:
    """POST ``body`` with only these headers (and Content-Length): the status and JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    connection.request("POST", path or f"/v24.0/{PIXEL}/events", body=body, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def exchange(sandbox: SandboxServer, request: bytes) -> list[bytes]:
    """Send ``request`` as is; the answers' ``HTTP/1.1 NNN`` until the sandbox closes."""
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return re.findall(rb"HTTP/1\.1 [0-9]{3}", received)


def multipart(*parts: bytes, closing: bytes = b"--B--\r\n") -> bytes:
    """A multipart body of these parts (headers, blank line, value), boundary ``B``."""
    return b"".join(b"--B\r\n" + part + b"\r\n" for part in parts) + closing


MULTIPART = {"Content-Type": "multipart/form-data; boundary=B"}
# sent after a request whose body cannot be read: answered only if the sandbox kept reading
FOLLOW_UP = b"GET /__stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
TOKEN_PART = b'Content-Disposition: form-data; name="access_token"\r\n\r\n' + TOKEN.encode()


# success and parameters ------------------------------------------------------------------
def test_valid_request_is_answered_like_graph(sandbox):
    response = post_events(sandbox, [make_event(), make_event(event_id="order-2")])
    assert response.status_code == 200
    body = response.json()
    assert body["events_received"] == 2
    assert body["messages"] == []
    assert isinstance(body["fbtrace_id"], str) and body["fbtrace_id"]


def test_accepted_events_are_recorded_with_request_params(sandbox):
    event = make_event()
    post_events(
        sandbox,
        [event],
        test_event_code="TEST123",
        partner_agent="target-meta-capi",
        namespace_id="ns",
        upload_id="u1",
        upload_tag="tag",
        upload_source="src",
    )
    assert sandbox.accepted_events() == [
        {
            "event": event,
            "params": {
                "pixel_id": PIXEL,
                "api_version": "v24.0",
                "test_event_code": "TEST123",
                "partner_agent": "target-meta-capi",
                "namespace_id": "ns",
                "upload_id": "u1",
                "upload_tag": "tag",
                "upload_source": "src",
            },
        }
    ]


def test_form_body_with_data_as_json_string_is_accepted(sandbox):
    form = {"data": json.dumps([make_event()]), "access_token": TOKEN, "test_event_code": "T1"}
    response = requests.post(sandbox.events_url(), data=form, timeout=10)
    assert response.status_code == 200
    assert sandbox.accepted_events()[0]["params"]["test_event_code"] == "T1"


def test_multipart_body_is_accepted(sandbox):
    parts = {
        "data": (None, json.dumps([make_event()])),
        "access_token": (None, TOKEN),
        "partner_agent": (None, "agent"),
    }
    response = requests.post(sandbox.events_url(), files=parts, timeout=10)
    assert response.status_code == 200
    assert sandbox.accepted_events()[0]["params"]["partner_agent"] == "agent"


def data_part() -> bytes:
    return (
        b'Content-Disposition: form-data; name="data"\r\n\r\n' + json.dumps([make_event()]).encode()
    )


def test_multipart_body_without_its_closing_delimiter_is_read_whole(sandbox):
    body = multipart(TOKEN_PART, data_part(), closing=b"")
    assert post_raw(sandbox, body, MULTIPART)[0] == 200


@pytest.mark.parametrize(
    "part",
    [
        b'Content-Disposition: form-data; name="access_token"\r\nno-blank-line',
        b"Content-Disposition: form-data\r\n\r\nno-name",
    ],
    ids=["no_blank_line_after_headers", "no_name"],
)
def test_multipart_parts_that_are_malformed_are_ignored(sandbox, part):
    assert post_raw(sandbox, multipart(TOKEN_PART, data_part(), part), MULTIPART)[0] == 200


def test_a_body_without_a_content_type_is_read_as_a_form(sandbox):
    body = urlencode({"data": json.dumps([make_event()]), "access_token": TOKEN}).encode()
    assert post_raw(sandbox, body, {})[0] == 200


def test_events_sent_as_json_strings_are_accepted_like_metas_sdk_sends_them(sandbox):
    event = make_event()
    form = {"data": json.dumps([json.dumps(event)]), "access_token": TOKEN}
    response = requests.post(sandbox.events_url(), data=form, timeout=10)
    assert response.status_code == 200
    assert sandbox.accepted_events()[0]["event"] == event


def test_gzip_body_is_accepted(sandbox):
    body = gzip.compress(json.dumps({"data": [make_event()], "access_token": TOKEN}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = requests.post(sandbox.events_url(), data=body, headers=headers, timeout=10)
    assert response.json()["events_received"] == 1


def test_gzip_body_larger_than_the_limit_once_decompressed_is_answered_413(sandbox, monkeypatch):
    body = json.dumps({"data": [make_event()], "access_token": TOKEN}).encode()
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}

    def post_gzip() -> requests.Response:
        compressed = gzip.compress(body)
        return requests.post(sandbox.events_url(), data=compressed, headers=headers, timeout=10)

    monkeypatch.setattr(handler_module, "MAX_BODY_BYTES", len(body))
    assert post_gzip().status_code == 200
    monkeypatch.setattr(handler_module, "MAX_BODY_BYTES", len(body) - 1)
    response = post_gzip()
    assert (response.status_code, graph_error(response)["code"]) == (413, 100)
    assert sandbox.stats()["rejected_by_code"] == {"100": 1}


def test_chunked_body_is_accepted(sandbox):
    body = json.dumps({"data": [make_event()], "access_token": TOKEN}).encode()
    chunks = (body[i : i + 100] for i in range(0, len(body), 100))
    headers = {"Content-Type": "application/json"}
    response = requests.post(sandbox.events_url(), data=chunks, headers=headers, timeout=10)
    assert response.json()["events_received"] == 1


def test_chunked_body_with_trailers_is_accepted_and_the_connection_stays_usable(sandbox):
    body = json.dumps({"data": [make_event()], "access_token": TOKEN}).encode()
    chunked = b"%x\r\n%s\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n" % (len(body), body)
    statuses = exchange(
        sandbox,
        f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + chunked
        + b"GET /__stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert statuses == [b"HTTP/1.1 200", b"HTTP/1.1 200"]
    assert sandbox.stats()["accepted_requests"] == 1


@pytest.mark.parametrize(
    "chunked",
    [b"zz\r\n", b"-1\r\n{}\r\n0\r\n\r\n", b"+2\r\n{}\r\n0\r\n\r\n", b"0x2\r\n{}\r\n0\r\n\r\n",
     b"10000000\r\n"],
    ids=["size_not_hex", "negative_size", "signed_size", "prefixed_size", "too_large"],
)  # fmt: skip
def test_a_chunked_body_that_cannot_be_read_is_refused_and_the_connection_closed(sandbox, chunked):
    statuses = exchange(
        sandbox,
        f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + chunked
        + FOLLOW_UP,
    )
    assert statuses == [b"HTTP/1.1 413" if chunked.startswith(b"1000") else b"HTTP/1.1 400"]
    assert sandbox.stats()["rejected_by_code"] == {"100": 1}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v24.0/{PIXEL}/events"),
        ("POST", f"/v24.0/{PIXEL}/nope"),
        ("POST", "/__reset"),
        ("GET", "/__stats"),
        ("PUT", "/__stats"),
    ],
)
def test_a_body_length_that_cannot_be_read_is_answered_413_and_the_connection_closed(
    sandbox, method, path
):
    statuses = exchange(
        sandbox,
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n".encode() + FOLLOW_UP,
    )
    assert statuses == [b"HTTP/1.1 413"]


@pytest.mark.parametrize("length", ["+2", "1_0", "-0"])
def test_a_body_length_that_is_not_digits_alone_is_answered_413(sandbox, length):
    # int() would read them as 2, 10 and 0
    statuses = exchange(
        sandbox,
        f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        "{}".encode()
        + FOLLOW_UP,
    )
    assert statuses == [b"HTTP/1.1 413"]


def test_access_token_in_query_is_accepted(sandbox):
    response = requests.post(
        sandbox.events_url(), params={"access_token": TOKEN}, json={"data": [make_event()]}
    )
    assert response.status_code == 200


def test_bearer_token_header_is_accepted(sandbox):
    response = requests.post(
        sandbox.events_url(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"data": [make_event()]},
        timeout=10,
    )
    assert response.status_code == 200


def test_other_api_versions_are_accepted_and_recorded(sandbox):
    url = sandbox.events_url(api_version="v26.0")
    response = requests.post(url, json={"data": [make_event()], "access_token": TOKEN})
    assert response.status_code == 200
    assert sandbox.accepted_events()[0]["params"]["api_version"] == "v26.0"


def test_connection_is_kept_alive_between_requests(sandbox):
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    body = json.dumps({"data": [make_event()], "access_token": TOKEN})
    headers = {"Content-Type": "application/json"}
    path = f"/v24.0/{PIXEL}/events"
    connection.request("POST", path, body=body, headers=headers)
    assert connection.getresponse().read()
    first_socket = connection.sock
    connection.request("POST", path, body=body, headers=headers)
    assert json.loads(connection.getresponse().read())["events_received"] == 1
    assert connection.sock is first_socket
    connection.close()


def test_a_get_with_a_body_does_not_spoil_the_next_request_on_the_connection(sandbox):
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    connection.request("GET", "/__stats", body="ignored")
    assert connection.getresponse().read()
    body = json.dumps({"data": [make_event()], "access_token": TOKEN})
    headers = {"Content-Type": "application/json"}
    connection.request("POST", f"/v24.0/{PIXEL}/events", body=body, headers=headers)
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())["events_received"]) == (200, 1)
    connection.close()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
@pytest.mark.parametrize("path", [f"/v24.0/{PIXEL}/events", "/__stats"])
def test_other_methods_are_answered_with_graphs_unknown_path_error(sandbox, method, path):
    response = requests.request(method, f"{sandbox.url}{path}", data=b"{}", timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 2500)


def test_head_is_answered_with_graphs_unknown_path_error_without_its_body(sandbox):
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    connection.request("HEAD", "/__stats")
    response = connection.getresponse()
    assert (response.status, response.getheader("Content-Type")) == (
        400,
        "application/json; charset=UTF-8",
    )
    assert response.read() == b""
    connection.request("GET", "/__stats")  # the connection is still in step
    assert connection.getresponse().status == 200
    connection.close()


def test_stop_closes_idle_keep_alive_connections(sandbox_factory):
    sandbox = sandbox_factory()
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    connection.request("GET", "/__stats")
    connection.getresponse().read()
    sandbox.stop()
    assert connection.sock.recv(1) == b""
    connection.close()


def test_a_connection_taken_just_as_stop_begins_is_closed_not_served_after_it(sandbox_factory):
    # The race ordered: the sandbox accepts the connection, and its handler thread reaches
    # setup() only once stop() has returned (a thread tracer holds it there).
    sandbox = sandbox_factory()
    in_setup, stopped = threading.Event(), threading.Event()
    setup_code = handler_module.SandboxRequestHandler.setup.__code__

    def hold_setup_until_stopped(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is setup_code:
            in_setup.set()
            stopped.wait()

    threading.settrace(hold_setup_until_stopped)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
        connection.connect()
        assert in_setup.wait(timeout=30), "the handler never reached setup()"
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    sandbox.stop()
    stopped.set()

    body = json.dumps({"data": [make_event()], "access_token": TOKEN})
    with contextlib.suppress(OSError):  # a reset, if the close came first
        connection.request("POST", f"/v24.0/{PIXEL}/events", body=body)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    connection.close()


def test_starting_a_started_sandbox_is_refused(sandbox):
    with pytest.raises(RuntimeError, match="already started"):
        sandbox.start()


def test_the_url_of_a_sandbox_not_started_is_refused():
    with pytest.raises(RuntimeError, match="not started"):
        _ = SandboxServer().url


def test_a_sandbox_not_started_reports_the_counters_of_an_empty_one(sandbox):
    not_started, started = SandboxServer().stats(), sandbox.stats()
    for stats in (not_started, started):
        del stats["process_cpu_seconds"]
    assert not_started == started


def test_a_sandbox_not_started_can_be_reset():
    not_started = SandboxServer()
    not_started.reset()
    assert not_started.stats()["requests"] == 0


# authentication and objects ------------------------------------------------------------------
def test_missing_token_is_rejected_with_code_104(sandbox):
    response = requests.post(sandbox.events_url(), json={"data": [make_event()]}, timeout=10)
    assert response.status_code == 400
    assert graph_error(response)["code"] == 104


def test_unknown_token_is_rejected_with_code_190(sandbox):
    body = {"data": [make_event()], "access_token": "stolen"}
    response = requests.post(sandbox.events_url(), json=body, timeout=10)
    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["type"], error["is_transient"]) == (190, "OAuthException", False)
    assert sandbox.accepted_events() == []


def test_unknown_pixel_is_rejected_with_code_100_subcode_33(sandbox):
    body = {"data": [make_event()], "access_token": TOKEN}
    response = requests.post(sandbox.events_url(pixel_id="999"), json=body, timeout=10)
    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)


def appsecret_proof(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def test_matching_appsecret_proof_is_accepted(sandbox_factory):
    sandbox = sandbox_factory(app_secret="s3cret")
    response = post_events(
        sandbox, [make_event()], appsecret_proof=appsecret_proof("s3cret", TOKEN)
    )
    assert response.status_code == 200


@pytest.mark.parametrize("proof", [None, "0" * 64, "é" * 64], ids=["missing", "wrong", "non_ascii"])
def test_missing_or_wrong_appsecret_proof_is_rejected(sandbox_factory, proof):
    sandbox = sandbox_factory(app_secret="s3cret")
    params = {} if proof is None else {"appsecret_proof": proof}
    response = post_events(sandbox, [make_event()], **params)
    assert response.status_code == 400
    assert graph_error(response)["code"] == 100
    assert sandbox.accepted_events() == []


def test_unknown_path_is_rejected_with_code_2500(sandbox):
    response = requests.post(f"{sandbox.url}/v24.0/{PIXEL}/nope", json={}, timeout=10)
    assert response.status_code == 400
    assert graph_error(response)["code"] == 2500


# the data parameter ----------------------------------------------------------------------------
def test_missing_data_is_rejected_with_code_100(sandbox):
    response = requests.post(sandbox.events_url(), json={"access_token": TOKEN}, timeout=10)
    assert response.status_code == 400
    assert graph_error(response)["code"] == 100


@pytest.mark.parametrize("data", [{"event_name": "Purchase"}, "not json", '{"a": 1}', 42])
def test_data_that_is_not_a_list_is_rejected_with_code_100(sandbox, data):
    response = post_events(sandbox, data)
    assert response.status_code == 400
    assert graph_error(response)["code"] == 100


def test_empty_data_is_rejected_with_code_100(sandbox):
    response = post_events(sandbox, [])
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)


def test_more_than_1000_events_are_rejected_with_code_100(sandbox):
    response = post_events(sandbox, [make_event(event_id=str(i)) for i in range(1001)])
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert sandbox.accepted_events() == []


def test_exactly_1000_events_are_accepted(sandbox):
    response = post_events(sandbox, [make_event(event_id=str(i)) for i in range(1000)])
    assert response.json()["events_received"] == 1000
    assert sandbox.stats()["events_received"] == 1000


def test_event_that_is_not_an_object_is_rejected_with_code_100(sandbox):
    response = post_events(sandbox, [make_event(), "event"])
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)


# JSON nested deeper than the decoder goes (~1000 levels): what a fuzzer or a hostile client sends
DEEPLY_NESTED = "[" * 5000 + "]" * 5000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_json_body_that_is_malformed_is_rejected_as_unparseable(sandbox):
    body = '{"access_token": "sandbox-token", "data": [}'
    headers = {"Content-Type": "application/json"}
    response = requests.post(sandbox.events_url(), data=body, headers=headers, timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert graph_error(response)["message"] == "(#100) The request body is not valid JSON"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b'[{"access_token": "sandbox-token"}]', {"Content-Type": "application/json"}, "object"),
        (b"access_token=sandbox-token&data=\xff", FORM, "UTF-8"),
        (b"data=[]", {"Content-Type": "multipart/form-data"}, "boundary"),
        (b"not gzip", {"Content-Encoding": "gzip"}, "gzip"),
        (gzip.compress(b"access_token=sandbox-token")[:-9], {"Content-Encoding": "gzip"}, "gzip"),
    ],
    ids=[
        "json_not_an_object",
        "form_not_utf8",
        "multipart_without_boundary",
        "not_gzip",
        "gzip_cut_short",
    ],
)
def test_a_body_that_cannot_be_parsed_is_rejected_with_code_100(sandbox, body, headers, message):
    status, answer = post_raw(sandbox, body, headers)
    assert (status, answer["error"]["code"]) == (400, 100)
    assert message in answer["error"]["message"]


def test_an_empty_body_has_no_parameters(sandbox):
    headers = {"Content-Type": "application/json"}
    status, answer = post_raw(sandbox, b"", headers, f"/v24.0/{PIXEL}/events?access_token={TOKEN}")
    assert (status, answer["error"]["message"]) == (400, "(#100) The parameter data is required")


def test_json_body_nested_too_deep_is_rejected_as_unparseable(sandbox):
    body = '{"access_token": "sandbox-token", "data": ' + DEEPLY_NESTED + "}"
    headers = {"Content-Type": "application/json"}
    response = requests.post(sandbox.events_url(), data=body, headers=headers, timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert sandbox.stats()["rejected_by_code"] == {"100": 1}


@pytest.mark.parametrize(
    "data", [DEEPLY_NESTED, json.dumps([DEEPLY_NESTED])], ids=["data", "event_as_json_string"]
)
def test_form_data_nested_too_deep_is_rejected_as_not_an_array_of_events(sandbox, data):
    form = {"access_token": TOKEN, "data": data}
    response = requests.post(sandbox.events_url(), data=form, headers=FORM, timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert sandbox.stats()["rejected_by_code"] == {"100": 1}


# Meta's event rules ------------------------------------------------------------------------------
def without_user_data_key(key: str) -> dict[str, Any]:
    event = make_event()
    del event["user_data"][key]
    return event


INVALID_EVENTS = {
    "event_time_too_old": (
        make_event(event_time=int(time.time()) - MAX_AGE_SECONDS - 3600),
        2804003,
    ),
    "event_time_in_future": (make_event(event_time=int(time.time()) + 3600), 2804004),
    "event_time_not_integer": (make_event(event_time=float(int(time.time()))), 2804005),
    "event_name_missing": (make_event(event_name=""), 2804006),
    "action_source_invalid": (make_event(action_source="web"), 2804007),
    "website_user_agent_missing": (without_user_data_key("client_user_agent"), 2804008),
    "website_source_url_invalid": (make_event(event_source_url="shop.example"), 2804009),
    "user_data_missing_match_key": (make_event(action_source="app", user_data={}), 2804010),
    "user_data_too_broad_to_match": (
        make_event(user_data={"client_user_agent": "Mozilla/5.0"}),
        2804010,
    ),
    "user_data_not_hashed": (
        make_event(user_data={"em": "mary@example.com", "client_user_agent": "UA"}),
        2804011,
    ),
    "fbc_invalid": (
        make_event(user_data={"fbc": "IwAR2F4-dbP0l7", "client_user_agent": "UA"}),
        2804001,
    ),
    "fbp_invalid": (make_event(user_data={"fbp": "fb.1", "client_user_agent": "UA"}), 2804002),
    "fbc_with_whitespace": (
        make_event(user_data={"fbc": "fb.1.1554763741205.a b/c?d", "client_user_agent": "UA"}),
        2804001,
    ),
    "purchase_value_missing": (make_event(custom_data={"currency": "EUR"}), 2804012),
    "purchase_currency_invalid": (
        make_event(custom_data={"value": 1, "currency": "EURO"}),
        2804013,
    ),
    "data_processing_options_invalid": (make_event(data_processing_options=["XYZ"]), 2804014),
    "data_processing_options_country_and_state_invalid": (
        make_event(
            data_processing_options=["LDU"],
            data_processing_options_country=42,
            data_processing_options_state=7,
        ),
        2804014,
    ),
}


@pytest.mark.parametrize(("event", "subcode"), INVALID_EVENTS.values(), ids=INVALID_EVENTS.keys())
def test_invalid_event_is_rejected_with_code_100_and_rule_subcode(sandbox, event, subcode):
    response = post_events(sandbox, [event])
    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["error_subcode"], error["is_transient"]) == (100, subcode, False)
    assert error["error_user_title"]


def test_one_invalid_event_rejects_the_whole_request(sandbox):
    events = [make_event(event_id="a"), make_event(event_name=""), make_event(event_id="c")]
    response = post_events(sandbox, events)
    assert response.status_code == 400
    assert sandbox.accepted_events() == []
    assert sandbox.stats()["events_received"] == 0


def test_error_message_never_contains_raw_user_data(sandbox):
    event = make_event(user_data={"em": "mary@example.com", "client_user_agent": "UA"})
    response = post_events(sandbox, [event])
    assert "mary" not in response.text


def test_metas_documented_app_purchase_example_is_accepted(sandbox):
    # the example payload of Meta's "Conversions API for App Events" page, event_time made current
    event = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "action_source": "app",
        "user_data": {
            "client_ip_address": "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "em": ["30a79640dfd8293d4f4965ec11821f640ca77979ca0a6b365f06372f81a3f602"],
            "ph": [
                "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ],
            "madid": "38400000-8cf0-11bd-b23e-10b96e40000d",
            "anon_id": "12345340-1234-3456-1234-123456789012",
        },
        "custom_data": {"currency": "USD", "value": "142.52"},
        "app_data": {
            "advertiser_tracking_enabled": 1,
            "application_tracking_enabled": 1,
            "campaign_ids": "abcd1234",
            "extinfo": [
                *("a2", "com.some.app", "771", "Version 7.7.1", "10.1.1", "OnePlus6", "en_US"),
                *("GMT-1", "TMobile", "1920", "1080", "2.00", "2", "128", "8", "USA/New York"),
            ],
        },
    }
    response = post_events(sandbox, [event])
    assert (response.status_code, response.json()["events_received"]) == (200, 1)


def test_physical_store_event_thirty_days_old_is_accepted(sandbox):
    event = make_event(action_source="physical_store", event_time=int(time.time()) - 30 * 24 * 3600)
    assert post_events(sandbox, [event]).status_code == 200


def test_error_body_has_graph_shape(sandbox):
    response = post_events(sandbox, [make_event(event_name="")])
    error = graph_error(response)
    assert set(error) == {
        "message",
        "type",
        "code",
        "error_subcode",
        "is_transient",
        "error_user_title",
        "error_user_msg",
        "fbtrace_id",
    }
    assert response.headers["x-fb-trace-id"] == error["fbtrace_id"]


# the last resort: what the sandbox did not expect ------------------------------------------------
def test_an_unexpected_error_is_answered_with_graphs_generic_error_and_counted(
    sandbox, monkeypatch, capfd
):
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot validate with {TOKEN}")

    monkeypatch.setattr(server_module, "validate_event", fail)
    response = post_events(sandbox, [make_event()])
    assert response.status_code == 500
    error = graph_error(response)
    assert (error["code"], error["is_transient"], error["message"]) == (
        1,
        True,
        "An unknown error occurred",
    )
    stats = sandbox.stats()
    assert (stats["requests"], stats["rejected_requests"], stats["rejected_by_code"]) == (
        1,
        1,
        {"1": 1},
    )
    assert stats["internal_errors"] == 1
    [line] = capfd.readouterr().err.splitlines()
    assert f"POST /v24.0/{PIXEL}/events 500 code=1 unexpected RuntimeError at " in line
    assert TOKEN not in line


def test_an_unexpected_error_on_an_inspection_endpoint_is_answered_too(sandbox, monkeypatch):
    def fail(limit: int | None = None) -> Any:
        raise RuntimeError("lost the events")

    monkeypatch.setattr(sandbox, "accepted_events", fail)
    response = requests.get(f"{sandbox.url}/__events", timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (500, 1)
    assert (sandbox.stats()["internal_errors"], sandbox.stats()["requests"]) == (1, 0)


def test_a_client_resetting_its_connection_mid_request_leaves_no_traceback(sandbox, capfd):
    threads_before = set(threading.enumerate())  # other tests' sandboxes may have some left

    def handling_the_request() -> bool:
        return any(
            thread.name.endswith("(process_request_thread)")
            for thread in set(threading.enumerate()) - threads_before
        )

    connection = socket.create_connection(("127.0.0.1", sandbox.port))
    connection.sendall(f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\n".encode())
    wait_until(handling_the_request)  # the sandbox is reading the headers
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()  # with a zero linger: a reset
    wait_until(lambda: not handling_the_request())
    assert capfd.readouterr().err == ""


def test_a_client_stalling_mid_body_is_disconnected_without_an_answer_or_a_log_line(
    sandbox_factory, capfd
):
    sandbox = sandbox_factory(idle_timeout_seconds=0.2, log_requests=True)
    head = f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    assert exchange(sandbox, head.encode() + b'{"data": [') == []
    assert sandbox.stats()["internal_errors"] == 0
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_cut_short_by_the_client_closing_its_side_gets_no_answer_and_stores_nothing(
    sandbox, chunked
):
    body = json.dumps({"data": [make_event()], "access_token": TOKEN}).encode()
    if chunked:
        framing, sent = "Transfer-Encoding: chunked", b"%x\r\n" % (len(body) + 500) + body
    else:
        framing, sent = f"Content-Length: {len(body) + 500}", body
    head = f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as connection:
        connection.sendall(head.encode() + sent)
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(65536) == b""
    stats = sandbox.stats()
    assert (stats["accepted_requests"], stats["rejected_requests"]) == (0, 0)
    assert stats["incomplete_requests"] == stats["requests"] == 1
    assert sandbox.accepted_events() == []


def test_an_unexpected_error_after_the_answer_is_logged_without_a_second_answer(
    sandbox, monkeypatch, capfd
):
    def fail(*args: Any) -> None:
        raise RuntimeError("cannot log")

    monkeypatch.setattr(handler_module.SandboxRequestHandler, "_log", fail)
    body = json.dumps({"data": [make_event()], "access_token": TOKEN})
    request = (
        f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    assert exchange(sandbox, request.encode() + FOLLOW_UP) == [b"HTTP/1.1 200"]
    stats = sandbox.stats()
    assert (stats["accepted_requests"], stats["rejected_requests"]) == (1, 0)
    assert stats["internal_errors"] == 1
    [line] = capfd.readouterr().err.splitlines()
    assert f"POST /v24.0/{PIXEL}/events - code=1 unexpected RuntimeError at " in line


def test_a_connection_failing_before_its_request_is_read_is_logged_in_one_line(
    sandbox, monkeypatch, capfd
):
    def fail(*args: Any) -> None:  # as macOS fails on a connection its client already closed
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(socket.socket, "setsockopt", fail)
    assert exchange(sandbox, FOLLOW_UP) == []
    assert capfd.readouterr().err == (
        "target-meta-capi sandbox: connection from 127.0.0.1 failed: OSError\n"
    )


# faults --------------------------------------------------------------------------------------
def test_transient_error_fault_answers_500_code_2_and_stores_nothing(sandbox_factory):
    sandbox = sandbox_factory(transient_error_rate=1.0)
    response = post_events(sandbox, [make_event()])
    assert response.status_code == 500
    error = graph_error(response)
    assert (error["code"], error["is_transient"]) == (2, True)
    assert sandbox.accepted_events() == []
    assert sandbox.stats()["faults"]["transient_error"] == 1


def test_throttle_fault_answers_code_17_subcode_2446079_and_stores_nothing(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0)
    response = post_events(sandbox, [make_event()])
    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (17, 2446079)
    assert sandbox.accepted_events() == []
    assert sandbox.stats()["faults"]["throttle"] == 1


@pytest.mark.parametrize("fault", ["throttle_rate", "transient_error_rate", "html_502_rate"])
def test_retry_after_setting_adds_the_header_to_fault_answers(sandbox_factory, fault):
    sandbox = sandbox_factory(**{fault: 1.0}, retry_after_seconds=7)
    response = post_events(sandbox, [make_event()])
    assert response.status_code >= 400
    assert response.headers["Retry-After"] == "7"


def test_fault_answers_carry_no_retry_after_by_default_as_graph_sends_none(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0)
    assert "Retry-After" not in post_events(sandbox, [make_event()]).headers


def test_regain_access_setting_adds_metas_usage_header_to_throttle_answers(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0, regain_access_minutes=30)
    response = post_events(sandbox, [make_event()])
    assert response.json()["error"]["code"] == 17
    usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    (entries,) = usage.values()
    assert entries[0]["estimated_time_to_regain_access"] == 30
    assert entries[0]["call_count"] == 100


def test_usage_setting_reports_the_share_used_on_accepted_answers(sandbox_factory):
    sandbox = sandbox_factory(usage_percent=42)
    response = post_events(sandbox, [make_event()])
    assert response.status_code == 200
    (entries,) = json.loads(response.headers["X-Business-Use-Case-Usage"]).values()
    assert (entries[0]["call_count"], entries[0]["estimated_time_to_regain_access"]) == (42, 0)


def test_usage_setting_reports_the_limit_reached_on_throttle_answers(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0, usage_percent=42)
    response = post_events(sandbox, [make_event()])
    (entries,) = json.loads(response.headers["X-Business-Use-Case-Usage"]).values()
    assert (entries[0]["call_count"], entries[0]["estimated_time_to_regain_access"]) == (100, 0)


def test_throttle_answers_carry_no_usage_header_by_default(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0)
    assert "X-Business-Use-Case-Usage" not in post_events(sandbox, [make_event()]).headers


def test_html_502_fault_answers_an_html_page(sandbox_factory):
    sandbox = sandbox_factory(html_502_rate=1.0)
    response = post_events(sandbox, [make_event()])
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert sandbox.accepted_events() == []


def test_cut_after_accept_stores_events_then_closes_without_answer(sandbox_factory):
    sandbox = sandbox_factory(cut_after_accept_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        post_events(sandbox, [make_event()])
    assert len(sandbox.accepted_events()) == 1
    assert sandbox.stats()["faults"]["cut_after_accept"] == 1


def test_slow_response_stores_events_and_outlasts_the_client_timeout(sandbox_factory):
    sandbox = sandbox_factory(slow_response_rate=1.0, slow_response_seconds=3.0)
    with pytest.raises(requests.Timeout):
        post_events(sandbox, [make_event()], timeout=0.3)
    assert len(sandbox.accepted_events()) == 1
    assert sandbox.stats()["faults"]["slow_response"] == 1


def test_slow_response_longer_than_a_thread_can_wait_still_outlasts_the_client(sandbox_factory):
    # past threading.TIMEOUT_MAX (~292 years), as `--slow-response-seconds 1e10` gives it
    sandbox = sandbox_factory(slow_response_rate=1.0, slow_response_seconds=1e10)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post_events(sandbox, [make_event()], timeout=0.5)
    assert sandbox.stats()["internal_errors"] == 0
    assert len(sandbox.accepted_events()) == 1


def test_a_body_that_cannot_be_read_is_refused_before_any_fault(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=1.0)
    status, answer = post_raw(sandbox, b"not gzip", {"Content-Encoding": "gzip"})
    assert (status, answer["error"]["code"]) == (400, 100)
    assert sandbox.stats()["faults"]["throttle"] == 0


def test_slow_response_answers_after_the_delay_when_the_client_waits(sandbox_factory):
    sandbox = sandbox_factory(slow_response_rate=1.0, slow_response_seconds=0.3)
    started = time.monotonic()
    assert post_events(sandbox, [make_event()]).json()["events_received"] == 1
    assert time.monotonic() - started >= 0.3


def test_fault_after_accept_does_not_apply_to_invalid_requests(sandbox_factory):
    sandbox = sandbox_factory(cut_after_accept_rate=1.0)
    response = post_events(sandbox, [make_event(event_name="")])
    assert response.status_code == 400
    assert sandbox.stats()["faults"]["cut_after_accept"] == 0


def outcomes(sandbox: SandboxServer, count: int) -> list[int]:
    return [post_events(sandbox, [make_event()]).status_code for _ in range(count)]


def test_same_seed_gives_the_same_faults(sandbox_factory):
    first = sandbox_factory(transient_error_rate=0.5, seed=7)
    second = sandbox_factory(transient_error_rate=0.5, seed=7)
    sequence = outcomes(first, 20)
    assert set(sequence) == {200, 500}
    assert outcomes(second, 20) == sequence


def test_reset_restarts_the_fault_sequence(sandbox_factory):
    sandbox = sandbox_factory(throttle_rate=0.5, seed=3)
    sequence = outcomes(sandbox, 12)
    sandbox.reset()
    assert outcomes(sandbox, 12) == sequence


def test_latency_jitter_stays_within_twenty_percent_of_the_mean():
    injector = FaultInjector(seed=1, latency_ms=100, rates={})
    latencies = [injector.decide().latency_seconds for _ in range(1000)]
    assert min(latencies) >= 0.08
    assert max(latencies) <= 0.12


def test_fault_rates_adding_up_to_more_than_one_are_refused():
    with pytest.raises(ValueError, match="at most 1"):
        SandboxConfig(throttle_rate=0.6, transient_error_rate=0.6)


def test_each_rate_is_the_share_of_requests():
    injector = FaultInjector(seed=5, latency_ms=0, rates={"throttle": 0.25, "slow_response": 0.25})
    faults = [injector.decide().fault for _ in range(4000)]
    assert 800 < faults.count("throttle") < 1200
    assert 800 < faults.count("slow_response") < 1200


# stats, events, reset ------------------------------------------------------------------------
def test_max_in_flight_counts_concurrent_requests(sandbox_factory):
    sandbox = sandbox_factory(latency_ms=1000)
    threads = [
        threading.Thread(target=post_events, args=(sandbox, [make_event()])) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # in_flight itself may still be settling: a client can read its answer before the
    # handler thread has counted the request as finished
    assert sandbox.stats()["max_in_flight"] == 4


def test_stats_count_requests_by_outcome(sandbox):
    post_events(sandbox, [make_event(), make_event(event_id="order-2")])
    post_events(sandbox, [make_event(event_name="")])
    requests.post(sandbox.events_url(), json={"data": [make_event()]}, timeout=10)
    stats = requests.get(f"{sandbox.url}/__stats", timeout=10).json()
    assert stats["requests"] == 3
    assert stats["accepted_requests"] == 1
    assert stats["rejected_requests"] == 2
    assert stats["rejected_by_code"] == {"100": 1, "104": 1}
    assert stats["rejected_by_subcode"] == {"2804006": 1}
    assert stats["events_received"] == 2


def test_events_with_a_repeated_event_id_are_counted_as_duplicates(sandbox):
    post_events(sandbox, [make_event(event_id="a"), make_event(event_id="b")])
    post_events(sandbox, [make_event(event_id="a")])
    stats = sandbox.stats()
    assert (stats["events_received"], stats["duplicate_events"]) == (3, 1)


def test_events_without_an_event_id_are_counted_and_never_taken_for_duplicates(sandbox):
    post_events(sandbox, [make_event(event_id=None), make_event(event_id=None)])
    stats = sandbox.stats()
    assert (stats["events_without_event_id"], stats["duplicate_events"]) == (2, 0)


def test_an_event_id_sent_as_a_number_is_a_duplicate_of_the_same_id_as_text(sandbox):
    post_events(sandbox, [make_event(event_id="42")])
    post_events(sandbox, [make_event(event_id=42)])
    assert sandbox.stats()["duplicate_events"] == 1


def test_an_event_id_is_no_longer_a_duplicate_after_the_dedup_window(sandbox_factory, monkeypatch):
    monkeypatch.setattr(store_module, "DEDUP_WINDOW_SECONDS", 0.2)  # Meta's is 48 hours
    sandbox = sandbox_factory()
    post_events(sandbox, [make_event(event_id="a")])
    time.sleep(0.3)
    post_events(sandbox, [make_event(event_id="a")])
    assert (sandbox.stats()["events_received"], sandbox.stats()["duplicate_events"]) == (2, 0)


def test_duplicate_counting_forgets_the_oldest_event_ids_beyond_its_bound(
    sandbox_factory, monkeypatch
):
    monkeypatch.setattr(store_module, "MAX_DEDUP_KEYS", 2)
    sandbox = sandbox_factory()
    post_events(sandbox, [make_event(event_id=name) for name in "abc"])
    post_events(sandbox, [make_event(event_id="a")])  # forgotten: not counted
    post_events(sandbox, [make_event(event_id="c")])  # remembered: counted
    assert sandbox.stats()["duplicate_events"] == 1


def test_stats_count_events_by_name_pixel_and_test_event_code(sandbox):
    post_events(sandbox, [make_event(), make_event(event_name="Lead")], test_event_code="T1")
    post_events(sandbox, [make_event(event_name="Lead")])
    stats = sandbox.stats()
    assert stats["events_by_event_name"] == {"Lead": 2, "Purchase": 1}
    assert stats["events_by_pixel_id"] == {PIXEL: 3}
    assert stats["events_by_test_event_code"] == {"T1": 2, "(none)": 1}


def test_events_endpoint_lists_accepted_events(sandbox):
    post_events(sandbox, [make_event(event_id="a"), make_event(event_id="b")])
    records = requests.get(f"{sandbox.url}/__events", timeout=10).json()
    assert [record["event"]["event_id"] for record in records] == ["a", "b"]
    last = requests.get(f"{sandbox.url}/__events?limit=1", timeout=10).json()
    assert [record["event"]["event_id"] for record in last] == ["b"]


def test_events_endpoint_takes_a_limit_of_more_digits_than_any_count_as_every_event(sandbox):
    post_events(sandbox, [make_event(event_id="a"), make_event(event_id="b")])
    response = requests.get(f"{sandbox.url}/__events?limit={'9' * 5000}", timeout=10)
    assert [record["event"]["event_id"] for record in response.json()] == ["a", "b"]


@pytest.mark.parametrize("limit", ["last", "-1", "1.5", "²", ""])
def test_events_endpoint_refuses_a_limit_that_is_no_whole_number(sandbox, limit):
    post_events(sandbox, [make_event(event_id="a"), make_event(event_id="b")])
    response = requests.get(f"{sandbox.url}/__events?limit={limit}", timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 100)
    assert graph_error(response)["message"] == (f"limit must be a whole number >= 0, got {limit!r}")


def test_get_of_an_unknown_path_is_rejected_with_code_2500(sandbox):
    response = requests.get(f"{sandbox.url}/__nope", timeout=10)
    assert (response.status_code, graph_error(response)["code"]) == (400, 2500)


def test_reset_endpoint_clears_events_and_counters(sandbox):
    post_events(sandbox, [make_event()])
    response = requests.post(f"{sandbox.url}/__reset", timeout=10)
    assert response.status_code == 200
    assert sandbox.accepted_events() == []
    assert sandbox.stats()["requests"] == 0


def test_reset_endpoint_ignores_its_body_even_if_it_claims_gzip_and_is_not(sandbox):
    post_events(sandbox, [make_event()])
    headers = {"Content-Encoding": "gzip"}
    response = requests.post(f"{sandbox.url}/__reset", data=b"nogzip", headers=headers, timeout=10)
    assert response.json() == {"reset": True}
    assert sandbox.accepted_events() == []


def test_memory_keeps_only_the_most_recent_events_when_bounded(sandbox_factory):
    sandbox = sandbox_factory(max_events_in_memory=2)
    post_events(sandbox, [make_event(event_id=name) for name in "abc"])
    assert [record["event"]["event_id"] for record in sandbox.accepted_events()] == ["b", "c"]
    assert sandbox.stats()["events_received"] == 3


# recording -------------------------------------------------------------------------------------
def test_accepted_events_are_appended_to_jsonl(sandbox_factory, tmp_path):
    path = tmp_path / "events.jsonl"
    sandbox = sandbox_factory(record_jsonl=path)
    post_events(sandbox, [make_event(event_id="a"), make_event(event_id="b")], test_event_code="T")
    post_events(sandbox, [make_event(event_name="")])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"]["event_id"] for line in lines] == ["a", "b"]
    assert lines[0]["params"]["test_event_code"] == "T"
    assert isinstance(lines[0]["received_at"], float)


def test_accepted_events_are_inserted_into_sqlite(sandbox_factory, tmp_path):
    path = tmp_path / "events.db"
    sandbox = sandbox_factory(record_sqlite=path)
    post_events(sandbox, [make_event(event_id="a")], test_event_code="T")
    sandbox.stop()
    # closing: a connection's own `with` only commits (Python 3.13 warns of it unclosed)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT event_name, event_id, pixel_id, test_event_code, event_json FROM events"
        ).fetchall()
    assert [row[:4] for row in rows] == [("Purchase", "a", PIXEL, "T")]
    assert json.loads(rows[0][4])["event_id"] == "a"


# report and CLI ------------------------------------------------------------------------------
def test_report_counts_events_and_redacts_unhashed_user_data(sandbox, capsys):
    post_events(sandbox, [make_event(), make_event(event_name="Lead")], test_event_code="T9")
    assert cli.main(["report", "--url", sandbox.url]) == 0
    output = capsys.readouterr().out
    assert "Purchase" in output and "Lead" in output and "T9" in output
    assert HASH in output
    assert "203.0.113.9" not in output


EXTINFO = ["i2", "com.example.shop", "1.0", "1.0", "17.4", "iPhone15,3", "en_GB", "GMT",
           "Vodafone", "430", "932", "3", "6", "256", "120", "Europe/London"]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "sent", "shown"),
    [
        ("event_source_url", "https://shop.example/thanks?email=jane@example.com#t",
         "https://shop.example/thanks?<redacted>"),
        ("referrer_url", "https://mail.example/inbox#jane@example.com",
         "https://mail.example/inbox#<redacted>"),
        ("custom_data", {"search_string": "jane doe 12 elm street", "value": 12.5,
                         "currency": "EUR"},
         {"search_string": "<redacted>", "value": 12.5, "currency": "EUR"}),
        ("custom_data", {"note": "ship to jane@example.com", "value": 12.5, "currency": "EUR",
                         "contents": [{"id": "a1", "gift_to": "bob@example.org"}]},
         {"note": "<redacted>", "value": 12.5, "currency": "EUR", "contents": "<redacted>"}),
        ("app_data", {"advertiser_tracking_enabled": 1, "extinfo": EXTINFO},
         {"advertiser_tracking_enabled": 1, "extinfo": "<redacted>"}),
        ("original_event_data", {"event_name": "Purchase", "buyer": "jane@example.com"},
         "<redacted>"),
    ],
)  # fmt: skip
def test_report_masks_personal_data_outside_user_data_in_its_sample_event(
    sandbox, capsys, field, sent, shown
):
    post_events(sandbox, [make_event(**{field: sent})])
    assert cli.main(["report", "--url", sandbox.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sample_event"][field] == shown


def test_report_of_a_running_sandbox_names_the_rules_it_rejected_requests_for(sandbox, capsys):
    post_events(sandbox, [make_event(event_time=1)])
    post_events(
        sandbox, [make_event(user_data={"em": ["mary@example.com"], "client_user_agent": "x"})]
    )
    assert cli.main(["report", "--url", sandbox.url]) == 0
    output = capsys.readouterr().out
    assert (
        "rejected because: event_time_too_old (2804003): 1, user_data_not_hashed (2804011): 1\n"
    ) in output
    assert "mary@example.com" not in output


def test_report_of_a_running_sandbox_counts_requests_cut_short_by_their_client(sandbox, capsys):
    head = f"POST /v24.0/{PIXEL}/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as connection:
        connection.sendall(head.encode() + b'{"data": [')
        connection.shutdown(socket.SHUT_WR)
        assert connection.recv(65536) == b""
    assert cli.main(["report", "--url", sandbox.url]) == 0
    assert "requests: 1 (0 accepted, 0 rejected, 1 cut short by the client)" in (
        capsys.readouterr().out
    )


def test_report_of_a_running_sandbox_counts_events_no_longer_in_memory(sandbox_factory, capsys):
    sandbox = sandbox_factory(max_events_in_memory=1)
    post_events(sandbox, [make_event(event_id=name) for name in "abc"])
    assert cli.main(["report", "--url", sandbox.url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["events"], summary["by_event_name"]) == (3, {"Purchase": 3})
    assert summary["sample_event"]["event_id"] == "c"


def test_report_reads_a_jsonl_recording(sandbox_factory, tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    sandbox = sandbox_factory(record_jsonl=path)
    post_events(sandbox, [make_event(), make_event(event_name="Lead")])
    assert cli.main(["report", "--jsonl", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_event_name"] == {"Purchase": 1, "Lead": 1}


def test_report_skips_blank_lines_of_a_jsonl_recording(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    record = json.dumps({"params": {"pixel_id": PIXEL}, "event": {"event_name": "Lead"}})
    path.write_text(f"\n{record}\n  \n{record}\n\n", encoding="utf-8")
    assert cli.main(["report", "--jsonl", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["events"] == 2


def test_report_of_an_empty_recording_shows_no_sample_event(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    path.write_text("", encoding="utf-8")
    assert cli.main(["report", "--jsonl", str(path)]) == 0
    output = capsys.readouterr().out
    assert "events: 0" in output
    assert "sample event" not in output


def test_report_reads_a_sqlite_recording(sandbox_factory, tmp_path, capsys):
    path = tmp_path / "events.db"
    sandbox = sandbox_factory(record_sqlite=path)
    post_events(sandbox, [make_event(), make_event(event_name="Lead")], test_event_code="T2")
    sandbox.stop()
    assert cli.main(["report", "--sqlite", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["events"], summary["by_test_event_code"]) == (2, {"T2": 2})


def test_report_of_a_stopped_sandboxs_sqlite_recording_leaves_no_file_beside_it(
    sandbox_factory, tmp_path, capsys
):
    path = tmp_path / "events.db"
    sandbox = sandbox_factory(record_sqlite=path)
    post_events(sandbox, [make_event()])
    sandbox.stop()
    assert cli.main(["report", "--sqlite", str(path)]) == 0
    # nor needs it to write there: it reads a recording in a read-only directory too
    assert [file.name for file in tmp_path.iterdir()] == ["events.db"]


@pytest.mark.parametrize("name", ["run#2.db", "run?2.db", "run%41.db"])
def test_report_reads_a_sqlite_recording_whose_name_holds_uri_characters(
    sandbox_factory, tmp_path, capsys, name
):
    path = tmp_path / name
    sandbox = sandbox_factory(record_sqlite=path)
    post_events(sandbox, [make_event(event_name="Lead")])
    sandbox.stop()
    assert cli.main(["report", "--sqlite", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["by_event_name"] == {"Lead": 1}


def test_report_piped_into_a_reader_that_stops_early_exits_quietly(tmp_path):
    # ~1 MB of report, more than a pipe holds: the report is still writing when the reader
    # (like `head -n 1`) has gone.
    path = tmp_path / "events.jsonl"
    lines = (
        json.dumps({"params": {"pixel_id": PIXEL}, "event": {"event_name": f"Event{n:05}"}})
        for n in range(30_000)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = subprocess.Popen(
        [sys.executable, "-m", "target_meta_capi.sandbox", "report", "--jsonl", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert report.stdout is not None and report.stderr is not None
    reader = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.stdin.readline(), end='')"],
        stdin=report.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report.stdout.close()  # the reader has gone; now nothing reads the pipe
    assert report.wait(timeout=60) == 128 + signal.SIGPIPE
    assert reader.stdout == f"Sandbox report: {path}\n"
    assert report.stderr.read() == b""


@contextlib.contextmanager
def sandbox_cli(
    *args: str, largest_file_bytes: int | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`target-meta-capi-sandbox ARGS --port 0` started, and its URL once it listens; with
    `largest_file_bytes`, its writes past that size fail (EFBIG) as on a full disk."""
    command = [sys.executable, "-m", "target_meta_capi.sandbox"]
    if largest_file_bytes is not None:
        # set by the sandbox's Python, not by a preexec_fn, which is unsafe in a process
        # with threads (a test's sandbox)
        command[1:] = [
            "-c",
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({largest_file_bytes},) * 2); "
            "sys.argv[0] = 'target-meta-capi-sandbox'; "
            "runpy.run_module('target_meta_capi.sandbox', run_name='__main__')",
        ]
    process = subprocess.Popen(
        [*command, *args, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        assert process.stderr is not None
        line = ""
        while " listening on " not in line:
            line = process.stderr.readline()
            assert line, "the sandbox exited before listening"
        yield process, line.split(" listening on ", 1)[1].split()[0]
    finally:
        if process.poll() is None:
            process.terminate()  # as a user stops it: also lets a coverage run save its data
            process.wait(timeout=10)


def read_log_until(process: subprocess.Popen[str], text: str) -> str:
    """The sandbox's stderr up to the line holding `text`: it logs a request after answering
    it, so a client holding the answer may stop the sandbox before that line is written."""
    assert process.stderr is not None
    read = ""
    while text not in read:
        line = process.stderr.readline()
        assert line, f"the sandbox exited without logging {text!r}"
        read += line
    return read


@pytest.fixture
def sandbox_process():
    with sandbox_cli("--seed", "1") as started:
        yield started


def test_cli_serves_logs_without_token_and_stops_on_sigterm(sandbox_process):
    process, url = sandbox_process
    response = requests.post(
        f"{url}/v24.0/{PIXEL}/events",
        params={"access_token": TOKEN},
        json={"data": [make_event()]},
        timeout=10,
    )
    assert response.status_code == 200
    log = read_log_until(process, f"POST /v24.0/{PIXEL}/events 200")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    log += process.stderr.read()
    assert TOKEN not in log
    assert "1 event received" in log


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.7", False),
        ("sandbox.internal", False),
    ],
)
def test_cli_tells_a_host_other_machines_can_reach_from_a_loopback_one(host, loopback):
    # a host other machines can reach is warned about at start (not bound here: the tests
    # listen on loopback only)
    assert is_loopback_host(host) is loopback


def test_cli_on_loopback_gives_no_warning_about_other_machines():
    with sandbox_cli("--host", "127.0.0.1", "--quiet") as (process, _):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "reachable from other machines" not in process.stderr.read()


def test_cli_answer_message_is_added_to_every_accepted_answer_in_order():
    notes = ("Parameter x is deprecated", "Use y instead")
    with sandbox_cli("--quiet", "--answer-message", notes[0], "--answer-message", notes[1]) as (
        _,
        url,
    ):
        response = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            params={"access_token": TOKEN},
            json={"data": [make_event()]},
            timeout=10,
        )
    assert response.json()["messages"] == list(notes)


def test_cli_serve_command_serves_until_it_is_signalled():
    with sandbox_cli("serve", "--quiet") as (process, url):
        time.sleep(1.0)  # the CLI looks for a stop request every 0.5 s: it has looked already
        assert requests.get(f"{url}/__stats", timeout=10).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    assert "sandbox stopped: 0 requests accepted" in process.stderr.read()


def test_the_pytest_fixtures_docs_sandbox_md_gives_serve_a_users_own_tests(tmp_path):
    document = (Path(__file__).parent.parent / "docs" / "sandbox.md").read_text()
    [conftest] = [
        block
        for block in re.findall(r"^```python\n(.*?)^```", document, re.M | re.S)
        if "@pytest.fixture" in block
    ]
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_user.py").write_text(
        "import requests\n"
        "def test_uses_both(sandbox, sandbox_factory):\n"
        "    throttling = sandbox_factory(throttle_rate=1.0)\n"
        "    for server, status in ((sandbox, 400), (throttling, 400)):\n"
        "        answer = requests.post(server.events_url(), json={}, timeout=10)\n"
        "        assert answer.status_code == status\n"
        "    assert sandbox.stats()['rejected_by_code'] == {'104': 1}\n"
        "    assert throttling.stats()['rejected_by_code'] == {'17': 1}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_cli_help_explains_every_option_of_the_documented_table():
    documented = re.findall(
        r"^\| `(--[a-z0-9-]+)",
        (Path(__file__).parent.parent / "docs" / "sandbox.md").read_text(),
        re.M,
    )
    actions = [
        action
        for action in cli._serve_parser()._actions
        if action.option_strings != ["-h", "--help"]
    ]
    assert sorted(action.option_strings[0] for action in actions) == sorted(documented)
    assert [action.option_strings[0] for action in actions if not action.help] == []


def test_cli_refuses_fault_rates_adding_up_to_more_than_one(capsys):
    assert cli.main(["--throttle-rate", "0.7", "--transient-error-rate", "0.7"]) == 2
    assert "at most 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "70000"], "--port"),
        (["--max-events-in-memory", "-1"], "--max-events-in-memory"),
        (["--throttle-rate", "1.5"], "--throttle-rate"),
        (["--latency-ms", "-1"], "--latency-ms"),
        (["--latency-ms", "inf"], "--latency-ms"),
        (["--slow-response-seconds", "nan"], "--slow-response-seconds"),
        (["--usage-percent", "101"], "--usage-percent"),
        (["--max-events-in-memory", str(2**64)], "--max-events-in-memory"),
        (["--retry-after", "9" * 5000], "--retry-after"),
    ],
)
def test_cli_refuses_an_out_of_range_number_naming_the_option(capsys, args, option):
    with pytest.raises(SystemExit) as exit_:
        # an address not of this machine: were the value let through, no sandbox would serve
        cli.main([*args, "--host", "192.0.2.1"])
    assert exit_.value.code == 2
    assert f"error: argument {option}: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--throttle-rate", "abc", "must be a number"),
        ("--latency-ms", "abc", "must be a number"),
        # a digit to str.isdigit(), not to int()
        ("--port", "²", "a port is a whole number from 0 to 65535"),
        ("--max-events-in-memory", "²", "must be a whole number >= 0"),
    ],
)
def test_cli_refuses_a_value_that_is_no_number_saying_so(capsys, option, value, problem):
    with pytest.raises(SystemExit) as exit_:
        cli.main([option, value, "--host", "192.0.2.1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: argument {option}: {problem}, got {value}\n")


@pytest.mark.parametrize(
    "option",
    ["--host", "--pixel-id", "--access-token", "--app-secret", "--record-sqlite",
     "--reject-event-id"],
)  # fmt: skip
def test_cli_refuses_an_empty_value_naming_its_option(capsys, option):
    # as `--pixel-id "$PIXEL_ID"` gives it with the variable unset: a sandbox serving pixel ""
    # (or on every interface, or recording to a temporary database) is not what was meant
    with socket.socket() as taken, pytest.raises(SystemExit) as exit_:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        # were the value let through, the sandbox would not start on the port taken, not serve
        cli.main(["--port", str(taken.getsockname()[1]), option, ""])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(f"error: argument {option}: must not be empty\n")


def test_cli_asks_for_another_port_when_its_port_is_taken(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli.main(["--port", str(taken.getsockname()[1])]) == 2
    assert capsys.readouterr().err.rstrip().endswith("pick another --port")


def test_cli_asks_for_another_port_when_its_port_needs_a_privilege_it_lacks():
    command = [sys.executable, "-m", "target_meta_capi.sandbox", "--port", "80"]
    if os.geteuid() == 0:  # as a user without the privilege
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv to run as another user")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run(
            [*as_nobody, sys.executable, "-c", "import target_meta_capi"],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode != 0:  # a Python under /root, say, which nobody may read
            pytest.skip("this Python cannot run as another user here")
        command = [*as_nobody, *command]
    with contextlib.suppress(OSError):
        if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
            pytest.skip("any user may listen on port 80 here")
    started = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.rstrip().endswith("Permission denied); pick another --port")


def test_cli_points_at_the_host_when_it_cannot_listen_on_that_address(capsys):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the port is not at fault
    assert cli.main(["--host", "192.0.2.1", "--port", "0"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("check --host")


@pytest.mark.parametrize("option", ["--record-jsonl", "--record-sqlite"])
def test_cli_refuses_a_recording_file_it_cannot_open_naming_the_option(capsys, tmp_path, option):
    path = tmp_path / "missing-directory" / "events"
    assert cli.main(["--port", "0", option, str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"target-meta-capi-sandbox: error: argument {option}: cannot open {path}"
    )


def test_cli_refuses_a_sqlite_recording_whose_events_table_is_not_the_sandboxs(capsys, tmp_path):
    # another program's table, or an older sandbox's: every accepted request would fail on it
    path = tmp_path / "events.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, name TEXT)")
    assert cli.main(["--port", "0", "--record-sqlite", str(path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"target-meta-capi-sandbox: error: argument --record-sqlite: cannot open {path} "
        "(its table events is not the sandbox's: no column received_at, pixel_id"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("max_events_in_memory", -1),
        ("max_events_in_memory", 2**64),
        ("retry_after_seconds", -1),
        ("usage_percent", 101),
        ("throttle_rate", 1.5),
        ("latency_ms", -1),
        ("idle_timeout_seconds", 0),
        ("idle_timeout_seconds", -1),
    ],
)
def test_config_refuses_a_setting_out_of_range_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        SandboxConfig(**{field: value})


# a wait of inf seconds fails in every request (OverflowError) and one of nan is no wait
@pytest.mark.parametrize("field", ["latency_ms", "slow_response_seconds", "idle_timeout_seconds"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_config_refuses_a_duration_that_is_not_a_finite_number(field, value):
    with pytest.raises(ValueError, match=field):
        SandboxConfig(**{field: value})


class _QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def web_server_serving(directory: Path) -> Iterator[str]:
    """A plain web server serving the files of ``directory``, not a sandbox: its URL."""
    files = functools.partial(_QuietFileHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), files) as web_server:
        threading.Thread(target=web_server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{web_server.server_address[1]}"
        finally:
            web_server.shutdown()


@pytest.mark.parametrize(
    ("stats", "problem"),
    [
        (b"{}", "/__stats answered no sandbox's counters: is it a sandbox?"),
        (b"<html>a web page</html>", "/__stats answered no JSON: is it a sandbox?"),
    ],
)
def test_report_of_a_url_where_no_sandbox_answers_says_so_naming_the_option(
    capsys, tmp_path, stats, problem
):
    (tmp_path / "__stats").write_bytes(stats)
    with web_server_serving(tmp_path) as url:
        assert cli.main(["report", "--url", url]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error == f"target-meta-capi-sandbox report: error: argument --url: {url}{problem}"


def test_report_saying_no_sandbox_answers_masks_a_token_in_the_url(capsys, tmp_path):
    (tmp_path / "index.html").write_bytes(b"<html>a web page</html>")
    with web_server_serving(tmp_path) as url:
        assert cli.main(["report", "--url", f"{url}/?access_token=EAAB-SECRET#"]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error.endswith("answered no JSON: is it a sandbox?")
    assert "EAAB-SECRET" not in error


@pytest.mark.parametrize("option", ["--url", "--jsonl", "--sqlite"])
def test_report_refuses_an_empty_source_naming_its_option(capsys, option):
    # as `report --url "$SANDBOX_URL"` with the variable unset gives it
    with pytest.raises(SystemExit) as exit_:
        cli.main(["report", option, ""])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"report: error: argument {option}: must not be empty\n"
    )


def test_report_counts_a_test_event_code_of_another_kind_as_its_text(capsys, tmp_path):
    path = tmp_path / "events.jsonl"
    record = {"params": {"test_event_code": 5}, "event": {"event_name": "Lead"}}
    path.write_text(json.dumps(record) + "\n")
    assert cli.main(["report", "--jsonl", str(path)]) == 0
    assert "by test_event_code:\n  5                                1\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    "line", ["[1]", '{"event": [1]}', '{"params": "pixel"}', '{"a": 1}', "{bad"]
)
def test_report_names_the_line_of_a_jsonl_file_that_is_not_a_recording(capsys, tmp_path, line):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event": {"event_name": "Lead"}}) + "\n" + line + "\n")
    assert cli.main(["report", "--jsonl", str(path)]) == 2
    [error] = capsys.readouterr().err.splitlines()
    assert error.startswith(
        f"target-meta-capi-sandbox report: error: argument --jsonl: {path} line 2 "
    )


def test_an_event_on_the_reject_list_is_refused_as_an_invalid_event(sandbox_factory):
    sandbox = sandbox_factory(reject_event_ids=("order-2",))
    response = post_events(sandbox, [make_event(), make_event(event_id="order-2")])
    assert response.status_code == 400
    error = graph_error(response)
    assert (error["code"], error["error_subcode"]) == (100, 2804099)
    assert "reject list" in error["error_user_msg"]
    assert post_events(sandbox, [make_event()]).status_code == 200
    assert [event["event"]["event_id"] for event in sandbox.accepted_events()] == ["order-1"]


def test_an_event_id_sent_as_a_number_is_refused_like_the_same_id_as_text(sandbox_factory):
    sandbox = sandbox_factory(reject_event_ids=("42",))
    response = post_events(sandbox, [make_event(event_id=42)])
    assert (response.status_code, graph_error(response)["error_subcode"]) == (400, 2804099)


@pytest.mark.parametrize("event_id", [["order-2"], {"id": "order-2"}], ids=["list", "object"])
def test_an_event_id_that_is_not_a_scalar_is_checked_against_the_reject_list(
    sandbox_factory, event_id
):
    sandbox = sandbox_factory(reject_event_ids=("order-2",))
    response = post_events(sandbox, [make_event(event_id=event_id)])
    assert response.status_code == 200
    assert sandbox.stats()["accepted_requests"] == 1


def test_cli_refuses_events_on_its_reject_list():
    with sandbox_cli("--reject-event-id", "order-2", "--reject-event-id", "order-3") as (_, url):
        answers = [
            requests.post(
                f"{url}/v24.0/{PIXEL}/events",
                json={"data": [make_event(event_id=event_id)], "access_token": TOKEN},
                timeout=10,
            ).status_code
            for event_id in ("order-1", "order-2", "order-3")
        ]
    assert answers == [200, 400, 400]


def test_cli_reports_the_usage_it_is_given_on_accepted_answers():
    with sandbox_cli("--usage-percent", "40") as (_, url):
        response = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            json={"data": [make_event()], "access_token": TOKEN},
            timeout=10,
        )
    (entries,) = json.loads(response.headers["X-Business-Use-Case-Usage"]).values()
    assert entries[0]["call_count"] == 40


def test_cli_delays_answers_by_the_latency_it_is_given():
    with sandbox_cli("--latency-ms", "300") as (_, url):
        started = time.monotonic()
        response = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            json={"data": [make_event()], "access_token": TOKEN},
            timeout=10,
        )
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.24  # 300 ms +/- 20%


def test_cli_throttles_with_metas_time_to_regain_access():
    with sandbox_cli("--throttle-rate", "1", "--regain-access-minutes", "5") as (_, url):
        response = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            json={"data": [make_event()], "access_token": TOKEN},
            timeout=10,
        )
    assert response.status_code == 400
    (entries,) = json.loads(response.headers["X-Business-Use-Case-Usage"]).values()
    assert entries[0]["estimated_time_to_regain_access"] == 5


@pytest.mark.parametrize("sqlite_name", ["events", "./events", "symbolic-link", "hard-link"])
def test_cli_refuses_one_file_for_both_recordings_naming_the_option(
    capsys, tmp_path, monkeypatch, sqlite_name
):
    # SQLite would write its pages over the JSONL lines: one of the two recordings lost
    monkeypatch.chdir(tmp_path)
    recording = tmp_path / "events"
    recording.write_text('{"an earlier": "line"}\n')
    (tmp_path / "symbolic-link").symlink_to(recording)
    (tmp_path / "hard-link").hardlink_to(recording)
    assert (
        cli.main(["--port", "0", "--record-jsonl", "events", "--record-sqlite", sqlite_name]) == 2
    )
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"target-meta-capi-sandbox: error: argument --record-sqlite: cannot open {sqlite_name} "
        "(the JSONL recording goes there: give each its own file)"
    )
    assert recording.read_text() == '{"an earlier": "line"}\n'


def _post_until_refused(url: str, count: int) -> list[requests.Response]:
    """`count` requests of one large event each, the first ones recorded, the later ones
    past the recording's size limit; stops at the first one answered otherwise than 200."""
    answers = []
    for number in range(count):
        event = make_event(event_id=f"order-{number}", custom_data={"value": 1, "currency": "EUR",
                           "note": "x" * 3000})  # fmt: skip
        answer = requests.post(
            f"{url}/v24.0/{PIXEL}/events",
            params={"access_token": TOKEN},
            json={"data": [event]},
            timeout=10,
        )
        answers.append(answer)
        if answer.status_code != 200:
            break
    return answers


def test_a_request_the_jsonl_recording_cannot_take_is_answered_transient_and_counted_nowhere(
    tmp_path,
):
    recording = tmp_path / "events.jsonl"
    with sandbox_cli("--record-jsonl", str(recording), largest_file_bytes=8000) as (process, url):
        answers = _post_until_refused(url, 10)
        stats = requests.get(f"{url}/__stats", timeout=10).json()
        assert [answer.status_code for answer in answers] == [200, 200, 500]
        log = read_log_until(process, "events not recorded")
        process.terminate()
        assert process.wait(timeout=10) == 0
        log += process.stderr.read()
    assert answers[-1].json()["error"]["code"] == 1
    assert answers[-1].json()["error"]["is_transient"] is True
    lines = [json.loads(line) for line in recording.read_text().splitlines()]  # no part line
    assert [line["event"]["event_id"] for line in lines] == ["order-0", "order-1"]
    assert (stats["events_received"], stats["events_in_memory"], stats["duplicate_events"]) == (
        2, 2, 0)  # fmt: skip
    assert stats["events_by_event_name"] == {"Purchase": 2}
    assert f"cannot write {recording} (File too large): events not recorded" in log
    assert "Traceback" not in log


def test_a_request_the_sqlite_recording_cannot_take_is_cut_from_the_jsonl_recording_too(
    tmp_path,
):
    jsonl, database = tmp_path / "events.jsonl", tmp_path / "events.db"
    with sandbox_cli(
        "--record-jsonl", str(jsonl), "--record-sqlite", str(database),
        largest_file_bytes=40_000,
    ) as (process, url):  # fmt: skip
        answers = _post_until_refused(url, 30)
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert answers[-1].status_code == 500
    with contextlib.closing(sqlite3.connect(database)) as connection:
        stored = [row[0] for row in connection.execute("SELECT event_id FROM events ORDER BY id")]
    lines = [json.loads(line)["event"]["event_id"] for line in jsonl.read_text().splitlines()]
    assert lines == stored == [f"order-{number}" for number in range(len(answers) - 1)]


def _answer_to_token(url: str, token: str) -> int:
    return requests.post(
        f"{url}/v24.0/{PIXEL}/events",
        params={"access_token": token},
        json={"data": [make_event()]},
        timeout=10,
    ).status_code


def test_cli_takes_the_token_from_an_environment_variable_and_keeps_it_out_of_ps():
    secret = "EAAB-a-real-looking-token"
    with sandbox_cli(
        "--access-token-env", "TARGET_META_CAPI_ACCESS_TOKEN",
        env={"TARGET_META_CAPI_ACCESS_TOKEN": secret},
    ) as (process, url):  # fmt: skip
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        answers = (_answer_to_token(url, secret), _answer_to_token(url, TOKEN))
    assert secret.encode() not in command_line
    assert answers == (200, 400)  # the default token is no longer accepted


def test_cli_takes_the_token_from_a_file_and_keeps_it_out_of_ps(tmp_path):
    secret = "EAAB-a-real-looking-token"
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    with sandbox_cli("--access-token-file", str(token_file)) as (process, url):
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert _answer_to_token(url, secret) == 200
    assert secret.encode() not in command_line


@pytest.mark.parametrize("source", ["env", "file"])
def test_cli_takes_the_app_secret_from_outside_its_command_line(tmp_path, source):
    secret = "an-app-secret-kept-out-of-ps"
    (tmp_path / "secret").write_text(secret + "\n")
    option, value = (
        ("--app-secret-env", "SANDBOX_TEST_APP_SECRET")
        if source == "env"
        else ("--app-secret-file", str(tmp_path / "secret"))
    )
    with sandbox_cli(option, value, env={"SANDBOX_TEST_APP_SECRET": secret}) as (process, url):
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        proof = hmac.new(secret.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
        answers = [
            requests.post(
                f"{url}/v24.0/{PIXEL}/events",
                json={"data": [make_event()], "access_token": TOKEN, **extra},
                timeout=10,
            ).status_code
            for extra in ({"appsecret_proof": proof}, {})
        ]
    assert secret.encode() not in command_line
    assert answers == [200, 400]


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("--access-token-env", "SANDBOX_TEST_UNSET_VARIABLE",
         "the environment variable SANDBOX_TEST_UNSET_VARIABLE is not set or empty"),
        ("--access-token-file", "missing", "cannot read missing (No such file or directory)"),
        ("--access-token-file", "empty", "empty is empty"),
        ("--app-secret-env", "SANDBOX_TEST_UNSET_VARIABLE",
         "the environment variable SANDBOX_TEST_UNSET_VARIABLE is not set or empty"),
        ("--app-secret-file", "empty", "empty is empty"),
    ],
)  # fmt: skip
def test_cli_refuses_a_token_source_without_a_token_naming_the_option(
    capsys, tmp_path, monkeypatch, option, value, error
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SANDBOX_TEST_UNSET_VARIABLE", raising=False)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--port", "0", option, value])
    assert exited.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith(f"argument {option}: {error}")
