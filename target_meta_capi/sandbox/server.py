"""A local stand-in for ``graph.facebook.com/{api_version}/{pixel_id}/events``: the sandbox
(SandboxServer) and how it behaves (SandboxConfig).

It answers the way Graph does (status, error JSON, codes), validates events with
``capi.rules`` and rejects a whole request when one event is invalid, records what it
accepted, and injects seeded faults. Its HTTP layer is handler.py, the bodies it reads
request_body.py, its errors graph_errors.py. See docs/sandbox.md for the table of answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from target_meta_capi.capi.request import DEFAULT_API_VERSION, OPTIONAL_PARAMETERS
from target_meta_capi.capi.rules import MAX_EVENTS_PER_REQUEST, RULES, validate_event
from target_meta_capi.sandbox import faults
from target_meta_capi.sandbox.graph_errors import (
    REJECTED_EVENT_SUBCODE,
    UNKNOWN_OBJECT_SUBCODE,
    GraphError,
    invalid_parameter,
)
from target_meta_capi.sandbox.handler import SandboxHTTPServer, SandboxRequestHandler
from target_meta_capi.sandbox.request_body import JSON_ERRORS, decode_json
from target_meta_capi.sandbox.store import EventStore, event_id_text

DEFAULT_PIXEL_ID = "1234567890"
DEFAULT_ACCESS_TOKEN = "sandbox-token"
DEFAULT_PORT = 8787


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves; fault rates are shares of requests (see faults.py)."""

    host: str = "127.0.0.1"
    port: int = 0
    pixel_ids: tuple[str, ...] = (DEFAULT_PIXEL_ID,)
    access_tokens: tuple[str, ...] = field(default=(DEFAULT_ACCESS_TOKEN,), repr=False)
    app_secret: str | None = field(default=None, repr=False)
    latency_ms: float = 0.0
    transient_error_rate: float = 0.0
    throttle_rate: float = 0.0
    cut_after_accept_rate: float = 0.0
    slow_response_rate: float = 0.0
    slow_response_seconds: float = 5.0
    html_502_rate: float = 0.0
    #: a Retry-After header (seconds) on the throttle, transient and HTML 502 faults' answers,
    #: as a proxy or gateway in front of Graph may send; Graph itself sends none
    retry_after_seconds: int | None = None
    #: accepted requests are answered with X-Business-Use-Case-Usage reporting this share
    #: (percent) of the business's rate limit used, as Graph's answers do
    usage_percent: int | None = None
    #: throttle answers report the limit reached and this estimated_time_to_regain_access
    #: (minutes); with usage_percent alone, 0
    regain_access_minutes: int | None = None
    #: events with these event_ids are refused as Graph refuses an invalid event, so that a
    #: sender's isolation of bad events and its dead letters can be tried out
    reject_event_ids: tuple[str, ...] = ()
    #: Graph errors answered to a share of requests each, to test a sender's handling of them
    graph_errors: tuple[faults.GraphErrorFault, ...] = ()
    #: accepted requests are answered with these "messages", as Graph's success answers may
    #: carry warnings (a deprecated parameter, say), so that a sender's handling can be tried
    answer_messages: tuple[str, ...] = ()
    seed: int = 0
    record_jsonl: str | Path | None = None
    record_sqlite: str | Path | None = None
    # None keeps every accepted event in memory (tests); the CLI bounds it for long runs
    max_events_in_memory: int | None = None
    log_requests: bool = False
    # seconds an idle keep-alive connection stays open
    idle_timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("pixel_ids", "access_tokens", "reject_event_ids", "answer_messages"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        object.__setattr__(self, "graph_errors", tuple(self.graph_errors))
        for name in ("slow_response_seconds", "retry_after_seconds", "regain_access_minutes"):
            value = getattr(self, name)
            # a wait of inf seconds fails (OverflowError), one of nan is no wait at all; nor
            # can a header say either
            if value is not None and not 0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        # a socket timeout of 0 makes it non-blocking; one below 0, inf or nan is refused by
        # every connection, each failing on its own
        if not 0 < self.idle_timeout_seconds < math.inf:
            raise ValueError(
                f"idle_timeout_seconds must be a finite number > 0, got {self.idle_timeout_seconds}"
            )
        if self.usage_percent is not None and not 0 <= self.usage_percent <= 100:
            raise ValueError("usage_percent must be between 0 and 100")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        # kept in a deque, whose maxlen is a C ssize_t
        if self.max_events_in_memory is not None and not 0 <= self.max_events_in_memory <= (
            sys.maxsize
        ):
            raise ValueError(
                f"max_events_in_memory must be from 0 to {sys.maxsize}, "
                f"got {self.max_events_in_memory}"
            )
        faults.check_settings(
            self.latency_ms, self.fault_rates(), [error.rate for error in self.graph_errors]
        )

    def fault_rates(self) -> dict[str, float]:
        return {
            faults.HTML_502: self.html_502_rate,
            faults.TRANSIENT_ERROR: self.transient_error_rate,
            faults.THROTTLE: self.throttle_rate,
            faults.CUT_AFTER_ACCEPT: self.cut_after_accept_rate,
            faults.SLOW_RESPONSE: self.slow_response_rate,
        }


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.clear()

    def clear(self) -> None:
        self.requests = 0
        self.accepted_requests = 0
        self.rejected_requests = 0
        self.incomplete_requests = 0
        self.rejected_by_code: dict[str, int] = {}
        self.rejected_by_subcode: dict[str, int] = {}
        self.events_received = 0
        self.internal_errors = 0
        self.max_in_flight = self.in_flight
        self.faults = dict.fromkeys(faults.FAULT_KINDS, 0)


class SandboxServer:
    """``with SandboxServer(SandboxConfig(...)) as sandbox: sandbox.url``."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SandboxConfig(), **overrides)
        self._faults = faults.FaultInjector(
            seed=self.config.seed,
            latency_ms=self.config.latency_ms,
            rates=self.config.fault_rates(),
            graph_error_rates=[error.rate for error in self.config.graph_errors],
        )
        self._pixel_ids = frozenset(self.config.pixel_ids)
        self._reject_event_ids = frozenset(self.config.reject_event_ids)
        self._access_tokens = frozenset(self.config.access_tokens)
        self._counters = _Counters()
        self._store: EventStore | None = None
        self._http: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        if self._http is not None:
            raise RuntimeError("sandbox already started")
        self._store = EventStore(
            max_events_in_memory=self.config.max_events_in_memory,
            jsonl_path=self.config.record_jsonl,
            sqlite_path=self.config.record_sqlite,
        )
        self._stopping.clear()
        try:
            self._http = SandboxHTTPServer(
                (self.config.host, self.config.port), SandboxRequestHandler, self
            )
        except BaseException:
            self._store.close()
            self._store = None
            raise
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        # start() sets the store before the HTTP server, and the thread right after it
        assert self._store is not None and self._thread is not None
        self._stopping.set()  # wakes requests sleeping for latency or a slow response
        self._http.shutdown()
        self._http.server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would block forever
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join()
        self._store.close()
        self._http = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("sandbox not started")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as graph_url, e.g. ``http://127.0.0.1:8787``."""
        return f"http://{self.config.host}:{self.port}"

    def events_url(
        self, pixel_id: str | None = None, api_version: str = DEFAULT_API_VERSION
    ) -> str:
        return f"{self.url}/{api_version}/{pixel_id or self.config.pixel_ids[0]}/events"

    # inspection --------------------------------------------------------------------------
    def accepted_events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """``[{"event": {...}, "params": {"pixel_id", "api_version", ...}}]``, oldest first."""
        return self._store.events(limit) if self._store is not None else []

    def stats(self) -> dict[str, Any]:
        """Counters since start or the last reset, as served by ``GET /__stats``."""
        counters = self._counters
        with counters.lock:
            stats: dict[str, Any] = {
                "requests": counters.requests,
                "accepted_requests": counters.accepted_requests,
                "rejected_requests": counters.rejected_requests,
                "incomplete_requests": counters.incomplete_requests,
                "rejected_by_code": dict(counters.rejected_by_code),
                "rejected_by_subcode": dict(counters.rejected_by_subcode),
                "events_received": counters.events_received,
                "internal_errors": counters.internal_errors,
                "in_flight": counters.in_flight,
                "max_in_flight": counters.max_in_flight,
                "faults": dict(counters.faults),
                # of the whole process since it started, not reset: load tests on one machine
                # compare it before and after a run to see what the sandbox itself took
                "process_cpu_seconds": round(time.process_time(), 3),
            }
        # not started yet: no store, whose counts would be those of an empty one
        stats.update((self._store or EventStore()).counts())
        return stats

    def reset(self) -> None:
        """Forget events and counters, and restart the fault sequence from the seed."""
        with self._counters.lock:
            self._counters.clear()
        if self._store is not None:
            self._store.clear()
        self._faults.reset()

    # request handling (called from handler threads) --------------------------------------
    def _track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if not open_:
                self._connections.discard(connection)
            elif not self._stopping.is_set():
                self._connections.add(connection)
            else:
                # accepted just before stop(), whose handler thread got here after stop()
                # shut the connections it knew down: it would be served by a stopped sandbox,
                # or wait idle until the idle timeout
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _begin_request(self) -> None:
        counters = self._counters
        with counters.lock:
            counters.requests += 1
            counters.in_flight += 1
            if counters.in_flight > counters.max_in_flight:
                counters.max_in_flight = counters.in_flight

    def _end_request(self) -> None:
        with self._counters.lock:
            self._counters.in_flight -= 1

    def _count_incomplete_request(self) -> None:
        with self._counters.lock:
            self._counters.incomplete_requests += 1

    def _count_fault(self, kind: str) -> None:
        with self._counters.lock:
            self._counters.faults[kind] += 1

    def _count_rejection(self, error: GraphError) -> None:
        counters = self._counters
        with counters.lock:
            counters.rejected_requests += 1
            code = str(error.code)
            counters.rejected_by_code[code] = counters.rejected_by_code.get(code, 0) + 1
            if error.subcode is not None:
                subcode = str(error.subcode)
                counters.rejected_by_subcode[subcode] = (
                    counters.rejected_by_subcode.get(subcode, 0) + 1
                )

    def _count_internal_error(self, rejected: GraphError | None) -> None:
        with self._counters.lock:
            self._counters.internal_errors += 1
        if rejected is not None:
            self._count_rejection(rejected)

    def _accept(self, events: list[dict[str, Any]], params: dict[str, Any]) -> None:
        assert self._store is not None
        self._store.record(events, params)
        with self._counters.lock:
            self._counters.accepted_requests += 1
            self._counters.events_received += len(events)

    def _check_access(self, params: dict[str, Any], bearer: str | None, pixel_id: str) -> None:
        token = params.get("access_token") or bearer
        if not token:
            raise GraphError(400, 104, "An access token is required to request this resource.")
        if not isinstance(token, str) or token not in self._access_tokens:
            raise GraphError(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if self.config.app_secret is not None:
            proof = params.get("appsecret_proof")
            if not proof:
                raise GraphError(
                    400,
                    100,
                    "API calls from the server require an appsecret_proof argument",
                    error_type="GraphMethodException",
                )
            # worked out here as Graph does, not with EventRequest.appsecret_proof: this is the
            # check of the client's proof, which the client's own function would always pass
            expected = hmac.new(
                self.config.app_secret.encode(), token.encode(), hashlib.sha256
            ).hexdigest()
            # compare_digest takes str only if it is ASCII: compare the UTF-8 bytes instead
            if not isinstance(proof, str) or not hmac.compare_digest(
                proof.lower().encode(), expected.encode()
            ):
                raise GraphError(
                    400,
                    100,
                    "Invalid appsecret_proof provided in the API argument",
                    error_type="GraphMethodException",
                )
        if pixel_id not in self._pixel_ids:
            raise GraphError(
                400,
                100,
                f"Unsupported post request. Object with ID '{pixel_id}' does not exist, cannot"
                " be loaded due to missing permissions, or does not support this operation."
                " Please read the Graph API documentation at"
                " https://developers.facebook.com/docs/graph-api",
                error_type="GraphMethodException",
                subcode=UNKNOWN_OBJECT_SUBCODE,
            )

    def _validated_events(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        data = params.get("data")
        if data is None:
            raise invalid_parameter("(#100) The parameter data is required")
        if isinstance(data, str):
            try:
                data = decode_json(data)
            except JSON_ERRORS:
                raise invalid_parameter("(#100) param data must be an array.") from None
        if not isinstance(data, list):
            raise invalid_parameter("(#100) param data must be an array.")
        if not 1 <= len(data) <= MAX_EVENTS_PER_REQUEST:
            raise invalid_parameter(
                f"(#100) param data must contain between 1 and {MAX_EVENTS_PER_REQUEST} events"
            )
        now = time.time()
        for index, event in enumerate(data):
            if isinstance(event, str):
                # Meta's own SDK sends each event as a JSON string inside the data array
                try:
                    event = data[index] = decode_json(event)
                except JSON_ERRORS:
                    event = None
            if not isinstance(event, dict):
                raise invalid_parameter("(#100) every element of param data must be an object")
            violations = validate_event(event, now=now)
            if violations:
                violation = violations[0]
                raise GraphError(
                    400,
                    100,
                    "Invalid parameter",
                    subcode=violation.subcode,
                    user_title=RULES[violation.rule].user_title,
                    user_message=violation.message,
                )
            if (
                self._reject_event_ids
                and event_id_text(event.get("event_id")) in self._reject_event_ids
            ):
                raise GraphError(
                    400,
                    100,
                    "Invalid parameter",
                    subcode=REJECTED_EVENT_SUBCODE,
                    user_title="Event Rejected By The Sandbox",
                    user_message="The event's event_id is on the sandbox's reject list.",
                )
        return data

    def _handle_events(
        self, api_version: str, pixel_id: str, params: dict[str, Any], bearer: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Validate one events request; return its events and the params to record."""
        self._check_access(params, bearer, pixel_id)
        events = self._validated_events(params)
        recorded_params: dict[str, Any] = {"pixel_id": pixel_id, "api_version": api_version}
        for name in OPTIONAL_PARAMETERS:
            value = params.get(name)
            recorded_params[name] = None if value is None else str(value)
        return events, recorded_params
