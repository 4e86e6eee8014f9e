"""A small programmable Graph API stand-in on 127.0.0.1 for the client tests.

`FakeGraphServer(handler)` answers each POST with `handler(request) -> Reply`; the handler runs
in the server's request thread, so it may block (barriers, events) to shape concurrency. The
server records every request and the largest number it was handling at once.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from target_meta_capi.capi.http import HttpResponse, RequestsHttpService

# generous bound for waits inside handlers: a broken client fails the test instead of hanging it
HANDLER_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    client_port: int

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.json["data"]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def accept(request: RecordedRequest) -> Reply:
    """Graph's success answer, counting every event sent."""
    return success(len(request.events))


def success(events_received: int, fbtrace_id: str = "trace-ok") -> Reply:
    payload = {"events_received": events_received, "messages": [], "fbtrace_id": fbtrace_id}
    return Reply(200, json.dumps(payload).encode())


def graph_error(
    status: int,
    code: int,
    subcode: int | None = None,
    *,
    message: str = "An error occurred",
    is_transient: bool | None = None,
    user_title: str | None = None,
    user_message: str | None = None,
) -> Reply:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "trace-error",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    if user_title is not None:
        error["error_user_title"] = user_title
    if user_message is not None:
        error["error_user_msg"] = user_message
    return Reply(status, json.dumps({"error": error}).encode())


def rejection_echoing_the_request(request: RecordedRequest) -> Reply:
    """Graph refusing the request with an error that quotes all of it, as an error may."""
    sent = request.body.decode()
    return graph_error(400, 100, 2804050, message=f"Invalid parameter: {sent}", user_message=sent)


def html_page(status: int, title: str) -> Reply:
    page = f"<html><head><title>{title}</title></head><body>{title}</body></html>"
    return Reply(status, page.encode(), content_type="text/html")


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return placeholder.getsockname()[1]


class FakeGraphServer:
    def __init__(self, handler: Callable[[RecordedRequest], Reply] = accept) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeGraphServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _finish(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like Graph
            # headers and body in one segment: split small writes meet delayed ACKs (40 ms each)
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = RecordedRequest(
                    "POST", self.path, dict(self.headers.items()), body, self.client_address[1]
                )
                server._record(request)
                try:
                    reply = server.handler(request)
                finally:
                    server._finish()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


class RecordingHttpService(RequestsHttpService):
    """A custom HTTP service (as users would write one) that records the URLs it sends to.

    The record is per class because the library instantiates a class or path once and shares it.
    """

    sent_urls: list[str] = []
    _lock = threading.Lock()

    def execute(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float | None,
    ) -> HttpResponse:
        with self._lock:
            RecordingHttpService.sent_urls.append(url)
        return super().execute(method, url, headers, body, timeout)
