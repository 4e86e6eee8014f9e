"""A token put into graph_url (its query string, or user:password before the host) is shown
nowhere: not in a request's repr, an error, a log line, the summary, dry-run output or dead
letters."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from target_meta_capi.capi import (
    ConfigurationError,
    EventRequest,
    EventRequestAsync,
    HttpServiceInterface,
    NetworkError,
    RetryPolicy,
)
from target_meta_capi.sandbox import SandboxServer
from target_meta_capi.settings import settings_errors

from ._http_fixture import FakeGraphServer, Reply
from ._target_support import ACCESS_TOKEN, PIXEL_ID, order, order_stream, orders_config

TARGET = Path(sys.executable).with_name("target-meta-capi")
# distinctive, and not shaped like a Graph token (EAA...), which is masked wherever it appears
URL_TOKEN = "QueryTok4242secretZZ"
EVENT = {"event_name": "Purchase", "event_time": 1, "action_source": "website"}


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize("request_class", [EventRequest, EventRequestAsync])
def test_a_requests_repr_masks_graph_urls_userinfo_and_query(request_class: type) -> None:
    request = request_class(
        pixel_id=PIXEL_ID,
        graph_url=f"https://me:{URL_TOKEN}@graph.example.com/?access_token={URL_TOKEN}",
    )

    shown = repr(request) + str(request)

    assert URL_TOKEN not in shown
    assert "graph_url='https://<redacted>@graph.example.com/?<redacted>'" in shown


def test_the_error_refusing_a_graph_url_masks_its_userinfo_and_query() -> None:
    request = EventRequest(
        pixel_id=PIXEL_ID,
        events=[EVENT],
        access_token=ACCESS_TOKEN,
        graph_url=f"ftp://me:{URL_TOKEN}@graph.example.com?access_token={URL_TOKEN}",
    )

    with pytest.raises(ConfigurationError) as failure:
        request.execute()

    assert URL_TOKEN not in str(failure.value) + repr(failure.value)
    assert "'ftp://<redacted>@graph.example.com?<redacted>'" in str(failure.value)


def _request_refused_with_a_token_in_graph_urls_query() -> EventRequest:
    return EventRequest(
        pixel_id=PIXEL_ID,
        events=[EVENT],
        access_token=ACCESS_TOKEN,
        graph_url=f"http://127.0.0.1:{_refused_port()}/?access_token={URL_TOKEN}",
        retry_policy=RetryPolicy(max_retries=0),
    )


class _ServiceQuotingTheUrl(HttpServiceInterface):
    """An HTTP library whose error quotes the URL it could not reach, query and all (requests
    did: "Max retries exceeded with url: /?access_token=...")."""

    def execute(self, method, url, headers, body, timeout):
        raise requests.ConnectionError(f"cannot reach {url}")


def test_a_network_error_quoting_the_request_url_masks_graph_urls_query() -> None:
    request = _request_refused_with_a_token_in_graph_urls_query()
    request.http_service = _ServiceQuotingTheUrl()

    with pytest.raises(NetworkError) as failure:
        request.execute()

    assert "cannot reach http://127.0.0.1:" in str(failure.value)
    assert URL_TOKEN not in str(failure.value) + repr(failure.value)


def test_a_refused_connections_error_does_not_quote_graph_urls_query() -> None:
    request = _request_refused_with_a_token_in_graph_urls_query()

    with pytest.raises(NetworkError) as failure:
        request.execute()

    assert "Failed to establish a new connection" in str(failure.value)
    assert URL_TOKEN not in str(failure.value) + repr(failure.value)


def test_a_network_errors_chain_holds_no_error_quoting_graph_urls_query() -> None:
    request = _request_refused_with_a_token_in_graph_urls_query()
    with pytest.raises(NetworkError) as failure:
        request.execute()

    chained: list[BaseException] = []
    error: BaseException | None = failure.value
    while error is not None:
        chained.append(error)
        error = error.__cause__ or error.__context__

    assert URL_TOKEN not in " ".join(f"{error!s} {error!r} {error.args!r}" for error in chained)


@pytest.mark.parametrize("ends_a_host", ["/", "?", "#"])
def test_a_password_holding_a_character_that_ends_a_host_is_masked_whole(
    ends_a_host: str,
) -> None:
    # unescaped, "/", "?" and "#" end the host for a URL parser, so the URL is refused; the
    # error refusing it must show no part of the password either side of that character
    before, after = URL_TOKEN[:10], URL_TOKEN[10:]
    graph_url = f"https://me:{before}{ends_a_host}{after}@proxy.example.com"

    shown = " ".join(settings_errors({"access_token": ACCESS_TOKEN, "graph_url": graph_url}))

    assert "graph_url" in shown
    assert before not in shown
    assert after not in shown


def test_urllib3s_warning_about_an_answers_malformed_headers_masks_graph_urls_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # an answer (say a proxy's) with a header line lacking its colon: urllib3 warns at any
    # log level, quoting the URL
    malformed = Reply(200, b'{"events_received": 1}', headers={"X-Ok": "1\r\nNoColonHere"})
    with FakeGraphServer(lambda request: malformed) as server:
        request = EventRequest(
            pixel_id=PIXEL_ID,
            events=[EVENT],
            access_token=ACCESS_TOKEN,
            graph_url=f"{server.url}/?access_token={URL_TOKEN}",
        )
        with caplog.at_level(logging.WARNING):
            request.execute()

    assert "Failed to parse headers" in caplog.text
    assert URL_TOKEN not in caplog.text


def _graph_url(kind: str, sandbox: SandboxServer) -> str:
    host = sandbox.url.split("://", 1)[1]
    return {
        # accepted: requests sends the userinfo as basic auth, the sandbox ignores it
        "userinfo": f"http://me:{URL_TOKEN}@{host}",
        # sent after the events path; the sandbox reads the token there as Graph would
        "query": f"{sandbox.url}/?access_token={URL_TOKEN}",
        "unreachable": f"http://me:{URL_TOKEN}@127.0.0.1:{_refused_port()}/?t={URL_TOKEN}",
        "refused setting": f"ftp://me:{URL_TOKEN}@{host}?access_token={URL_TOKEN}",
    }[kind]


@pytest.mark.parametrize(
    ("kind", "extra", "exit_code"),
    [
        ("userinfo", {}, 0),
        ("query", {}, 0),
        ("unreachable", {}, 1),
        ("refused setting", {}, 1),
        ("unreachable", {"dry_run": True}, 0),
    ],
    ids=["userinfo", "query", "unreachable", "refused-setting", "dry-run"],
)
def test_a_token_in_graph_url_appears_nowhere_a_run_against_the_sandbox_writes(
    sandbox: SandboxServer, tmp_path: Path, kind: str, extra: dict[str, Any], exit_code: int
) -> None:
    config = orders_config(
        _graph_url(kind, sandbox),
        tmp_path,
        summary_path=str(tmp_path / "summary.json"),
        dry_run_path=str(tmp_path / "dry_run.jsonl"),
        max_retries=1,
        **extra,
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    # an event older than Meta's 7 days: dead-lettered, whatever else happens
    records = [order(1), order(2, age_seconds=8 * 86400)]

    completed = subprocess.run(
        [str(TARGET), "--config", str(config_path)],
        input="\n".join(order_stream(2, records=records)) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        # every log line, urllib3's request lines (which quote the URL's query) too
        env={**os.environ, "LOGLEVEL": "DEBUG"},
    )

    assert completed.returncode == exit_code, completed.stderr[-3000:]
    written = {
        path.name: path.read_text()
        for path in tmp_path.iterdir()
        if path.is_file() and path != config_path
    }
    assert URL_TOKEN not in completed.stdout
    assert URL_TOKEN not in completed.stderr
    for name, text in written.items():
        assert URL_TOKEN not in text, name
    if kind in ("userinfo", "query"):
        assert "dead_letters.jsonl" in written
    if extra.get("dry_run"):
        assert '"url": "http://<redacted>@127.0.0.1:' in written["dry_run.jsonl"]
