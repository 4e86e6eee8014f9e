"""The sandbox's HTTP layer: the threaded server, and the handler that reads a request's
body (chunked, gzipped, within a size limit), routes it (events, /__stats, /__events,
/__reset), answers the faults drawn before processing, logs one line per request, and
answers what it did not expect with Graph's generic error."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec

from target_meta_capi.capi.request import API_VERSION_PATTERN
from target_meta_capi.sandbox import faults
from target_meta_capi.sandbox.graph_errors import (
    THROTTLE_SUBCODE,
    UNKNOWN_ERROR,
    GraphError,
    invalid_parameter,
    new_fbtrace_id,
    usage_headers,
)
from target_meta_capi.sandbox.request_body import gunzip, parse_body
from target_meta_capi.sandbox.store import RecordingWriteError

if TYPE_CHECKING:
    from target_meta_capi.sandbox.server import SandboxServer

MAX_BODY_BYTES = 64 * 1024 * 1024

# msgspec writes the same JSON as the json module, several times faster
_encode_json = msgspec.json.Encoder().encode
# the client went away or stalled: nothing to answer, nothing the sandbox did wrong
_CLIENT_GONE = (ConnectionError, TimeoutError)


def is_whole_number(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() alone takes "²", which int() refuses."""
    return text.isascii() and text.isdigit()


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers sleeping in a slow response
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback. A request's own errors are answered by
        # SandboxRequestHandler._guard; what lands here failed outside one, mostly a client
        # resetting its connection while the request line or headers were read.
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE):
            return
        sys.stderr.write(
            f"target-meta-capi sandbox: connection from {client_address[0]} failed: "
            f"{type(error).__name__}\n"
        )

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang offline
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "target-meta-capi-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    server: SandboxHTTPServer
    # per request, set by _guard
    _answer_started = False
    _events_request = False
    _outcome_counted = False

    def setup(self) -> None:
        # typeshed makes timeout a ClassVar; StreamRequestHandler.setup reads self.timeout,
        # so one set on the instance is the per-server idle timeout it applies
        self.timeout = self.server.sandbox.config.idle_timeout_seconds  # type: ignore[misc]
        super().setup()
        self.server.sandbox._track_connection(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track_connection(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        # the default access log would print the query string, which may hold a token
        pass

    # plumbing ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        body = self._read_raw_body()
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gunzip(body, MAX_BODY_BYTES)
            except zlib.error:
                raise invalid_parameter("(#100) The request body is not valid gzip") from None
        return body

    def _read_raw_body(self) -> bytes:
        """The body as sent (chunks joined, still compressed); GraphError if unreadable."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        # digits only: int() also takes "+10", "1_0" and " 10 "
        length_text = self.headers.get("Content-Length", "0").strip()
        try:  # int() of over 4300 digits raises ValueError too
            length = int(length_text) if is_whole_number(length_text) else -1
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise GraphError(413, 100, "(#100) Request body too large or malformed")
        return self._read_exactly(length) if length else b""

    def _read_exactly(self, size: int) -> bytes:
        """`size` bytes of the body; a client closing its side before it sent them all is
        gone (no answer, nothing stored), as one resetting its connection is."""
        data = self.rfile.read(size)
        if len(data) < size:
            raise ConnectionAbortedError("the client closed the connection mid-body")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionAbortedError("the client closed the connection mid-body")
            size_field = line.split(b";", 1)[0].strip()
            # hex digits only: int(..., 16) also takes "-1" (then read(-1) reads to EOF, past
            # the size limit), "+5", "0x5" and "1_0"
            if not size_field or size_field.strip(b"0123456789abcdefABCDEF"):
                self.close_connection = True
                raise invalid_parameter("(#100) Malformed chunked body")
            size = int(size_field, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                raise GraphError(413, 100, "(#100) Request body too large")
            chunks.append(self._read_exactly(size))
            self.rfile.readline(1024)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        fbtrace_id: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._answer_started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if fbtrace_id is not None:
            self.send_header("x-fb-trace-id", fbtrace_id)
        for name, value in extra_headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":  # its answer is the headers alone (RFC 9110)
            self.wfile.write(body)

    def _send_json(
        self,
        status: int,
        payload: Any,
        fbtrace_id: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._send(
            status,
            _encode_json(payload),
            "application/json; charset=UTF-8",
            fbtrace_id,
            extra_headers,
        )

    def _send_graph_error(
        self, error: GraphError, extra_headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        fbtrace_id = new_fbtrace_id()
        self._send_json(error.http_status, error.body(fbtrace_id), fbtrace_id, extra_headers)

    def _log(self, status: int | str, detail: str, started: float) -> None:
        if self.server.sandbox.config.log_requests:
            self._write_log_line(status, detail, started)

    def _write_log_line(self, status: int | str, detail: str, started: float) -> None:
        path = self.path.split("?", 1)[0]  # never the query: it may carry the token
        elapsed_ms = (time.perf_counter() - started) * 1000
        sys.stderr.write(
            f"{self.client_address[0]} {self.command} {path} {status} {detail} {elapsed_ms:.1f}ms\n"
        )

    # the last resort ------------------------------------------------------------------------
    def _guard(self, route: Callable[[], None]) -> None:
        """Run ``route``; an exception it did not expect still gets an answer and a count."""
        started = time.perf_counter()
        self._answer_started = False
        self._events_request = False  # counted in requests: then also in rejected_requests
        self._outcome_counted = False  # counted accepted or rejected already
        try:
            route()
        except _CLIENT_GONE:
            self.close_connection = True
        except Exception as error:
            self._answer_unknown_error(error, started)

    def _answer_unknown_error(self, error: Exception, started: float) -> None:
        """Graph's generic error (500, code 1, transient) and one log line, never a traceback.

        The line names the exception's type and where it was raised, not its message: that
        could hold a token from the request.
        """
        self.close_connection = True  # the request may be half read
        answered = self._answer_started
        counted = self._events_request and not (answered or self._outcome_counted)
        self.server.sandbox._count_internal_error(UNKNOWN_ERROR if counted else None)
        where = traceback.extract_tb(error.__traceback__)[-1]
        self._write_log_line(  # even with --quiet: the sandbox itself went wrong
            "-" if answered else 500,
            f"code=1 unexpected {type(error).__name__} at {Path(where.filename).name}:"
            f"{where.lineno}",
            started,
        )
        if not answered:
            with contextlib.suppress(OSError):
                self._send_graph_error(UNKNOWN_ERROR)

    def _count_rejection(self, error: GraphError) -> None:
        self.server.sandbox._count_rejection(error)
        self._outcome_counted = True

    # routes -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_PUT(self) -> None:
        self._guard(self._other_method)

    do_HEAD = do_PATCH = do_DELETE = do_OPTIONS = do_PUT

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>: any other method (PROPFIND, FOO) gets Graph's
        # answer too, not http.server's 501 HTML page
        if name.startswith("do_"):
            return self.do_PUT
        raise AttributeError(name)

    def _discard_body(self) -> bool:
        """Read the body, which the route does not use, so that the next request on the
        connection starts where it should. False, once answered, if it cannot be read."""
        try:
            self._read_raw_body()
        except GraphError as error:
            self._send_graph_error(error)
            return False
        return True

    def _get(self) -> None:
        if not self._discard_body():
            return
        sandbox = self.server.sandbox
        path, _, query = self.path.partition("?")
        if path == "/__stats":
            self._send_json(200, sandbox.stats())
        elif path == "/__events":
            limit_values = parse_qs(query, keep_blank_values=True).get("limit")
            limit = limit_values[-1] if limit_values else None
            if limit is not None and not is_whole_number(limit):
                # rather than every event, or none, for a limit mistyped
                message = f"limit must be a whole number >= 0, got {limit!r}"
                self._send_graph_error(invalid_parameter(message))
                return
            # more digits than any count of events (int() refuses over 4300): every event
            if limit is not None and len(limit.lstrip("0")) > 18:
                limit = None
            self._send_json(200, sandbox.accepted_events(None if limit is None else int(limit)))
        else:
            self._send_graph_error(GraphError(400, 2500, f"Unknown path components: {path}"))

    def _post(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/__reset":
            if not self._discard_body():  # not decompressed either
                return
            self.server.sandbox.reset()
            self._send_json(200, {"reset": True})
            return
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[2] != "events" or not API_VERSION_PATTERN.fullmatch(parts[0]):
            started = time.perf_counter()
            try:
                self._read_body()
                error = GraphError(400, 2500, f"Unknown path components: {path}")
            except GraphError as body_error:
                error = body_error
            self._send_graph_error(error)
            self._log(error.http_status, f"code={error.code}", started)
            return
        sandbox = self.server.sandbox
        sandbox._begin_request()
        self._events_request = True
        try:
            self._post_events(parts[0], parts[1], query)
        finally:
            sandbox._end_request()

    def _other_method(self) -> None:
        """Any method but GET and POST: Graph's answer for what it does not have."""
        started = time.perf_counter()
        if not self._discard_body():
            return
        path = self.path.split("?", 1)[0]
        self._send_graph_error(GraphError(400, 2500, f"Unknown path components: {path}"))
        self._log(400, "code=2500", started)

    def _post_events(self, api_version: str, pixel_id: str, query: str) -> None:
        sandbox = self.server.sandbox
        started = time.perf_counter()
        try:
            body = self._read_body()
        except GraphError as error:
            self._count_rejection(error)
            self._send_graph_error(error)
            self._log(error.http_status, f"code={error.code}", started)
            return
        except _CLIENT_GONE:
            sandbox._count_incomplete_request()
            raise

        decision = sandbox._faults.decide()
        if decision.latency_seconds > 0 and self._wait_unless_stopped(decision.latency_seconds):
            return
        if decision.fault == faults.GRAPH_ERROR:
            assert decision.graph_error is not None
            self._answer_graph_error_fault(decision.graph_error, started)
            return
        if decision.fault in faults.FAULTS_BEFORE_PROCESSING:
            self._answer_fault_before_processing(decision.fault, started)
            return

        try:
            params: dict[str, Any] = {name: values[-1] for name, values in parse_qs(query).items()}
            params.update(parse_body(body, self.headers.get("Content-Type", "")))
            authorization = self.headers.get("Authorization", "")
            bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
            events, recorded_params = sandbox._handle_events(api_version, pixel_id, params, bearer)
        except GraphError as error:
            self._count_rejection(error)
            self._send_graph_error(error)
            subcode = f"/{error.subcode}" if error.subcode is not None else ""
            self._log(error.http_status, f"code={error.code}{subcode}", started)
            return

        try:
            sandbox._accept(events, recorded_params)
        except RecordingWriteError as error:
            # recorded nowhere, so answered as Graph answers a request it could not take in:
            # its generic, transient error; a client that retries it loses nothing
            self._count_rejection(UNKNOWN_ERROR)
            self._send_graph_error(UNKNOWN_ERROR)
            self._write_log_line(  # even with --quiet: what is received is no longer recorded
                500, f"code=1 {error}: events not recorded", started
            )
            return
        self._outcome_counted = True
        detail = f"events={len(events)}"
        if decision.fault == faults.CUT_AFTER_ACCEPT:
            sandbox._count_fault(decision.fault)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self._log("-", f"{detail} fault={decision.fault}", started)
            return
        if decision.fault == faults.SLOW_RESPONSE:
            sandbox._count_fault(decision.fault)
            detail += f" fault={decision.fault}"
            if self._wait_unless_stopped(sandbox.config.slow_response_seconds):
                return
        fbtrace_id = new_fbtrace_id()
        try:
            usage = sandbox.config.usage_percent
            self._send_json(
                200,
                {
                    "events_received": len(events),
                    "messages": list(sandbox.config.answer_messages),
                    "fbtrace_id": fbtrace_id,
                },
                fbtrace_id,
                () if usage is None else usage_headers(usage, 0),
            )
        except OSError:  # the client gave up waiting (slow response): expected
            self.close_connection = True
        self._log(200, detail, started)

    def _wait_unless_stopped(self, seconds: float) -> bool:
        """Wait; True if the sandbox was stopped meanwhile (the request is then dropped)."""
        # a wait past TIMEOUT_MAX (~292 years) fails with OverflowError: as good as forever
        return self.server.sandbox._stopping.wait(min(seconds, threading.TIMEOUT_MAX))

    def _answer_graph_error_fault(self, index: int, started: float) -> None:
        sandbox = self.server.sandbox
        sandbox._count_fault(faults.GRAPH_ERROR)
        error = sandbox.config.graph_errors[index].error()
        self._count_rejection(error)
        self._send_graph_error(error)
        subcode = f"/{error.subcode}" if error.subcode is not None else ""
        self._log(
            error.http_status, f"code={error.code}{subcode} fault={faults.GRAPH_ERROR}", started
        )

    def _answer_fault_before_processing(self, fault: str, started: float) -> None:
        sandbox = self.server.sandbox
        sandbox._count_fault(fault)
        retry_after = sandbox.config.retry_after_seconds
        extra_headers: tuple[tuple[str, str], ...] = (
            () if retry_after is None else (("Retry-After", str(retry_after)),)
        )
        if fault == faults.HTML_502:
            self._send(
                502,
                b"<html><head><title>502 Bad Gateway</title></head>"
                b"<body><h1>502 Bad Gateway</h1></body></html>",
                "text/html; charset=utf-8",
                extra_headers=extra_headers,
            )
            self._log(502, f"fault={fault}", started)
            return
        if fault == faults.TRANSIENT_ERROR:
            error = GraphError(
                500,
                2,
                "An unexpected error has occurred. Please retry your request later.",
                is_transient=True,
            )
        else:
            error = GraphError(
                400,
                17,
                "(#17) User request limit reached",
                subcode=THROTTLE_SUBCODE,
                is_transient=True,
                user_title="API User Request Limit Reached",
                user_message="Too many calls were made. Please wait a bit and try again.",
            )
            config = sandbox.config
            if config.regain_access_minutes is not None or config.usage_percent is not None:
                extra_headers += usage_headers(100, config.regain_access_minutes or 0)
        self._count_rejection(error)
        self._send_graph_error(error, extra_headers)
        self._log(error.http_status, f"code={error.code} fault={fault}", started)
